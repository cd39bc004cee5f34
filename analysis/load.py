"""A results directory -> one tidy DataFrame (the layout is the README's "Results" section).

Columns: suite, task, agent, variant, seed, run_id, step (env frames), agent_step, metric, value, source, then
one column per config key that differs between runs otherwise alike (same suite, task, agent and seed), e.g. a
swept override, plus ``preset``. Eval rows are averaged over the episodes of one evaluation, as published
curves are (each point the mean of its eval episodes): metrics ``return``, ``success`` (where the suite has it)
and ``length``.

Runs that are unfinished (pending, running, preempted), failed or corrupt are left out and named in one
warning and in ``frame.attrs["left_out"]``; ``partial=True`` keeps unfinished and failed runs up to their last
evaluation. A corrupt run never stops the load; each damaged file (unreadable spec.json, eval.parquet or
train.parquet) is listed with its path in ``attrs["damaged"]`` so that callers such as ``bench report`` can
refuse it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

ID_COLUMNS = [
    "suite",
    "task",
    "agent",
    "variant",
    "seed",
    "run_id",
    "step",
    "agent_step",
    "metric",
    "value",
    "source",
]
EVAL_COLUMNS = ("step", "agent_step", "return")
EVAL_METRICS = ("return", "success", "length")


class AnalysisWarning(UserWarning):
    """Data left out or adjusted during analysis; the message names what and why."""


@dataclass
class Run:
    path: Path
    run_id: str
    spec: dict[str, Any]
    state: str


def find_runs(results_dir: str | Path) -> tuple[list[Run], dict[str, str], dict[str, str]]:
    """Every run directory <suite>/<task>/<variant>/seed<k>.

    Returns (readable runs, {run id: problem}, {damaged file path: what is wrong}).
    """
    root = Path(results_dir)
    if not root.exists():
        raise ValueError(f"results directory not found: {root}")
    if not root.is_dir():
        raise ValueError(f"not a results directory (a file): {root}")
    runs, problems, damaged = [], {}, {}
    for path in sorted(root.glob("*/*/*/seed*")):
        if not path.is_dir() or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        run_id = path.relative_to(root).as_posix()
        try:
            spec = json.loads((path / "spec.json").read_text())
            if not isinstance(spec, dict):
                raise ValueError("spec.json is not an object")
        except (OSError, ValueError) as err:
            problems[run_id] = f"corrupt: unreadable spec.json ({type(err).__name__})"
            damaged[str(path / "spec.json")] = _reason(err)
            continue
        try:
            state = json.loads((path / "status.json").read_text()).get("state", "pending")
        except (OSError, ValueError, AttributeError):
            state = "unknown (no readable status.json)"
        runs.append(Run(path, run_id, spec, state))
    if not runs and not problems:
        raise ValueError(
            f"no runs under {root}: expected <suite>/<task>/<variant>/seed<k>/ with spec.json and eval.parquet"
        )
    return runs, problems, damaged


def load(results_dir: str | Path, partial: bool = False) -> pd.DataFrame:
    """Eval curves of every usable run under ``results_dir`` as one tidy frame (see module doc)."""
    runs, left_out, damaged = find_runs(results_dir)
    frames = []
    for run in runs:
        unfinished = run.state != "done"
        if unfinished and not partial:
            left_out[run.run_id] = f"{run.state} (pass partial=True to include it up to its last step)"
            continue
        try:
            frame = _eval_rows(run)
        except Exception as err:  # any unreadable file is reported, never fatal
            left_out[run.run_id] = f"corrupt: eval.parquet {_reason(err)}"
            damaged[str(run.path / "eval.parquet")] = _reason(err)
            continue
        if frame.empty:
            left_out[run.run_id] = f"{run.state}, no evaluation yet"
            continue
        frames.append(frame)
    _warn_left_out(left_out)
    if not frames:
        raise ValueError(
            f"no usable runs under {results_dir}: " + "; ".join(f"{k} ({v})" for k, v in left_out.items())
        )
    tidy = pd.concat(frames, ignore_index=True)
    tidy = _add_config_columns(tidy, {run.run_id: run.spec for run in runs})
    tidy.attrs["left_out"] = left_out
    tidy.attrs["damaged"] = damaged
    return tidy


def load_train(results_dir: str | Path, partial: bool = True) -> pd.DataFrame:
    """train.parquet's ``loss/*`` and ``weight/*`` columns of every run, tidy (metric = the column name).

    Damaged train.parquet files are left out with a warning and listed in ``attrs["damaged"]``.
    """
    runs, left_out, _ = find_runs(results_dir)
    damaged = {}
    frames = []
    for run in runs:
        if run.state != "done" and not partial:
            continue
        path = run.path / "train.parquet"
        if not path.exists():
            continue
        try:
            table = pd.read_parquet(path)
            columns = [c for c in table.columns if c.startswith(("loss/", "weight/"))]
            long = table[["step", "agent_step", *columns]].melt(
                id_vars=["step", "agent_step"], var_name="metric", value_name="value"
            )
        except Exception as err:
            left_out[run.run_id] = f"corrupt: train.parquet {_reason(err)}"
            damaged[str(path)] = _reason(err)
            continue
        frames.append(_identify(long.dropna(subset=["value"]), run))
    _warn_left_out({k: v for k, v in left_out.items() if "train.parquet" in v})
    train = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ID_COLUMNS)
    train.attrs["damaged"] = damaged
    return train


def _eval_rows(run: Run) -> pd.DataFrame:
    path = run.path / "eval.parquet"
    if not path.exists():
        if run.state == "done":
            raise FileNotFoundError("missing")
        return pd.DataFrame()
    table = pd.read_parquet(path)
    missing = [c for c in EVAL_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"lacks column(s) {', '.join(missing)}")
    metrics = [m for m in EVAL_METRICS if m in table.columns and table[m].notna().any()]
    per_eval = table.groupby(["step", "agent_step"], as_index=False)[metrics].mean()
    long = per_eval.melt(id_vars=["step", "agent_step"], var_name="metric", value_name="value")
    return _identify(long, run)


def _identify(long: pd.DataFrame, run: Run) -> pd.DataFrame:
    suite, task, variant, seed_dir = run.run_id.split("/")
    spec = run.spec
    long.insert(0, "suite", spec.get("suite", suite))
    long.insert(1, "task", spec.get("task", task))
    long.insert(2, "agent", spec.get("agent", variant.split("-")[0]))
    long.insert(3, "variant", variant)
    long.insert(4, "seed", int(spec.get("seed", seed_dir.removeprefix("seed"))))
    long.insert(5, "run_id", run.run_id)
    long["source"] = "results"
    long["preset"] = spec.get("preset")
    return long


def _add_config_columns(tidy: pd.DataFrame, specs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Config keys whose value differs between runs that share suite, task, agent and seed."""
    flat = pd.DataFrame.from_dict(
        {rid: _flatten(spec.get("config", {})) for rid, spec in specs.items()}, orient="index"
    )
    flat = flat.loc[flat.index.isin(tidy["run_id"].unique())]
    if flat.empty:
        return tidy
    identity = tidy.drop_duplicates("run_id").set_index("run_id")[["suite", "task", "agent", "seed"]]
    flat = flat.astype(str).join(identity)
    group = flat.groupby(["suite", "task", "agent", "seed"])
    varying = [
        c for c in flat.columns if c not in identity.columns and (group[c].nunique(dropna=False) > 1).any()
    ]
    raw = {rid: _flatten(spec.get("config", {})) for rid, spec in specs.items()}
    for column in varying:
        tidy[column] = tidy["run_id"].map(lambda rid, c=column: raw[rid].get(c))
    return tidy


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _reason(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else 'unreadable'}"


def _warn_left_out(left_out: dict[str, str]) -> None:
    if left_out:
        listing = "; ".join(f"{run} ({why})" for run, why in left_out.items())
        warnings.warn(f"left out {len(left_out)} run(s): {listing}", AnalysisWarning, stacklevel=3)
