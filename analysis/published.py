"""Published score files -> the tidy frame of ``analysis.load``, so new runs compare with the literature.

Format A (HarmonyDream, one JSON per method): {"steps": [...], "score": {game: [[y per step] per seed]}}.
Format B (danijar/dreamerv3 scores, gzip JSON list): [{"task": "<suite>_<task>", "method", "seed", "xs", "ys"}].
Format B runs need not share x positions; they are binned onto a common grid, and what was done is recorded in
``frame.attrs["notes"]`` (see ``_to_grid``). Steps are env frames in both formats.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import suites
from suites.reference_scores import ATARI_RANDOM_HUMAN

# Env frames per agent step (action repeat of danijar/dreamerv3 configs.yaml): Atari 4, DMC 2.
ACTION_REPEAT = {"atari100k": 4, "atari": 4, "dmc": 2, "dmcr": 2}
DEFAULT_BINS = 20  # HarmonyDream's Atari100K grid: 20 points of 20K frames


def load_published(path: str | Path, bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """One published score file (format A or B) as a tidy frame; ``attrs["notes"]`` says how it was read."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"published score file not found: {path}")
    data = _read_json(path)
    try:
        if isinstance(data, dict) and {"steps", "score"} <= data.keys():
            frame, notes = _format_a(path, data)
        elif (
            isinstance(data, list)
            and data
            and all(isinstance(r, dict) and {"task", "xs", "ys"} <= r.keys() for r in data)
        ):
            frame, notes = _format_b(path, data, bins)
        else:
            raise ValueError(
                f"not a published score file: {path} (expected format A {{'steps', 'score'}} or format B, "
                "a list of {'task', 'method', 'seed', 'xs', 'ys'})"
            )
    except (TypeError, AttributeError, KeyError, IndexError) as err:  # right keys, wrong values inside
        raise ValueError(f"not a published score file: {path} ({type(err).__name__}: {err})") from None
    frame["source"] = path.name
    frame.attrs["notes"] = notes
    return frame


def _read_json(path: Path) -> Any:
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        return json.loads(text)
    except (OSError, ValueError, EOFError, zlib.error) as err:  # zlib.error: a damaged deflate stream
        raise ValueError(
            f"not a published score file: {path} ({type(err).__name__}: not JSON or gzip JSON)"
        ) from None


def _name_parts(path: Path) -> tuple[str, str | None, str]:
    """<origin>-<suite>-<method>.json[.gz] -> (origin, suite or None, method)."""
    stem = path.name.removesuffix(".gz").removesuffix(".json")
    tokens = stem.split("-")
    known = set(suites.names())
    suite = next((t for t in tokens if t in known), None)
    origin = tokens[0] if len(tokens) >= 3 else "published"
    return origin, suite, tokens[-1]


def _canonical_task(suite: str, task: str) -> str:
    """Atari game names differ between files (``jamesbond`` vs ``james_bond``): use the reference table's."""
    if suite.startswith("atari"):
        by_letters = {name.replace("_", ""): name for name in ATARI_RANDOM_HUMAN}
        return by_letters.get(task.replace("_", "").lower(), task)
    return task


