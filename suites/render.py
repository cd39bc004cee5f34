"""What the agent sees: a grid of observation frames from random-policy episodes, and optionally a GIF;
the shared helpers that write frames as MP4/GIF with a caption bar."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

import suites

FRAMES_PER_ROW = 8
FPS = 30
CAPTION_HEIGHT = 16
MACRO_BLOCK = 16  # H.264 encoders work on 16x16 blocks: frames are padded to a multiple


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
        write_animation(Path(gif), first_episode)
    return out


def write_animation(path: Path, frames: list[np.ndarray] | np.ndarray, fps: int = FPS) -> Path:
    """Write (H, W, 3) uint8 frames as an MP4 (H.264 through imageio-ffmpeg) when ``path`` ends in .mp4, else
    as a looping GIF."""
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4":
        frames = [_pad_to_blocks(frame) for frame in frames]
        imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
    else:
        imageio.mimwrite(path, list(frames), duration=1000 / fps, loop=0)  # pillow: ms per frame
    return path


def _pad_to_blocks(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    pad = (-height % MACRO_BLOCK, -width % MACRO_BLOCK)
    return np.pad(frame, ((0, pad[0]), (0, pad[1]), (0, 0))) if any(pad) else frame


def upscale(frame: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling: a 64x64 observation is too small to watch."""
    return frame.repeat(factor, axis=0).repeat(factor, axis=1)


def with_caption(frame: np.ndarray, text: str, color: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """``frame`` below a black bar that reads ``text``."""
    return np.concatenate([_caption_bar(frame.shape[1], text, color), frame], axis=0)


@functools.lru_cache(maxsize=256)  # a video repeats its captions; drawing text dominated writing one
def _caption_bar(width: int, text: str, color: tuple[int, int, int]) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    bar = Image.new("RGB", (width, CAPTION_HEIGHT))
    ImageDraw.Draw(bar).text((3, 2), text, font=ImageFont.load_default(size=10), fill=color)
    return np.asarray(bar)


def _random_action(space: Any, rng: np.random.Generator) -> np.ndarray | int:
    if hasattr(space, "n"):
        return int(rng.integers(space.n))
    return rng.uniform(-1.0, 1.0, space.shape).astype(np.float32)
