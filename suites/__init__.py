"""Suite registry: name -> Suite. Modules import lazily, so listing suites never loads a simulator."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from suites.base import Suite

# name -> (module, class, one-line description)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "dmc": ("suites.dmc", "DMCSuite", "DeepMind Control from pixels (or state), action repeat 2"),
    "dmcr": ("suites.dmcr", "DMCRSuite", "DMC Remastered: per-episode visual randomisation of 7 factors"),
    "metaworld": (
        "suites.metaworld",
        "MetaWorldSuite",
        "Meta-World v3 manipulation from pixels, success rate",
    ),
    "atari100k": ("suites.atari", "Atari100kSuite", "Atari 100K: 26 games, 400K frames, human-normalised"),
    "rlbench": ("suites.rlbench", "RLBenchSuite", "RLBench reach_target/push_button (needs CoppeliaSim)"),
    "gym": (
        "suites.gym",
        "GymSuite",
        "Cheap gymnasium state tasks (Pendulum-v1, CartPole-v1) for sanity checks",
    ),
}


def names() -> list[str]:
    return list(_REGISTRY)


def describe(name: str) -> str:
    return _REGISTRY[name][2]


def get(name: str) -> Suite:
    if name not in _REGISTRY:
        raise KeyError(name)
    module, cls, _ = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)()


# env.obs, which every suite's env section has, -> the observation keys its envs provide
OBSERVATION_KEYS = {"image": ["image"], "state": ["state"], "both": ["image", "state"]}


def observation_keys(env_config: dict[str, Any]) -> list[str]:
    """The observation keys an env built from this (already checked) env section provides."""
    return OBSERVATION_KEYS[env_config["obs"]]
