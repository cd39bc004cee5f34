"""RLBench adapter against a STAND-IN for RLBench/PyRep (CoppeliaSim cannot be installed here).

The stand-in modules below implement only the part of RLBench's API that suites/rlbench.py uses (a point
"arm" that moves by its joint deltas; a button that is pressed when the tip is close). They test the
adapter's plumbing — obs dict, action repeat, time limit, dense push_button reward, error handling and the
unavailable-suite message — not RLBench itself.
"""

import sys
import types

import numpy as np
import pytest

import suites
from suites.base import SuiteUnavailable


class _Camera:
    def set_all(self, value):
        self.enabled = value


class StandInObservationConfig:
    def __init__(self):
        for name in ("left_shoulder_camera", "right_shoulder_camera", "overhead_camera", "wrist_camera"):
            setattr(self, name, _Camera())
        self.front_camera = _Camera()


class StandInError(Exception):
    pass


class _Point:
    def __init__(self, position):
        self.position = np.asarray(position, float)

    def get_position(self):
        return self.position


class StandInPushButton:
    """Button at (1, 0, 0); its joint is pressed in by how close the tip comes (within 0.2)."""

    def __init__(self):
        self.tip = _Point([0.0, 0.0, 0.0])
        self.target_button = _Point([1.0, 0.0, 0.0])
        self.robot = types.SimpleNamespace(arm=types.SimpleNamespace(get_tip=lambda: self.tip))
        self.joint = types.SimpleNamespace(get_joint_position=self._press)

    def _press(self):
        return max(0.0, 0.2 - np.linalg.norm(self.tip.position - self.target_button.position))

    def success(self):
        return self._press() > 0.1, 1.0


class StandInReachTarget(StandInPushButton):
    pass


class StandInTaskEnvironment:
    def __init__(self, task_class, size):
        self._task = task_class()
        self._size = size
        self.steps = 0

    def _obs(self):
        return types.SimpleNamespace(front_rgb=np.full(self._size + (3,), self.steps % 256, np.uint8))

    def reset(self):
        self._task.tip.position = np.zeros(3)
        return ["push the button"], self._obs()

    def step(self, action):
        if np.isnan(action).any():
            raise StandInError("invalid action")
        self.steps += 1
        self._task.tip.position = self._task.tip.position + 0.1 * np.asarray(action[:3])
        success, _ = self._task.success()
        reward = -float(np.linalg.norm(self._task.tip.position - self._task.target_button.position))
        return self._obs(), reward, success


class StandInEnvironment:
    def __init__(self, action_mode, obs_config, headless, shaped_rewards):
        assert headless and shaped_rewards
        self._size = obs_config.front_camera.image_size
        self.action_shape = (8,)  # 7 joint deltas + gripper
        self.launched = self.shut = False

    def launch(self):
        self.launched = True

    def get_task(self, task_class):
        return StandInTaskEnvironment(task_class, self._size)

    def shutdown(self):
        self.shut = True


@pytest.fixture
def standin_rlbench(monkeypatch):
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)

    def anything(*args, **kwargs):
        return types.SimpleNamespace(args=args, kwargs=kwargs)

    module("pyrep")
    module("pyrep.errors", ConfigurationPathError=StandInError, IKError=StandInError)
    module("rlbench")
    module("rlbench.action_modes")
    module("rlbench.action_modes.action_mode", MoveArmThenGripper=anything)
    module("rlbench.action_modes.arm_action_modes", JointPosition=anything)
    module("rlbench.action_modes.gripper_action_modes", Discrete=anything)
    module("rlbench.backend")
    module("rlbench.backend.exceptions", InvalidActionError=StandInError)
    module("rlbench.environment", Environment=StandInEnvironment)
    module("rlbench.observation_config", ObservationConfig=StandInObservationConfig)
    module("rlbench.tasks", PushButton=StandInPushButton, ReachTarget=StandInReachTarget)


def make(task, **overrides):
    suite = suites.get("rlbench")
    env_config = {**suite.config("smoke")["env"], **overrides}
    suite.check_config(task, env_config)
    return suite.make(task, 0, env_config)


def test_standin_push_button_dense_reward_success_and_time_limit(standin_rlbench):
    env = make("push_button", time_limit=20)
    obs = env.reset()
    assert obs["image"].shape == (64, 64, 3) and obs["is_first"] and not obs["success"]
    toward = np.array([1.0, 0, 0, 0, 0, 0, 0, 0], np.float32)
    rewards, steps = [], [obs]
    while not steps[-1]["is_last"]:
        steps.append(env.step(toward))
        rewards.append(float(steps[-1]["reward"]))
    # Dense reward: each repeat adds -distance + press depth, so it rises as the tip nears the button.
    assert rewards[1] > rewards[0]
    assert env._task.steps == 2 * (len(steps) - 1) or steps[-1]["is_terminal"]  # action repeat 2
    assert steps[-1]["success"] and steps[-1]["is_terminal"]
    env.close()
    assert env._env.shut


def test_standin_reach_target_truncates_at_the_time_limit(standin_rlbench):
    env = make("reach_target", time_limit=3)
    env.reset()
    away = -np.ones(8, np.float32)
    steps = [env.step(away) for _ in range(3)]
    assert steps[-1]["is_last"] and not steps[-1]["is_terminal"] and not any(s["is_last"] for s in steps[:-1])


def test_standin_invalid_action_ends_the_episode_as_terminal(standin_rlbench):
    env = make("reach_target")
    env.reset()
    obs = env.step(np.full(8, np.nan, np.float32))
    assert obs["is_terminal"] and obs["is_last"] and obs["reward"] == 0 and not obs["success"]


def test_without_rlbench_the_suite_lists_tasks_and_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rlbench", None)  # import rlbench -> ImportError
    suite = suites.get("rlbench")
    assert suite.tasks() == ["reach_target", "push_button"]
    with pytest.raises(SuiteUnavailable, match="CoppeliaSim"):
        suite.check_available()
    with pytest.raises(SuiteUnavailable, match="pip install"):
        suite.make("reach_target", 0, suite.config("smoke")["env"])
