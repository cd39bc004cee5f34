"""RLBench reach_target and push_button (dense reward) from the front camera, action repeat 2.

RLBench runs on CoppeliaSim through PyRep, neither of which pip can install: the adapter imports them
only when an env is built, and ``check_available`` says what to install.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from suites.base import Env, Protocol, Suite, SuiteUnavailable
from suites.checks import check_choice, check_common, check_positive_int

TASKS = ("reach_target", "push_button")

INSTALL = (
    "RLBench is not installed. It needs CoppeliaSim 4.1 and PyRep (not on PyPI): download CoppeliaSim "
    "4.1.0 (Ubuntu build) from https://www.coppeliarobotics.com/previousVersions, export "
    "COPPELIASIM_ROOT=<its folder>, LD_LIBRARY_PATH=$COPPELIASIM_ROOT:$LD_LIBRARY_PATH and "
    "QT_QPA_PLATFORM_PLUGIN_PATH=$COPPELIASIM_ROOT, then `pip install git+https://github.com/stepjam/PyRep.git "
    "git+https://github.com/stepjam/RLBench.git`; headless machines also need a virtual X server "
    "(see RLBench's README)."
)


def push_button_reward(task: Any, rest_position: float) -> float:
    """HD wmlib-torch/wmlib/envs/rb/push_button.py (after MWM): minus the tip-button distance plus how far
    the button is pressed in. ``task`` is RLBench's PushButton task object."""
    button = np.asarray(task.target_button.get_position())
    tip = np.asarray(task.robot.arm.get_tip().get_position())
    return float(-np.linalg.norm(button - tip) + abs(task.joint.get_joint_position() - rest_position))


class RLBenchEnv(Env):
    """HD wmlib-torch/wmlib/envs/rlbench.py: joint-position deltas plus a discrete gripper, front camera
    only, shaped rewards; a planning/IK failure ends the episode as terminal with reward 0."""

    def __init__(self, task: str, seed: int, env_config: dict[str, Any]) -> None:
        from pyrep.errors import ConfigurationPathError, IKError
        from rlbench.action_modes.action_mode import MoveArmThenGripper
        from rlbench.action_modes.arm_action_modes import JointPosition
        from rlbench.action_modes.gripper_action_modes import Discrete
        from rlbench.backend.exceptions import InvalidActionError
        from rlbench.environment import Environment
        from rlbench.observation_config import ObservationConfig
        from rlbench.tasks import PushButton, ReachTarget

        np.random.seed(seed)  # RLBench samples task variations from numpy's global generator
        size = env_config["image_size"]
        obs_config = ObservationConfig()
        for camera in ("left_shoulder_camera", "right_shoulder_camera", "overhead_camera", "wrist_camera"):
            getattr(obs_config, camera).set_all(False)
        obs_config.front_camera.image_size = (size, size)
        obs_config.front_camera.depth = False
        obs_config.front_camera.point_cloud = False
        obs_config.front_camera.mask = False
        self._env = Environment(
            action_mode=MoveArmThenGripper(
                arm_action_mode=JointPosition(absolute_mode=False), gripper_action_mode=Discrete()
            ),
            obs_config=obs_config,
            headless=True,
            shaped_rewards=True,
        )
        self._env.launch()
        self._task = self._env.get_task(ReachTarget if task == "reach_target" else PushButton)
        self._dense_push = task == "push_button"
        self._errors = (ConfigurationPathError, IKError, InvalidActionError)
        self.action_repeat = env_config["action_repeat"]
        self._time_limit = env_config["time_limit"]
        self.act_space = gym.spaces.Box(-1.0, 1.0, tuple(self._env.action_shape), np.float32)
        self.obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8)})
        self._rest_position = 0.0
        self._steps = 0
        self._last_image: np.ndarray | None = None

    def reset(self) -> dict[str, Any]:
        _, observation = self._task.reset()
        if self._dense_push:
            self._rest_position = self._task._task.joint.get_joint_position()
        self._steps = 0
        self._last_image = np.asarray(observation.front_rgb, np.uint8)
        return self._obs(0.0, is_first=True, is_last=False, is_terminal=False, success=False)

    def step(self, action: np.ndarray | int) -> dict[str, Any]:
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        reward, terminal, success = 0.0, False, False
        try:
            for _ in range(self.action_repeat):
                observation, step_reward, terminal = self._task.step(action)
                success, _ = self._task._task.success()
                reward += (
                    push_button_reward(self._task._task, self._rest_position)
                    if self._dense_push
                    else step_reward
                )
                self._last_image = np.asarray(observation.front_rgb, np.uint8)
                if terminal:
                    break
        except self._errors:
            reward, terminal, success = 0.0, True, False
        self._steps += 1
        last = bool(terminal) or self._steps >= self._time_limit
        return self._obs(
            reward, is_first=False, is_last=last, is_terminal=bool(terminal), success=bool(success)
        )

    def _obs(self, reward: float, **flags: bool) -> dict[str, Any]:
        return {"image": self._last_image, "reward": np.float32(reward), **flags}

    def close(self) -> None:
        self._env.shutdown()


class RLBenchSuite(Suite):
    name = "rlbench"
    description = "RLBench reach_target/push_button (needs CoppeliaSim)"
    # HD wmlib-torch/configs/dreamerv2.yaml rlbench: steps 502000 agent steps at action_repeat 2 (1.004M
    # frames), time_limit 200 agent steps, eval_every 5e3 agent steps, eval_eps 5.
    # Published protocol: thuml/HarmonyDream wmlib-torch/configs/dreamerv2.yaml (rlbench), wmlib/envs/rlbench.py
    protocol = Protocol(budget=1_004_000, eval_every=10_000)
    default_tasks = TASKS

    def tasks(self) -> list[str]:
        return list(TASKS)

    def config(self, preset: str) -> dict[str, Any]:
        check_choice("preset", preset, ("smoke", "small", "paper"))
        env = {
            "obs": "image",
            "image_size": 64,
            "action_repeat": 2,
            "render": "default",  # CoppeliaSim's renderer; kept so every suite records the knob
            "time_limit": 200,  # agent steps (HD TimeLimit wraps the repeated env)
        }
        runs = {
            "paper": {
                "steps": self.protocol.budget,
                "eval_every": self.protocol.eval_every,
                "eval_episodes": 5,
            },
            "small": {"steps": 100_000, "eval_every": 10_000, "eval_episodes": 5},
            "smoke": {"steps": 800, "eval_every": 400, "eval_episodes": 1},
        }
        return {"env": env, "run": runs[preset]}

    def check_available(self) -> None:
        try:
            import pyrep  # noqa: F401
            import rlbench  # noqa: F401
        except ImportError as error:
            raise SuiteUnavailable(INSTALL) from error

    def check_config(self, task: str, env_config: dict[str, Any]) -> None:
        check_choice("rlbench task", task, self.tasks())
        check_common(env_config, ("image",))
        check_positive_int("env.time_limit", env_config["time_limit"])

    def make(self, task: str, seed: int, env_config: dict[str, Any], mode: str = "train") -> Env:
        self.check_available()
        return RLBenchEnv(task, seed, env_config)
