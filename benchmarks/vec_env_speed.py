"""Vector env transports for 64x64 frames: steps/s of N dmc envs (random actions) stepped together by

  serial     N envs in this process, one after the other (no worker: the baseline)
  shm        bench.vec_env workers, images through shared memory, the rest over a pipe (the harness's)
  pipe       bench.vec_env workers, whole observations pickled over a pipe
  gym-shm    gymnasium AsyncVectorEnv(shared_memory=True) over the same envs
  gym-pipe   gymnasium AsyncVectorEnv(shared_memory=False)

Every transport is built once per N; then the rounds interleave them, so that the load of a shared machine
falls on all alike. The table gives the median env steps/s (agent steps summed over the N envs) and each
transport's median ratio to shm over the rounds.

    MUJOCO_GL=egl nice -n 10 .venv/bin/python benchmarks/vec_env_speed.py [--envs 2 4] [--steps 200]
        [--rounds 5] [--task cartpole_balance]
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import suites  # noqa: E402
from bench.vec_env import InProcessEnvs, env_seed, make_vec_env  # noqa: E402

FLAGS = ("reward", "is_first", "is_last", "is_terminal")


class GymAdapter(gym.Env):
    """A suite env as a gymnasium env (observations without the flags, which gymnasium returns apart)."""

    def __init__(self, task: str, seed: int, env_config: dict[str, Any]) -> None:
        self.env = suites.get("dmc").make(task, seed, env_config, "train")
        self.observation_space = self.env.obs_space
        self.action_space = self.env.act_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        return self._keys(self.env.reset()), {}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        obs = self.env.step(action)
        truncated = obs["is_last"] and not obs["is_terminal"]
        return self._keys(obs), float(obs["reward"]), bool(obs["is_terminal"]), bool(truncated), {}

    def _keys(self, obs: dict) -> dict:
        return {key: obs[key] for key in self.observation_space.spaces}

    def close(self) -> None:
        self.env.close()


class SerialEnvs:
    """N in-process envs stepped one after the other."""

    def __init__(self, envs: list[InProcessEnvs]) -> None:
        self.envs = envs

    def reset(self) -> None:
        for env in self.envs:
            env.reset()

    def step(self, actions: np.ndarray) -> None:
        for env, action in zip(self.envs, actions):
            env.step(action[None])

    def close(self) -> None:
        for env in self.envs:
            env.close()


class GymEnvs:
    def __init__(self, task: str, seed: int, env_config: dict, n: int, shared_memory: bool) -> None:
        fns = [functools.partial(GymAdapter, task, env_seed(seed, i), env_config) for i in range(n)]
        self.vec = gym.vector.AsyncVectorEnv(fns, shared_memory=shared_memory, context="forkserver")

    def reset(self) -> None:
        self.vec.reset()

    def step(self, actions: np.ndarray) -> None:
        self.vec.step(actions)

    def close(self) -> None:
        self.vec.close()


def build(kind: str, task: str, env_config: dict, n: int) -> Any:
    if kind == "serial":
        suite = suites.get("dmc")
        return SerialEnvs([InProcessEnvs(suite.make(task, env_seed(0, i), env_config)) for i in range(n)])
    if kind in ("shm", "pipe"):
        return make_vec_env("dmc", task, 0, env_config, "train", n, transport=kind)
    return GymEnvs(task, 0, env_config, n, shared_memory=kind == "gym-shm")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--steps", type=int, default=200, help="vector steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--task", default="cartpole_balance")
    args = parser.parse_args()
    env_config = suites.get("dmc").config("smoke")["env"]  # 64x64 frames, the fast render mode
    kinds = ("serial", "shm", "pipe", "gym-shm", "gym-pipe")
    rng = np.random.default_rng(0)
    print(f"dmc {args.task}, {env_config['image_size']}x{env_config['image_size']} frames, "
          f"{args.steps} vector steps x {args.rounds} rounds, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'envs':>4} " + " ".join(f"{k + ' steps/s':>16}" for k in kinds) + "   ratio to shm (median)")
    for n in args.envs:
        vecs = {kind: build(kind, args.task, env_config, n) for kind in kinds}
        rates: dict[str, list[float]] = {kind: [] for kind in kinds}
        act_shape = vecs["shm"].act_space.shape
        try:
            for vec in vecs.values():
                vec.reset()
            for _ in range(args.rounds):
                for kind, vec in vecs.items():
                    actions = rng.uniform(-1, 1, (args.steps, n, *act_shape)).astype(np.float32)
                    start = time.perf_counter()
                    for action in actions:
                        vec.step(action)
                    rates[kind].append(args.steps * n / (time.perf_counter() - start))
        finally:
            for vec in vecs.values():
                vec.close()
        medians = {kind: float(np.median(r)) for kind, r in rates.items()}
        ratios = {kind: float(np.median(np.array(r) / np.array(rates["shm"]))) for kind, r in rates.items()}
        print(f"{n:>4} " + " ".join(f"{medians[k]:>16.0f}" for k in kinds) + "   "
              + " ".join(f"{k} {ratios[k]:.2f}" for k in kinds if k != "shm"))  # fmt: skip


if __name__ == "__main__":
    main()