def _format_a(path: Path, data: dict[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    origin, suite, method = _name_parts(path)
    suite = suite or "atari100k"  # format A files are Atari (HarmonyDream dreamerv3-jax/scores)
    steps = np.asarray(data["steps"], dtype=np.int64)
    rows = []
    for game, seeds in data["score"].items():
        for seed, ys in enumerate(seeds):
            if len(ys) != len(steps):
                raise ValueError(
                    f"not a published score file: {path} ({game} seed {seed} has {len(ys)} points, steps has {len(steps)})"
                )
            rows.append(
                _run_rows(
                    suite, _canonical_task(suite, game), method, origin, seed, steps, np.asarray(ys, float)
                )
            )
    frame = pd.concat(rows, ignore_index=True)
    runs = frame.groupby("task")["seed"].nunique()
    notes = [
        f"{path.name}: format A, {method} on {suite}, {len(runs)} tasks, {_run_counts(runs)}, "
        f"shared grid of {len(steps)} steps ({steps[0]}..{steps[-1]} env frames); no interpolation"
    ]
    return frame, notes


def _format_b(path: Path, records: list[dict[str, Any]], bins: int) -> tuple[pd.DataFrame, list[str]]:
    origin, named_suite, _ = _name_parts(path)
    shared = all(r["xs"] == records[0]["xs"] for r in records)
    if shared:
        grid, how = np.asarray(records[0]["xs"], dtype=np.int64), "runs share x positions; no interpolation"
    else:
        end = _round_up(max(max(r["xs"]) for r in records if r["xs"]))
        grid = np.linspace(end / bins, end, bins).round().astype(np.int64)
        how = (
            f"binned onto {bins} bins of {end // bins} env frames ending at {end}: each point is the mean of the "
            "returns whose x falls in (point - width, point]; empty bins inside a run's range are linearly "
            "interpolated, bins past its last x are dropped"
        )
    rows, filled = [], 0
    for r in records:
        prefix, _, task = r["task"].partition("_")
        suite = named_suite or prefix
        xs, ys = np.asarray(r["xs"], dtype=np.float64), np.asarray(r["ys"], dtype=np.float64)
        if shared:
            steps, values = grid, ys
        else:
            steps, values, n = _to_grid(xs, ys, grid)
            filled += n
        rows.append(
            _run_rows(
                suite,
                _canonical_task(suite, task),
                r.get("method", "unknown"),
                origin,
                int(r.get("seed", 0)),
                steps,
                values,
            )
        )
    frame = pd.concat(rows, ignore_index=True)
    runs = frame.groupby("task")["seed"].nunique()
    methods = ", ".join(sorted(frame["agent"].unique()))
    notes = [
        f"{path.name}: format B, {methods} on {', '.join(sorted(frame['suite'].unique()))}, {len(runs)} tasks, {_run_counts(runs)}; {how}"
    ]
    if filled:
        notes.append(f"{path.name}: {filled} empty bin(s) filled by linear interpolation")
    return frame, notes


def _to_grid(xs: np.ndarray, ys: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    width = grid[0] if len(grid) == 1 else grid[1] - grid[0]
    which = np.searchsorted(grid, xs, side="left")  # x in (grid[i] - width, grid[i]] -> bin i
    inside = (which < len(grid)) & (xs > grid[0] - width)
    sums = np.bincount(which[inside], ys[inside], minlength=len(grid))
    counts = np.bincount(which[inside], minlength=len(grid))
    last = int(which[inside].max()) if inside.any() else -1
    keep = np.arange(len(grid)) <= last
    means = np.divide(sums, counts, out=np.full(len(grid), np.nan), where=counts > 0)
    empty = keep & (counts == 0)
    if empty.any() and (counts > 0).any():
        seen = np.flatnonzero(counts > 0)
        means[empty] = np.interp(grid[empty], grid[seen], means[seen])
    return grid[keep], means[keep], int(empty.sum())


def _round_up(x: float) -> int:
    """Round up to two significant digits (399,416 -> 400,000) so grids end on the budget."""
    scale = 10 ** max(int(np.floor(np.log10(max(x, 1)))) - 1, 0)
    return int(np.ceil(x / scale) * scale)


def _run_rows(suite, task, method, origin, seed, steps, values) -> pd.DataFrame:
    repeat = ACTION_REPEAT.get(suite)
    agent_steps = pd.array(steps // repeat if repeat else [None] * len(steps), dtype="Int64")
    return pd.DataFrame(
        dict(
            suite=suite,
            task=task,
            agent=method,
            variant=f"{method} ({origin})",
            seed=seed,
            run_id=f"{origin}:{suite}/{task}/{method}/seed{seed}",
            step=np.asarray(steps, dtype=np.int64),
            agent_step=agent_steps,
            metric="return",
            value=values,
        )
    )


def _run_counts(runs: pd.Series) -> str:
    low, high = int(runs.min()), int(runs.max())
    return f"{low} runs per task" if low == high else f"{low}-{high} runs per task (differ by task)"
