"""The suite contract: a named set of tasks, its published protocol as data, and an env factory.

Every env speaks one observation dict:
``image`` uint8 (H, W, C), optional ``state`` float32 vector, ``reward`` float32, ``is_first``,
``is_last``, ``is_terminal`` bools (terminal only on true termination, never on a time limit) and, where
the suite defines it, ``success`` bool. ``reset()`` returns the first step (reward 0, is_first True).
Actions: a float vector in [-1, 1] for Box spaces; for Discrete spaces a one-hot vector (argmax is taken)
or an int. Action repeat lives inside the env: one ``step`` is one agent step of ``action_repeat`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np


class SuiteUnavailable(RuntimeError):
    """The suite's simulator is not installed; the message says what to install and how."""


@dataclass(frozen=True)
class Protocol:
    """The budget and evaluation interval of a suite's published protocol, in env frames (its other settings,
    such as action repeat and image size, live in the suite's ``env`` config)."""

    budget: int  # env frames of the paper preset
    eval_every: int  # env frames between evaluations


@dataclass
class Env:
    """Base class of every suite env. Subclasses set the spaces and implement reset/step."""

    obs_space: gym.spaces.Dict = field(init=False)  # image/state keys only
    act_space: gym.spaces.Space = field(init=False)  # Box in [-1, 1] or Discrete
    action_repeat: int = field(init=False, default=1)

    def reset(self) -> dict[str, Any]:
        raise NotImplementedError

    def step(self, action: np.ndarray | int) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Suite:
    """A registry entry. Subclasses fill the class attributes and ``make``."""

    name: str = ""
    description: str = ""
    protocol: Protocol
    default_tasks: tuple[str, ...] = ()

    def tasks(self) -> list[str]:
        """Every task this suite offers (``bench list tasks``)."""
        raise NotImplementedError

    def config(self, preset: str) -> dict[str, Any]:
        """Config sections this suite owns for a preset: ``{"env": {...}, "run": {...}}``.

        ``env`` holds every env knob (obs kind, image size, action repeat, render mode, suite options);
        ``run`` holds the protocol's ``steps`` (budget in env frames), ``eval_every``, ``eval_episodes``.
        """
        raise NotImplementedError

    def discrete_actions(self, task: str) -> bool:
        """Whether this task's env acts through a Discrete space (else a Box); known without building it, so
        the planner can refuse an agent that cannot act there before anything runs."""
        return False

    def check_available(self) -> None:
        """Raise SuiteUnavailable with install instructions if the simulator is missing."""

    def make(self, task: str, seed: int, env_config: dict[str, Any], mode: str = "train") -> Env:
        """Build one env. ``mode`` is "train" or "eval" (DMCR's generalisation split uses it)."""
        raise NotImplementedError
