"""Evidence of learning: train agents with the `small` preset and print each eval curve and wall time.

Targets: gym Pendulum-v1 (state) mean eval return >= -400 within 20K env steps for every agent (random
~ -1200); dmc cartpole_balance from pixels >= 600 within 100K env frames for dreamerv3, harmonydream,
dreamerpro and tdmpc. Runs go through the real `bench run` and land in --results, so an interrupted benchmark
resumes where it stopped.

    python benchmarks/learning.py --suite gym --task Pendulum-v1 --agents dreamerv3,harmonydream --threshold -400
    python benchmarks/learning.py --suite dmc --task cartpole_balance --agents dreamerv3 --threshold 600
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="gym")
    parser.add_argument("--task", default="Pendulum-v1")
    parser.add_argument("--agents", default="dreamerv3,dreamerv2,harmonydream,uw,dwa,nashmtl,tdmpc")
    parser.add_argument("--threshold", type=float, default=-400.0)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="report seed K; runs seeds 0..K (bench run --seeds K+1), timed together",
    )
    parser.add_argument("--results", default="results/learning")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    args = parser.parse_args()
    rows = []
    for agent in args.agents.split(","):
        cmd = [sys.executable, "-m", "bench.cli", "run", "--suite", args.suite, "--tasks", args.task,
               "--agents", agent, "--preset", "small", "--results", args.results]  # fmt: skip
        for item in args.sets:
            cmd += ["--set", item]
        if args.seed:
            cmd += ["--seeds", str(args.seed + 1)]
        start = time.perf_counter()
        subprocess.run(cmd, check=False)
        wall = time.perf_counter() - start
        variant = f"{agent}-small"
        if args.sets:  # the run directory of an override set carries its hash: ask bench where it is
            variant = next(
                p.name for p in (Path(args.results) / args.suite / args.task).glob(f"{agent}-small-*")
            )
        run_dir = Path(args.results) / args.suite / args.task / variant / f"seed{args.seed}"
        evals = pd.read_parquet(run_dir / "eval.parquet") if (run_dir / "eval.parquet").exists() else None
        if evals is None or evals.empty:
            rows.append((agent, "no eval rows", "", "", "", f"{wall:.0f}", "no"))
            continue
        train = run_dir / "train.parquet"
        updates = (
            str(int(pd.read_parquet(train, columns=["updates"])["updates"].iloc[-1]))
            if train.exists()
            else ""
        )
        curve = evals.groupby("step")["return"].mean()
        print(f"\n{agent}: eval curve (env frames -> mean return)")
        for step, value in curve.items():
            print(f"  {step:>8} {value:9.1f}")
        best = curve.max()
        reached = curve[curve >= args.threshold]
        first = str(int(reached.index[0])) if len(reached) else "-"
        rows.append(
            (
                agent,
                f"{curve.iloc[-1]:.1f}",
                f"{best:.1f}",
                first,
                updates,
                f"{wall:.0f}",
                "yes" if len(reached) else "no",
            )
        )
    print(f"\n{args.suite}/{args.task}, preset small, threshold {args.threshold}")
    print(
        f"{'agent':<16} {'final':>9} {'best':>9} {'first >= thr':>13} {'updates':>8} {'wall s':>8} {'met':>4}"
    )
    for row in rows:
        print(f"{row[0]:<16} {row[1]:>9} {row[2]:>9} {row[3]:>13} {row[4]:>8} {row[5]:>8} {row[6]:>4}")


if __name__ == "__main__":
    main()
