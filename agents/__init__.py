"""Agent registry: name -> backbone + balancer. Backbone modules import lazily (torch loads on use).

A backbone module exposes
  ``default_config(backbone: str, preset: str, suite: str) -> {"agent": {...}, "run": {...}}``
      every knob of the agent (including ``balancer``, the full balancer section from
      ``agents.balancers.default_config``) and the run settings it owns (``train_ratio``, ``prefill``);
  ``make(backbone: str, obs_space, act_space, config: dict, device: torch.device) -> Agent`` with ``config``
      the agent section (``backbone`` lets one module serve several, e.g. dreamerv2 and dreamerv3);
  ``sequence_length(config: dict) -> int``: the steps of one replayed sequence (the agent's batch_length).
Any ``<backbone>+<balancer>`` name works; the paper's names are fixed pairs, resolved per suite where the
paper used another backbone there (HarmonyDream on Atari100K is DreamerV3 + harmony: HD's dreamerv3-jax).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AgentEntry:
    backbone: str
    balancer: str | None  # None keeps the backbone's own default (fixed weights)
    description: str
    # (suite, registry name) where the paper ran this name on another backbone
    per_suite: tuple[tuple[str, str], ...] = ()

    @property
    def pair(self) -> str:
        """``<backbone>+<balancer>``: what the name stands for, as spec.json and --dry-run show it."""
        return f"{self.backbone}+{self.balancer or 'fixed'}"


BACKBONES: dict[str, str] = {
    "dreamerv2": "agents.dreamer",
    "dreamerv3": "agents.dreamer",
    "dreamerpro": "agents.dreamerpro",
    "tdmpc": "agents.tdmpc",
}

BALANCERS: dict[str, str] = {
    "fixed": "fixed weights per loss group from the config",
    "harmony": "HarmonyDream's harmonious loss (rectified by default)",
    "uncertainty": "Uncertainty Weighting (Kendall et al. 2018)",
    "dwa": "Dynamic Weight Average (Liu et al. 2019), iteration window",
    "nashmtl": "Nash-MTL bargaining over per-group gradients (Navon et al. 2022)",
}
BALANCER_ALIASES = {"uw": "uncertainty"}

AGENTS: dict[str, AgentEntry] = {
    "dreamerv2": AgentEntry("dreamerv2", None, "DreamerV2: discrete RSSM, KL balancing, fixed loss weights"),
    "dreamerv3": AgentEntry(
        "dreamerv3", None, "DreamerV3 (2023 paper): symlog, two-hot, free bits, fixed weights"
    ),
    "dreamerpro": AgentEntry("dreamerpro", None, "DreamerPro: decoder-free prototypical representations"),
    "tdmpc": AgentEntry("tdmpc", None, "TD-MPC v1: latent model, TD value learning, MPPI planning"),
    "harmonydream": AgentEntry(
        "dreamerv2",
        "harmony",
        "HarmonyDream: DreamerV2 + rectified harmonious loss (DreamerV3 + harmony on atari100k)",
        # HarmonyDream paper, Atari100K: built on DreamerV3 (thuml/HarmonyDream dreamerv3-jax)
        per_suite=(("atari100k", "dreamerv3+harmony"),),
    ),
    "uw": AgentEntry("dreamerv2", "uncertainty", "DreamerV2 + Uncertainty Weighting"),
    "dwa": AgentEntry("dreamerv2", "dwa", "DreamerV2 + Dynamic Weight Average"),
    "nashmtl": AgentEntry("dreamerv2", "nashmtl", "DreamerV2 + Nash-MTL"),
}
# `--agents all`: the eight names of the paper.
ALL = ("dreamerv2", "dreamerv3", "dreamerpro", "tdmpc", "harmonydream", "uw", "dwa", "nashmtl")


def resolve(name: str, suite: str = "") -> AgentEntry:
    """The entry for a registry name (on ``suite``, where the paper changed backbone per suite) or a
    ``<backbone>+<balancer>`` pair, which means the same everywhere; KeyError with the reason."""
    if name in AGENTS:
        entry = AGENTS[name]
        other = dict(entry.per_suite).get(suite)
        return resolve(other) if other else entry
    backbone, sep, balancer = name.partition("+")
    balancer = BALANCER_ALIASES.get(balancer, balancer)
    if sep and backbone in BACKBONES and balancer in BALANCERS:
        return AgentEntry(backbone, balancer, f"{backbone} with the {balancer} balancer")
    raise KeyError(name)


def valid_names() -> list[str]:
    return [*AGENTS, "<backbone>+<balancer>"]


def _module(backbone: str) -> Any:
    return importlib.import_module(BACKBONES[backbone])


def default_config(name: str, preset: str, suite: str) -> dict[str, Any]:
    entry = resolve(name, suite)
    config = _module(entry.backbone).default_config(entry.backbone, preset, suite)
    if entry.balancer is not None:
        config["agent"]["balancer"]["name"] = entry.balancer
    return config


def check_config(name: str, config: dict[str, Any], suite: str = "") -> None:
    """ValueError (one line) on a bad agent section, checked by the backbone that owns it."""
    entry = resolve(name, suite)
    _module(entry.backbone).check_config(entry.backbone, config)


def check_observations(name: str, keys: list[str], config: dict[str, Any], suite: str = "") -> None:
    """ValueError (one line) when the agent cannot read an env with these observation keys; lets the CLI
    refuse e.g. DreamerPro on a state-only suite before anything is built or written."""
    entry = resolve(name, suite)
    _module(entry.backbone).check_observations(entry.backbone, keys, config)


# TD-MPC plans with MPPI over continuous actions (its make refuses a Discrete space); the others take both.
CONTINUOUS_ACTIONS_ONLY = ("tdmpc",)


def check_actions(name: str, discrete: bool, suite: str = "") -> None:
    """ValueError (one line) when the agent cannot act in this kind of action space; lets the planner refuse
    e.g. TD-MPC on Atari before anything is built or written."""
    if discrete and resolve(name, suite).backbone in CONTINUOUS_ACTIONS_ONLY:
        raise ValueError(f"discrete actions are invalid for {name}; valid: continuous (Box) actions")


def replayed_steps_per_update(name: str, config: dict[str, Any], suite: str = "") -> int:
    """Replay steps one update of this agent (its ``config`` agent section) trains on: batch x sequence."""
    return int(config["batch_size"]) * _module(resolve(name, suite).backbone).sequence_length(config)


def make(
    name: str, obs_space: Any, act_space: Any, config: dict[str, Any], device: Any, suite: str = ""
) -> Any:
    entry = resolve(name, suite)
    return _module(entry.backbone).make(entry.backbone, obs_space, act_space, config, device)
