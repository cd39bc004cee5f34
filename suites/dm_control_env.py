"""The suite Env over a dm_control ``control.Environment``, shared by the dmc and dmcr suites."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from suites import mujoco_render
from suites.base import Env


class DMControlEnv(Env):
    """Pixels (and/or the flattened proprioceptive vector) of a dm_control task.

    The wrapped env must have no time limit of its own: ``time_limit`` (env frames) ends episodes here, as
    a truncation (is_last without is_terminal). is_terminal is set only when dm_control ends an episode
    with discount 0. ``before_reset(physics)`` runs before every reset (DMCR redraws its visuals there).
    """

    def __init__(
        self,
        env: Any,
        *,
        obs: str,
        image_size: int,
        action_repeat: int,
        render: str,
        camera: int,
        time_limit: int,
        before_reset: Callable[[Any], None] | None = None,
    ) -> None:
        self._env = env
        self.physics = env.physics
        mujoco_render.apply_render_mode(self.physics.model, render, image_size, image_size)
        self._obs_kind = obs
        self._size = image_size
        self._camera = camera
        self._time_limit = time_limit
        self._before_reset = before_reset
        self.action_repeat = action_repeat
        spec = env.action_spec()
        self._low = spec.minimum.astype(np.float64)
        self._high = spec.maximum.astype(np.float64)
        self.act_space = gym.spaces.Box(-1.0, 1.0, spec.shape, np.float32)
        spaces = {}
        if obs in ("image", "both"):
            spaces["image"] = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        if obs in ("state", "both"):
            size = sum(int(np.prod(s.shape)) for s in env.observation_spec().values())
            spaces["state"] = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self.obs_space = gym.spaces.Dict(spaces)
        self._frames = 0

    def reset(self) -> dict[str, Any]:
        if self._before_reset is not None:
            self._before_reset(self.physics)
        self._frames = 0
        time_step = self._env.reset()
        return self._obs(time_step, 0.0, is_first=True, is_last=False, is_terminal=False)

    def step(self, action: np.ndarray | int) -> dict[str, Any]:
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        action = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
        reward = 0.0
        for _ in range(self.action_repeat):
            time_step = self._env.step(action)
            reward += time_step.reward or 0.0
            self._frames += 1
            if time_step.last() or self._frames >= self._time_limit:
                break
        terminal = bool(time_step.last() and time_step.discount == 0)
        last = bool(time_step.last() or self._frames >= self._time_limit)
        return self._obs(time_step, reward, is_first=False, is_last=last, is_terminal=terminal)

    def render(self) -> np.ndarray:
        # dm_control hands back a flipped view (negative strides), which torch.as_tensor refuses
        frame = self.physics.render(height=self._size, width=self._size, camera_id=self._camera)
        return np.ascontiguousarray(frame)

    def _obs(self, time_step: Any, reward: float, **flags: bool) -> dict[str, Any]:
        obs: dict[str, Any] = {"reward": np.float32(reward), **flags}
        if "image" in self.obs_space.spaces:
            obs["image"] = self.render()
        if "state" in self.obs_space.spaces:
            parts = [np.asarray(v, np.float32).ravel() for v in time_step.observation.values()]
            obs["state"] = np.concatenate(parts)
        return obs

    def close(self) -> None:
        self._env.close()
