"""Typed run configuration: harness defaults, suite and agent sections per preset, dotted overrides.

A resolved config is a nested dict of JSON values with four sections:
``env`` (from the suite), ``agent`` (from the agent registry), ``run`` (budget and schedule from the suite,
training ratio and replay from the agent, the rest from here) and ``log``. Every knob has a default of its
real type; an override must name an existing key and carry a value of that type, so a typo or an ill-typed
value is caught before anything runs.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

PRESETS = ("smoke", "small", "paper")
DEFAULT_PRESET = "paper"

# Harness-owned knobs. Suites fill steps/eval_*; agents fill train_ratio/prefill/replay_capacity.
HARNESS_DEFAULTS: dict[str, Any] = {
    "env": {},
    "agent": {},
    "run": {
        "steps": 0,  # budget in env frames
        "eval_every": 0,  # env frames between evaluations (an eval also runs at 0 and at the budget)
        "eval_episodes": 0,
        "train_ratio": 0.0,  # replayed steps per policy step (DV3 convention, danijar/dreamerv3#154)
        "prefill": 0,  # agent steps of uniformly random actions before training starts
        # updates in one burst right after the prefill (DV2/HD/DreamerPro pretrain, TD-MPC's seed steps)
        "pretrain": 0,
        "replay_capacity": 0,  # agent steps kept in the replay buffer
        "replay_chunk": 1024,  # steps per immutable replay file in the checkpoint
        # stream: a sequence starts anywhere in an env's stream and may cross episodes (DV3, TD-MPC); episodes:
        # within one complete episode, drawn uniformly (DV2, HD, DreamerPro); see bench/replay.py
        "replay_sampling": "stream",
        "replay_ends": 0,  # episodes: extra draws of an episode's last start (HD prioritize_ends: ends_priority)
        "replay_mark_first": False,  # episodes: every sequence starts at is_first (HD wmlib/core/replay.py)
        "envs": 1,  # envs stepped together, one batched policy call (1: in this process; more: workers)
        "env_timeout_s": 600.0,  # an env worker that does not answer a step within this fails the run
        # sample (and on CUDA pin) the next batch of a burst of updates while the current one runs; the same
        # batches either way, so it does not change results (bench/loop.py Updater)
        "prefetch": True,
        "checkpoint_every_s": 600.0,
        "lease_ttl_s": 180.0,  # a run's lease expires this long after its holder's last heartbeat
        "log_every": 1000,  # env frames between train.parquet rows
        "device": "auto",  # auto | cpu | cuda | cuda:N
        "threads": 0,  # torch intra-op threads; 0 = leave torch's default
        "eval_seed_offset": 1_000_000,  # eval env seed = seed + offset, disjoint from training seeds
    },
    "log": {
        "tensorboard": True,
        "progress": "auto",  # auto (bar on a terminal, lines otherwise) | bar | lines | none
        "wandb": False,  # also log to Weights & Biases (pip install 'harmonybench[wandb]')
        "wandb_project": "harmonybench",
        "wandb_group": "",  # "" = suite/task/variant: the seeds of one configuration form a group
    },
}


# Harness settings per preset. Smoke models are too small to gain from a second thread, and on a busy
# 2-core machine two spinning threads per process made a smoke run 10x slower (measured: 12 min vs 56 s).
PRESET_RUN: dict[str, dict[str, Any]] = {
    "smoke": {"threads": 1, "log_every": 100, "envs": 1},
    "small": {"threads": 1, "log_every": 1000, "envs": 1},
    "paper": {},
}


class ConfigError(ValueError):
    """A user mistake in a config value or override; the message is one line for the CLI."""


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base`` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_value(text: str) -> Any:
    """Parse an override value the way a shell user writes it: 1, 0.5, 3e-4, true, none, [a,b], text."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [parse_value(item) for item in split_items(inner)] if inner else []
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
        if math.isfinite(number) or lowered in ("inf", "-inf", "nan"):
            return number
    except ValueError:
        pass
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _type_name(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "section"}.get(
        type(value), type(value).__name__
    )


def coerce(key: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default``; ints widen to floats. ConfigError otherwise."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        return (
            value if isinstance(value, str) else json.dumps(value) if isinstance(value, list) else str(value)
        )
    elif isinstance(default, list):
        if isinstance(value, list):
            if default:
                return [coerce(key, item, default[0]) for item in value]
            return value
        return [value]
    raise ConfigError(
        f"--set {key}={_show(value)}: expected a {_type_name(default)} (default {_show(default)})"
    )


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def apply_override(config: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` in place. The key must exist; a string set on a section with a ``name`` (e.g.
    ``agent.balancer=uw``) sets that section's name."""
    parts = key.split(".")
    node = config
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            prefix = ".".join(parts[:depth])
            choices = sorted(node) if isinstance(node, dict) else []
            where = f" under '{prefix}'" if prefix else ""
            raise ConfigError(
                f"unknown config key '{key}'{where}; valid: {', '.join(choices) if choices else '(none)'}"
            )
        if depth < len(parts) - 1:
            node = node[part]
    last = parts[-1]
    default = node[last]
    if isinstance(default, dict):
        if "name" in default and isinstance(value, str):
            default["name"] = value
            return
        raise ConfigError(f"'{key}' is a section; set one of its keys: {', '.join(sorted(default))}")
    node[last] = coerce(key, value, default)


def parse_assignment(text: str, flag: str = "--set") -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ConfigError(f"{flag} '{text}': expected dotted.key=value")
    return key.strip(), value.strip()


def split_items(text: str) -> list[str]:
    """Split at the commas outside brackets: ``[obs,reward],[obs]`` -> ``["[obs,reward]", "[obs]"]``."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    return [*items, text[start:]]


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``agent.balancer.weights.reward=1,10,100`` -> (key, [1, 10, 100]); list values keep their commas:
    ``env.vary=[bg],[bg,floor]`` -> (key, [["bg"], ["bg", "floor"]])."""
    key, values = parse_assignment(text, "--sweep")
    items = [v.strip() for v in split_items(values)]
    if len(items) < 2 or any(not v for v in items):
        raise ConfigError(f"--sweep '{text}': expected dotted.key=v1,v2[,...] with at least two values")
    return key, [parse_value(v) for v in items]
