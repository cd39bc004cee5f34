"""Seconds per training update: the measurements shipped with the package, and timing updates here.

`bench plan` turns updates into compute: runs x budget x updates per frame x seconds per update. The shipped
file (``update_speed.json`` beside this module) records, per device kind, the milliseconds per update that
``benchmarks/update_speed.py --save`` measured for each agent at the paper preset, and the hardware it ran
on. A SLURM profile's ``seconds_per_step`` overrides them per agent; ``bench plan --measure`` times a few
updates of each planned agent on this machine instead.
"""

from __future__ import annotations

import json
import os
import platform
import time
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

SPEED_FILE = Path(str(resources.files("bench") / "update_speed.json"))


def shipped() -> dict[str, dict[str, Any]]:
    """Device kind ("cpu", "cuda") -> {"hardware", "preset", "ms_per_update": {agent: ms}, ...}."""
    return json.loads(SPEED_FILE.read_text())["measurements"]


def hardware(device: str) -> str:
    """A readable name of the machine that times updates on ``device``, stored beside the numbers."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


def save(device: str, record: dict[str, Any], path: Path = SPEED_FILE) -> None:
    """Replace the measurement of one device kind in the speed file (written atomically)."""
    data = json.loads(path.read_text()) if path.exists() else {"measurements": {}}
    data["measurements"][device.split(":")[0]] = record
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def synthetic_spaces(
    keys: list[str], image: int, state: int, actions: int, discrete: bool
) -> tuple[gym.spaces.Dict, gym.spaces.Space]:
    """Observation and action spaces like a suite's, for timing updates without building an env."""
    obs: dict[str, gym.spaces.Space] = {}
    if "image" in keys:
        obs["image"] = gym.spaces.Box(0, 255, (image, image, 3), np.uint8)
    if "state" in keys:
        obs["state"] = gym.spaces.Box(-np.inf, np.inf, (state,), np.float32)
    act = gym.spaces.Discrete(actions) if discrete else gym.spaces.Box(-1.0, 1.0, (actions,), np.float32)
    return gym.spaces.Dict(obs), act


def random_batch(
    obs_space: gym.spaces.Dict, act_space: gym.spaces.Space, batch: int, length: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """A replay batch of random data in these spaces (the update's cost does not depend on the values)."""
    out: dict[str, np.ndarray] = {}
    for key, space in obs_space.spaces.items():
        if key == "image":
            out[key] = rng.integers(0, 256, (batch, length, *space.shape), dtype=np.uint8)
        else:
            out[key] = rng.normal(size=(batch, length, *space.shape)).astype(np.float32)
    if isinstance(act_space, gym.spaces.Discrete):
        out["action"] = np.eye(act_space.n, dtype=np.float32)[rng.integers(0, act_space.n, (batch, length))]
    else:
        out["action"] = rng.uniform(-1, 1, (batch, length, *act_space.shape)).astype(np.float32)
    out["reward"] = rng.normal(size=(batch, length)).astype(np.float32)
    out["is_first"] = np.zeros((batch, length), bool)
    out["is_first"][:, 0] = True
    out["is_last"] = np.zeros((batch, length), bool)
    out["is_terminal"] = np.zeros((batch, length), bool)
    return out


def time_updates(
    agent: Any, obs_space: gym.spaces.Dict, act_space: gym.spaces.Space, warmup: int, repeats: int
) -> tuple[float, float]:
    """(wall ms, process CPU ms) per ``agent.train`` call on random batches; CPU time stays meaningful on a
    shared, loaded machine."""
    rng = np.random.default_rng(0)
    batches = [
        random_batch(obs_space, act_space, agent.batch_size, agent.batch_length, rng)
        for _ in range(warmup + repeats)
    ]
    for batch in batches[:warmup]:
        agent.train(batch)
    start, cpu = time.perf_counter(), time.process_time()
    for batch in batches[warmup:]:
        agent.train(batch)  # returns python floats: the update has finished on the device
    return (time.perf_counter() - start) / repeats * 1000, (time.process_time() - cpu) / repeats * 1000


def measure(
    name: str, config: dict[str, Any], discrete: bool, suite: str = "", warmup: int = 1, repeats: int = 2
) -> float:
    """Wall milliseconds per update of agent ``name`` with the resolved run ``config`` on this machine (its
    ``run.device``; ``auto`` is a GPU when there is one), on random batches in spaces like the suite's."""
    import torch

    import agents
    import suites

    device = config["run"]["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    env = config["env"]
    keys = suites.observation_keys(env)
    obs_space, act_space = synthetic_spaces(keys, env.get("image_size", 64), 8, 6, discrete)
    agent = agents.make(name, obs_space, act_space, config["agent"], torch.device(device), suite)
    wall, _ = time_updates(agent, obs_space, act_space, warmup, repeats)
    return wall
