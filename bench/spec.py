"""Run specs: (suite, task, agent, seed, preset, overrides) -> stable run id and resolved config.

The id depends only on what the user asked for, never on the time or the machine, so the same command twice
finds the same runs, and any changed override gives a new run directory instead of overwriting one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import agents
import suites
from bench import config as cfg


@dataclass(frozen=True)
class RunSpec:
    suite: str
    task: str
    agent: str
    seed: int
    preset: str = cfg.DEFAULT_PRESET
    # sorted (dotted key, typed value); list values are stored as tuples so that a spec stays hashable
    overrides: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def variant(self) -> str:
        """``<agent>[-<preset>][-<hash>]``: readable, and distinct for every preset/override set. ``log.*``
        overrides say where a run reports, not what it trains, so they leave the identity alone (W&B can be
        switched on for a run that already exists)."""
        name = self.agent
        if self.preset != cfg.DEFAULT_PRESET:
            name += f"-{self.preset}"
        trained = [pair for pair in self.overrides if not pair[0].startswith("log.")]
        if trained:
            blob = json.dumps(trained, sort_keys=True).encode()
            name += "-" + hashlib.sha1(blob).hexdigest()[:8]
        return name

    @property
    def run_id(self) -> str:
        return f"{self.suite}/{self.task}/{self.variant}/seed{self.seed}"

    def run_dir(self, results: Path) -> Path:
        return results / self.suite / self.task / self.variant / f"seed{self.seed}"

    def resolve(self) -> dict[str, Any]:
        """The full config: harness defaults <- suite preset <- agent preset <- overrides."""
        suite = suites.get(self.suite)
        config = cfg.merge(cfg.HARNESS_DEFAULTS, suite.config(self.preset))
        config = cfg.merge(config, agents.default_config(self.agent, self.preset, self.suite))
        config = cfg.merge(config, {"run": cfg.PRESET_RUN[self.preset]})
        for key, value in self.overrides:
            cfg.apply_override(config, key, _thawed(value))
        return config

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "suite": self.suite,
            "task": self.task,
            "agent": self.agent,
            "resolved_agent": agents.resolve(self.agent, self.suite).pair,  # e.g. dreamerv3+harmony
            "seed": self.seed,
            "preset": self.preset,
            "overrides": {key: _thawed(value) for key, value in self.overrides},
        }


def check_names(suite: str, tasks: Sequence[str], agent_names: Sequence[str], preset: str) -> None:
    """Validate names before anything is resolved; ConfigError with the valid choices."""
    if suite not in suites.names():
        raise cfg.ConfigError(f"unknown suite '{suite}'; valid: {', '.join(suites.names())}")
    if preset not in cfg.PRESETS:
        raise cfg.ConfigError(f"unknown preset '{preset}'; valid: {', '.join(cfg.PRESETS)}")
    valid_tasks = suites.get(suite).tasks()
    for task in tasks:
        if task not in valid_tasks:
            shown = ", ".join(valid_tasks[:40]) + (" ..." if len(valid_tasks) > 40 else "")
            raise cfg.ConfigError(f"unknown task '{task}' for suite '{suite}'; valid: {shown}")
    for name in agent_names:
        try:
            agents.resolve(name)
        except KeyError:
            raise cfg.ConfigError(
                f"unknown agent '{name}'; valid: {', '.join(agents.valid_names())}"
            ) from None


def expand(
    suite: str,
    tasks: Sequence[str],
    agent_names: Sequence[str],
    seeds: Iterable[int],
    preset: str,
    sets: Sequence[str] = (),
    sweeps: Sequence[str] = (),
) -> list[RunSpec]:
    """tasks x agents x seeds x sweep grid -> RunSpecs, every override checked against the real config."""
    check_names(suite, tasks, agent_names, preset)
    fixed = [cfg.parse_assignment(s) for s in sets]
    fixed_typed = [(k, cfg.parse_value(v)) for k, v in fixed]
    grid_axes = [cfg.parse_sweep(s) for s in sweeps]
    keys = [k for k, _ in grid_axes]
    if len(set(keys)) != len(keys) or set(keys) & {k for k, _ in fixed_typed}:
        raise cfg.ConfigError("the same key is given twice across --set/--sweep")
    combos = list(itertools.product(*[values for _, values in grid_axes])) or [()]
    # Validate once per agent (types differ per agent), normalising each value to the default's type.
    specs: list[RunSpec] = []
    for agent_name in agent_names:
        template = RunSpec(suite, tasks[0], agent_name, 0, preset).resolve()
        for combo in combos:
            pairs = fixed_typed + list(zip(keys, combo))
            typed = _typed_overrides(template, pairs)
            for task in tasks:
                for seed in seeds:
                    specs.append(RunSpec(suite, task, agent_name, seed, preset, typed))
    return specs


def _typed_overrides(
    template: dict[str, Any], pairs: Sequence[tuple[str, Any]]
) -> tuple[tuple[str, Any], ...]:
    probe = json.loads(json.dumps(template))
    out = []
    for key, value in pairs:
        cfg.apply_override(probe, key, value)
        node: Any = probe
        for part in key.split("."):
            node = node[part]
        out.append((key, _frozen(node["name"] if isinstance(node, dict) else node)))
    return tuple(sorted(out))


def _frozen(value: Any) -> Any:
    """A list override value as a tuple (hashable; JSON and the variant hash still see a list)."""
    return tuple(_frozen(item) for item in value) if isinstance(value, list) else value


def _thawed(value: Any) -> Any:
    return [_thawed(item) for item in value] if isinstance(value, tuple) else value
