"""Normalised scores from fixed references only, so adding an agent never changes another agent's numbers.

Per suite (each suite's published metric, as in the README's suite table):
- atari100k / atari: human-normalised score (return - random) / (human - random), standard table in
  ``suites.reference_scores``;
- metaworld, rlbench: success rate (the mean of eval episodes' success);
- dmc, dmcr: return / 1000 (DMC rewards are in [0, 1] per step, 1000 steps per episode);
- any suite: min-max against fixed published reference scores {suite: {task: (low, high)}} when given;
- otherwise: the raw return, said so in the notes.
Never the min/max of whatever runs are being compared.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from suites.reference_scores import ATARI_RANDOM_HUMAN

SUCCESS_SUITES = ("metaworld", "rlbench")
RETURN_1000_SUITES = ("dmc", "dmcr")
ATARI_SUITES = ("atari100k", "atari")

Reference = Mapping[str, Mapping[str, tuple[float, float]]]
RAW_RETURN = "raw return (no fixed reference for this suite; pass reference scores to normalise)"


def add_scores(frame: pd.DataFrame, reference: Reference | None = None) -> pd.DataFrame:
    """Append ``metric == "score"`` rows (the normalised score).

    ``attrs["normalisation"]`` = {suite: how}; ``attrs["normalised"]`` = {suite: whether the score is a
    normalised one (a fraction, shown in percent) rather than the raw return}.
    """
    reference = reference or {}
    parts, how = [], {}
    for suite, rows in frame.groupby("suite", sort=True):
        scored, how[suite] = _score_suite(suite, rows, reference.get(suite))
        parts.append(scored)
    scores = pd.concat([frame, *parts], ignore_index=True)
    normalised = {suite: text != RAW_RETURN for suite, text in how.items()}
    scores.attrs = {**frame.attrs, "normalisation": how, "normalised": normalised}
    return scores


def _score_suite(suite: str, rows: pd.DataFrame, table: Mapping[str, tuple[float, float]] | None):
    returns = rows[rows["metric"] == "return"].copy()
    if table is not None:
        missing = sorted(set(returns["task"]) - set(table))
        if missing:
            raise ValueError(
                f"reference scores for {suite} lack task(s) {', '.join(missing)}; given: {', '.join(sorted(table))}"
            )
        low = returns["task"].map(lambda t: table[t][0])
        high = returns["task"].map(lambda t: table[t][1])
        returns["value"] = (returns["value"] - low) / (high - low)
        return _as_score(returns), "min-max against the given fixed reference scores"
    if suite in ATARI_SUITES:
        unknown = sorted(set(returns["task"]) - set(ATARI_RANDOM_HUMAN))
        if unknown:
            raise ValueError(
                f"no Atari random/human score for {', '.join(unknown)}; known: {', '.join(ATARI_RANDOM_HUMAN)}"
            )
        random = returns["task"].map(lambda t: ATARI_RANDOM_HUMAN[t][0])
        human = returns["task"].map(lambda t: ATARI_RANDOM_HUMAN[t][1])
        returns["value"] = (returns["value"] - random) / (human - random)
        return _as_score(returns), "human-normalised score (standard random/human table)"
    if suite in SUCCESS_SUITES:
        success = rows[rows["metric"] == "success"].copy()
        if success.empty or success["value"].isna().all():
            raise ValueError(f"suite {suite} is scored by success rate but its runs logged no success")
        return _as_score(success), "success rate"
    if suite in RETURN_1000_SUITES:
        returns["value"] = returns["value"] / 1000.0
        return _as_score(returns), "return / 1000"
    return _as_score(returns), RAW_RETURN


def _as_score(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.assign(metric="score")
    return rows[np.isfinite(rows["value"].astype(float))]
