"""Env speed with rendering: steps/s for one task per suite in both render modes, and the cost of a DMCR
reset with a new visual seed against a plain DMC reset (target <= 2x).

    MUJOCO_GL=egl .venv/bin/python benchmarks/envs.py [--steps 300] [--resets 30]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

import suites  # noqa: E402

TASKS = {
    "dmc": "cheetah_run",
    "dmcr": "cheetah_run",
    "metaworld": "lever-pull",
    "atari100k": "pong",
    "gym": "Pendulum-v1",
}


def make(name: str, render: str):
    suite = suites.get(name)
    env_config = suite.config("smoke")["env"]
    if "render" in env_config:
        env_config = {**env_config, "render": render}
    return suite.make(TASKS[name], 0, env_config)


def steps_per_second(name: str, render: str, steps: int) -> float:
    env = make(name, render)
    rng = np.random.default_rng(0)
    env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        action = int(rng.integers(env.act_space.n)) if hasattr(env.act_space, "n") else env.act_space.sample()
        if env.step(action)["is_last"]:
            env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def reset_ms(name: str, resets: int) -> float:
    env = make(name, "fast")
    env.reset()
    start = time.perf_counter()
    for _ in range(resets):
        env.reset()
    elapsed = (time.perf_counter() - start) / resets * 1e3
    env.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--resets", type=int, default=30)
    args = parser.parse_args()
    print(f"{'suite':<10} {'task':<14} {'fast steps/s':>13} {'default steps/s':>16} {'speed-up':>9}")
    for name, task in TASKS.items():
        modes = ("fast", "default") if name in ("dmc", "dmcr", "metaworld") else ("default",)
        rates = {mode: steps_per_second(name, mode, args.steps) for mode in modes}
        fast = rates.get("fast", rates["default"])
        print(
            f"{name:<10} {task:<14} {fast:>13.0f} {rates['default']:>16.0f} {fast / rates['default']:>8.1f}x"
        )
    plain, dmcr = reset_ms("dmc", args.resets), reset_ms("dmcr", args.resets)
    print(
        f"\nreset, cheetah_run, fast render: dmc {plain:.1f} ms, dmcr (new visual seed) {dmcr:.1f} ms, "
        f"ratio {dmcr / plain:.2f}x (target <= 2x)"
    )


if __name__ == "__main__":
    main()
