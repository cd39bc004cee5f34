"""IQM sample-efficiency curve with 95% stratified-bootstrap CIs: ours against rliable, same data, same process.

Data: HarmonyDream's two Atari100K score files (2 agents x 26 games x 5 seeds x 20 points, human-normalised).
rliable is called as its Atari100K notebooks do: ``get_interval_estimates`` with a function returning the IQM
at every point. Both run ``--reps`` resamples (default 50,000, rliable's default). The table gives each
side's seconds, the speed-up, and the largest difference in point estimates and in CI endpoints (the latter is
Monte-Carlo noise: two independent bootstraps; for scale, the last column is the largest difference between
two runs of ours with different seeds).

    .venv/bin/python benchmarks/analysis_speed.py               # full: rliable takes minutes per agent
    .venv/bin/python benchmarks/analysis_speed.py --reps 5000   # a quicker look
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics

from analysis import stats
from analysis.normalise import add_scores
from analysis.published import load_published
from analysis.scores import curve_scores

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "data" / "published"
FILES = ["harmonydream-atari100k-harmony_dreamerv3.json", "harmonydream-atari100k-dreamerv3.json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50_000)
    parser.add_argument("--published", type=Path, default=PUBLISHED)
    args = parser.parse_args()

    frame = add_scores(pd.concat([load_published(args.published / f) for f in FILES], ignore_index=True))
    rows = []
    for label, blocks in curve_scores(frame).items():
        ((steps, sample),) = blocks  # complete data: one block of 20 steps
        start = time.perf_counter()
        ours = np.array(stats.aggregate(sample, "iqm", reps=args.reps, seed=0))
        ours_s = time.perf_counter() - start
        again = np.array(stats.aggregate(sample, "iqm", reps=args.reps, seed=1))

        # rliable's layout: (runs, tasks, steps); every task has 5 runs here
        matrix = sample.values.reshape(len(sample.tasks), -1, sample.num_steps).transpose(1, 0, 2)
        np.random.seed(0)
        start = time.perf_counter()
        point, interval = rly.get_interval_estimates(
            {label: matrix},
            lambda s: np.array([metrics.aggregate_iqm(s[..., j]) for j in range(s.shape[-1])]),
            reps=args.reps,
        )
        theirs_s = time.perf_counter() - start
        rows.append(
            dict(
                agent=label,
                points=len(steps),
                reps=args.reps,
                ours_s=round(ours_s, 3),
                rliable_s=round(theirs_s, 2),
                speedup=round(theirs_s / ours_s, 1),
                max_point_diff=float(np.abs(ours[0] - point[label]).max()),
                max_ci_diff=float(np.abs(ours[1:] - interval[label]).max()),
                ours_seed_to_seed_ci_diff=float(np.abs(ours[1:] - again[1:]).max()),
            )
        )
    table = pd.DataFrame(rows)
    total = dict(agent="total", ours_s=table["ours_s"].sum(), rliable_s=table["rliable_s"].sum())
    total["speedup"] = round(total["rliable_s"] / total["ours_s"], 1)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.concat([table, pd.DataFrame([total])], ignore_index=True).to_string(index=False))


if __name__ == "__main__":
    main()
