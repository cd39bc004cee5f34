"""Cheap gymnasium state tasks (Pendulum-v1, CartPole-v1) for sanity checks and fast learning tests."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from suites.base import Env, Protocol, Suite
from suites.checks import check_choice, check_positive_int

TASKS = ("Pendulum-v1", "CartPole-v1")


class GymEnv(Env):
    """A gymnasium env with a ``state`` observation only; Box actions are rescaled from [-1, 1]."""

    def __init__(self, task: str, seed: int, env_config: dict[str, Any]) -> None:
        self._env = gymnasium.make(task)
        self._seed: int | None = seed
        self.action_repeat = env_config["action_repeat"]
        self._env.action_space.seed(seed)
        space = self._env.action_space
        if isinstance(space, gymnasium.spaces.Box):
            self._low, self._high = space.low.astype(np.float64), space.high.astype(np.float64)
            self.act_space = gymnasium.spaces.Box(-1.0, 1.0, space.shape, np.float32)
        else:
            self.act_space = gymnasium.spaces.Discrete(int(space.n))
        shape = self._env.observation_space.shape
        self.obs_space = gymnasium.spaces.Dict(
            {"state": gymnasium.spaces.Box(-np.inf, np.inf, shape, np.float32)}
        )

    def reset(self) -> dict[str, Any]:
        state, _ = self._env.reset(seed=self._seed)  # seeded once; later resets continue the stream
        self._seed = None
        return self._obs(state, 0.0, is_first=True, is_last=False, is_terminal=False)

    def step(self, action: np.ndarray | int) -> dict[str, Any]:
        if isinstance(self.act_space, gymnasium.spaces.Discrete):
            action = int(action) if isinstance(action, int | np.integer) else int(np.argmax(action))
        else:
            action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
            action = (self._low + (action + 1.0) * 0.5 * (self._high - self._low)).astype(np.float32)
        reward, terminated, truncated = 0.0, False, False
        for _ in range(self.action_repeat):
            state, rew, terminated, truncated, _ = self._env.step(action)
            reward += float(rew)
            if terminated or truncated:
                break
        last = terminated or truncated
        return self._obs(state, reward, is_first=False, is_last=last, is_terminal=terminated)

    def _obs(self, state: np.ndarray, reward: float, **flags: bool) -> dict[str, Any]:
        return {"state": np.asarray(state, np.float32), "reward": np.float32(reward), **flags}

    def close(self) -> None:
        self._env.close()


class GymSuite(Suite):
    name = "gym"
    description = "Cheap gymnasium state tasks (Pendulum-v1, CartPole-v1) for sanity checks"
    # No published protocol: sized so an agent's learning can be checked on a CPU in minutes.
    protocol = Protocol(budget=20_000, eval_every=2_000)
    default_tasks = TASKS

    def tasks(self) -> list[str]:
        return list(TASKS)

    def config(self, preset: str) -> dict[str, Any]:
        check_choice("preset", preset, ("smoke", "small", "paper"))
        env = {"obs": "state", "action_repeat": 1}
        runs = {
            "paper": {"steps": 20_000, "eval_every": 2_000, "eval_episodes": 5},
            "small": {"steps": 20_000, "eval_every": 2_000, "eval_episodes": 5},
            "smoke": {"steps": 600, "eval_every": 300, "eval_episodes": 1},
        }
        return {"env": env, "run": runs[preset]}

    def discrete_actions(self, task: str) -> bool:
        env = gymnasium.make(task)  # classic control: cheap to build, and the space is then exact
        discrete = isinstance(env.action_space, gymnasium.spaces.Discrete)
        env.close()
        return discrete

    def check_config(self, task: str, env_config: dict[str, Any]) -> None:
        check_choice("gym task", task, self.tasks())
        check_choice("env.obs", env_config["obs"], ("state",))
        check_positive_int("env.action_repeat", env_config["action_repeat"])

    def make(self, task: str, seed: int, env_config: dict[str, Any], mode: str = "train") -> Env:
        return GymEnv(task, seed, env_config)
