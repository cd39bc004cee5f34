"""Loss balancers: turn a world model's group losses into one scalar and report each group's weight.

A world model is multi-task learning over its loss groups (obs, reward, dyn, cont for Dreamer; consistency,
reward, value for TD-MPC). Every balancer takes ``{group: raw scalar loss}`` and returns
``(total, {group: effective weight, detached})``. Learnable parameters are ``nn.Parameter``s of the
balancer (the backbone adds them to its world-model optimizer); state that must survive a checkpoint lives
in registered buffers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

NAMES = ("fixed", "harmony", "uncertainty", "dwa", "nashmtl")
ALIASES = {"uw": "uncertainty"}


def default_config(weights: dict[str, float]) -> dict[str, Any]:
    """Every balancer knob with its default (JSON types only); ``weights`` are the backbone's fixed weights."""
    return {
        "name": "fixed",
        "weights": dict(weights),
        # HD dreamerv2.py: rectified harmonious loss log(1 + sigma) is the paper default
        "rectified": True,
        # HD: obs, reward and the KL term are harmonised; cont keeps its fixed weight
        "harmonize": ["obs", "reward", "dyn"],
        # HD: the s parameters sit inside the world-model grad-norm clipping (faithful default)
        "clip_with_model": True,
        # Liu et al. 2019 / NASH weight_methods.py: temperature 2, iteration window 25 (FIFO of 2x25)
        "dwa_temperature": 2.0,
        "dwa_window": 25,
        # NASH weight_methods.py: update_weights_every 1, max_norm 1.0, optim_niter 20
        "nash_update_every": 1,
        "nash_max_norm": 1.0,
        "nash_iters": 20,
    }


class Balancer(nn.Module):
    """Base: fixed weight per group (groups absent from ``weights`` get 1.0)."""

    needs_shared_params = False

    def __init__(self, groups: Sequence[str], config: dict[str, Any]):
        super().__init__()
        self.groups = list(groups)
        weights = config.get("weights", {})
        self.fixed_weights = {g: float(weights.get(g, 1.0)) for g in self.groups}

    def _check(self, losses: dict[str, torch.Tensor]) -> None:
        if set(losses) != set(self.groups):
            raise ValueError(f"balancer got loss groups {sorted(losses)}; expected {sorted(self.groups)}")

    def forward(
        self, losses: dict[str, torch.Tensor], shared_params: Sequence[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self._check(losses)
        weights = {g: losses[g].new_tensor(self.fixed_weights[g]) for g in self.groups}
        total = sum(weights[g] * losses[g] for g in self.groups)
        return total, weights


class Fixed(Balancer):
    """Fixed loss scales from the config, as the backbones' papers use them."""


def _check_choice(key: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(
            f"agent.balancer.{key}={value!r} is invalid; valid choices: {', '.join(map(str, choices))}"
        )


def _check_positive(key: str, value: Any, kind: type = float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"agent.balancer.{key}={value!r} is invalid; valid: a positive {kind.__name__}")
    if kind is int and not isinstance(value, int):
        raise ValueError(f"agent.balancer.{key}={value!r} is invalid; valid: a positive int")


def validate(groups: Sequence[str], config: dict[str, Any]) -> str:
    """Check a balancer config against the backbone's groups; returns the canonical balancer name."""
    name = ALIASES.get(config.get("name"), config.get("name"))
    _check_choice("name", config.get("name"), [*NAMES, *ALIASES])
    weights = config.get("weights", {})
    if not isinstance(weights, dict):
        raise ValueError(f"agent.balancer.weights={weights!r} is invalid; valid: a mapping group -> weight")
    for group, weight in weights.items():
        _check_choice("weights", group, groups)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ValueError(f"agent.balancer.weights.{group}={weight!r} is invalid; valid: a number >= 0")
    if name == "harmony":  # a harmony knob: other balancers ignore it (TD-MPC has no obs/dyn groups)
        for group in config.get("harmonize", []):
            _check_choice("harmonize", group, groups)
    _check_positive("dwa_temperature", config.get("dwa_temperature", 2.0))
    _check_positive("dwa_window", config.get("dwa_window", 25), int)
    _check_positive("nash_update_every", config.get("nash_update_every", 1), int)
    _check_positive("nash_max_norm", config.get("nash_max_norm", 1.0))
    _check_positive("nash_iters", config.get("nash_iters", 20), int)
    return name


def make(groups: Sequence[str], config: dict[str, Any]) -> Balancer:
    """The balancer named by ``config["name"]`` for these loss groups; ValueError on a bad config."""
    name = validate(groups, config)
    return _CLASSES[name](groups, config)


_CLASSES: dict[str, type[Balancer]] = {"fixed": Fixed}
