"""What the agent sees: a grid of observation frames from random-policy episodes, and optionally a GIF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import suites

FRAMES_PER_ROW = 8


def render_frames(
    suite: str,
    task: str,
    seed: int,
    env_config: dict[str, Any],
    episodes: int = 4,
    out: str | Path = "frames.png",
    gif: str | Path | None = None,
) -> Path:
    """Run ``episodes`` random-action episodes; write one row of evenly spaced frames per episode to ``out``
    (PNG) and every frame of the first episode to ``gif`` when given. Returns the PNG path."""
    import imageio.v2 as imageio

    entry = suites.get(suite)
    entry.check_config(task, env_config)
    env = entry.make(task, seed, env_config)
    if "image" not in env.obs_space.spaces:
        raise ValueError(f"suite {suite!r} has no image observations (env.obs={env_config.get('obs')!r})")
    rng = np.random.default_rng(seed)
    rows, first_episode = [], []
    try:
        for episode in range(episodes):
            frames = [env.reset()["image"]]
            while True:
                step = env.step(_random_action(env.act_space, rng))
                frames.append(step["image"])
                if step["is_last"]:
                    break
            if episode == 0:
                first_episode = frames
            picks = np.linspace(0, len(frames) - 1, FRAMES_PER_ROW).round().astype(int)
            rows.append(np.concatenate([frames[i] for i in picks], axis=1))
    finally:
        env.close()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    imageio.imwrite(out, np.concatenate(rows, axis=0))
    if gif is not None:
        imageio.mimwrite(Path(gif), first_episode, duration=1 / 30, loop=0)
    return out


def _random_action(space: Any, rng: np.random.Generator) -> np.ndarray | int:
    if hasattr(space, "n"):
        return int(rng.integers(space.n))
    return rng.uniform(-1.0, 1.0, space.shape).astype(np.float32)
