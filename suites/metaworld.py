"""Meta-World v3 (Farama metaworld 3.x): 50 manipulation tasks from pixels, success at any step."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from suites import mujoco_render
from suites.base import Env, Protocol, Suite
from suites.checks import check_choice, check_common, check_positive_int

CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")


def metaworld_tasks() -> dict[str, str]:
    """``lever-pull`` -> ``lever-pull-v3`` for all 50 v3 tasks."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return {name.removesuffix("-v3"): name for name in ALL_V3_ENVIRONMENTS}


class MetaWorldEnv(Env):
    """One v3 task with object and goal positions drawn afresh at every reset (HD sets
    ``_freeze_rand_vec = False``; MT1's fixed list of 50 goals is not used). The goal is observable
    in ``state`` (HD uses the goal-observable variants). ``success`` is true once the task has been
    solved at any step of the episode; episodes end at ``time_limit`` (truncation, never termination)."""

    def __init__(self, task: str, seed: int, env_config: dict[str, Any]) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        size = env_config["image_size"]
        self._env = ALL_V3_ENVIRONMENTS[metaworld_tasks()[task]](
            render_mode="rgb_array", camera_name=env_config["camera"], width=size, height=size
        )
        env = self._env
        env._set_task_called = True  # we randomise positions ourselves instead of set_task()
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True  # draw positions from env.np_random, which seed() fixes
        env._partially_observable = False
        env.max_path_length = env_config["time_limit"]
        env.seed(seed)
        mujoco_render.apply_render_mode(env.model, env_config["render"], size, size)
        self.action_repeat = env_config["action_repeat"]
        self._time_limit = env_config["time_limit"]
        self._obs_kind = env_config["obs"]
        self.act_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        spaces = {}
        if self._obs_kind in ("image", "both"):
            spaces["image"] = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        if self._obs_kind in ("state", "both"):
            spaces["state"] = gym.spaces.Box(-np.inf, np.inf, env.observation_space.shape, np.float32)
        self.obs_space = gym.spaces.Dict(spaces)
        self._steps = 0
        self._success = False

    def render(self) -> np.ndarray:
        # MuJoCo's offscreen buffer is bottom-up; metaworld 3 returns it unflipped.
        return np.ascontiguousarray(self._env.render()[::-1])

    def reset(self) -> dict[str, Any]:
        state, _ = self._env.reset()
        self._steps = 0
        self._success = False
        return self._obs(state, 0.0, is_first=True, is_last=False)

    def step(self, action: np.ndarray | int) -> dict[str, Any]:
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        reward = 0.0
        for _ in range(self.action_repeat):
            state, rew, _, _, info = self._env.step(action)
            reward += float(rew)
            self._steps += 1
            self._success |= bool(info["success"])
            if self._steps >= self._time_limit:
                break
        return self._obs(state, reward, is_first=False, is_last=self._steps >= self._time_limit)

    def _obs(self, state: np.ndarray, reward: float, is_first: bool, is_last: bool) -> dict[str, Any]:
        obs: dict[str, Any] = {
            "reward": np.float32(reward),
            "is_first": is_first,
            "is_last": is_last,
            "is_terminal": False,
            "success": self._success,
        }
        if "image" in self.obs_space.spaces:
            obs["image"] = self.render()
        if "state" in self.obs_space.spaces:
            obs["state"] = np.asarray(state, np.float32)
        return obs

    def close(self) -> None:
        self._env.close()


class MetaWorldSuite(Suite):
    name = "metaworld"
    description = "Meta-World v3 manipulation from pixels, success rate"
    # HD wmlib-torch/configs/dreamerv2.yaml metaworld: steps 256000, action_repeat 1, time_limit 500,
    # eval_every 1e4, eval_eps 10.
    # Published protocol: thuml/HarmonyDream wmlib-torch/configs/dreamerv2.yaml (metaworld)
    protocol = Protocol(budget=256_000, eval_every=10_000)
    # HD README (metaworld_lever_pull); the HarmonyDream paper also reports handle-pull-side and hammer.
    default_tasks = ("lever-pull", "handle-pull-side", "hammer")

    def tasks(self) -> list[str]:
        return sorted(metaworld_tasks())

    def config(self, preset: str) -> dict[str, Any]:
        check_choice("preset", preset, ("smoke", "small", "paper"))
        env = {
            "obs": "image",  # "image" | "state" | "both"
            "image_size": 64,
            "action_repeat": 1,
            "render": "default" if preset == "paper" else "fast",
            "time_limit": 500,  # agent steps (= env frames at repeat 1)
            # HD configs/dreamerv2.yaml and dreamerv3-jax configs.yaml (metaworld): camera corner. corner2 is
            # the other common choice (HD's env moves it to [0.75, 0.075, 0.7], metaworld 3's corner4).
            "camera": "corner",
        }
        runs = {
            "paper": {
                "steps": self.protocol.budget,
                "eval_every": self.protocol.eval_every,
                "eval_episodes": 10,
            },
            "small": {"steps": 50_000, "eval_every": 5_000, "eval_episodes": 5},
            "smoke": {"steps": 1_000, "eval_every": 500, "eval_episodes": 1},
        }
        return {"env": env, "run": runs[preset]}

    def check_config(self, task: str, env_config: dict[str, Any]) -> None:
        check_choice("metaworld task", task, self.tasks())
        check_common(env_config, ("image", "state", "both"))
        check_positive_int("env.time_limit", env_config["time_limit"])
        check_choice("env.camera", env_config["camera"], CAMERAS)

    def make(self, task: str, seed: int, env_config: dict[str, Any], mode: str = "train") -> Env:
        return MetaWorldEnv(task, seed, env_config)
