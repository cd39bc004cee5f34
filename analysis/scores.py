"""Tidy frame -> the per-agent score sets the statistics work on (``analysis.bootstrap.Scores``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.bootstrap import Scores


def final_scores(frame: pd.DataFrame, by: str = "variant", metric: str = "score") -> dict[str, Scores]:
    """{label: Scores of each run's last evaluated value}. Run counts may differ between tasks."""
    rows = frame[frame["metric"] == metric].dropna(subset=["value"])
    last = rows.sort_values("step").groupby("run_id", sort=False).tail(1)
    return {
        str(label): Scores.from_tasks({str(t): g["value"].to_numpy(float) for t, g in group.groupby("task")})
        for label, group in last.groupby(by, sort=True)
    }


def curve_scores(
    frame: pd.DataFrame, by: str = "variant", metric: str = "score"
) -> dict[str, list[tuple[np.ndarray, Scores]]]:
    """{label: [(steps, Scores over those steps), ...]} for sample-efficiency curves.

    A step is kept where every task of the label has at least one run evaluated there; the runs present at
    a step form its sample. Consecutive steps with the same runs present share one block, so complete data
    is one block and is bootstrapped in one vectorised call.
    """
    rows = frame[frame["metric"] == metric].dropna(subset=["value"])
    out = {}
    for label, group in rows.groupby(by, sort=True):
        table = group.pivot_table(index="run_id", columns="step", values="value", aggfunc="mean")
        task_of = group.drop_duplicates("run_id").set_index("run_id")["task"].reindex(table.index)
        present = table.notna().to_numpy()
        tasks = task_of.unique()
        covered = np.all([present[(task_of == t).to_numpy()].any(axis=0) for t in tasks], axis=0)
        steps = table.columns.to_numpy()[covered]
        present, values = present[:, covered], table.to_numpy()[:, covered]
        blocks = []
        start = 0
        for end in range(1, len(steps) + 1):
            if end == len(steps) or not np.array_equal(present[:, end], present[:, start]):
                runs = present[:, start]
                per_task = {str(t): values[runs & (task_of == t).to_numpy(), start:end] for t in tasks}
                blocks.append((steps[start:end], Scores.from_tasks(per_task)))
                start = end
        out[str(label)] = blocks
    return out
