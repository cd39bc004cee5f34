"""Evidence of learning: train agents with the `small` preset and print each eval curve and wall time.

Targets: gym Pendulum-v1 (state) mean eval return >= -400 within 20K env steps for every agent (random
~ -1200); dmc cartpole_balance from pixels >= 600 within 100K env frames for dreamerv3, harmonydream,
dreamerpro and tdmpc. Runs go through the real `bench run` and land in --results, so an interrupted benchmark
resumes where it stopped.

    python benchmarks/learning.py --suite gym --task Pendulum-v1 --agents dreamerv3,harmonydream --threshold -400
    python benchmarks/learning.py --suite dmc --task cartpole_balance --agents dreamerv3 --threshold 600

``--stop-after K`` ends each run once its last K evals have all reached the threshold (the run checkpoints
and is left "preempted"; rerun without the flag to train it to the end): the first pass is what the target
asks, and the rest of a 12K-step run is compute for nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bench.spec import expand


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
    parser.add_argument(
        "--stop-after", type=int, default=0, metavar="K", help="stop a run once its last K evals passed"
    )
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
        process, stopped = subprocess.Popen(cmd), set()
        while process.poll() is None:
            time.sleep(10)
            if args.stop_after > 0:
                for run_dir in set(variant_dir(args, agent).glob("seed*")) - stopped:
                    if stop_if_passed(run_dir, args.threshold, args.stop_after):
                        stopped.add(run_dir)  # signalled once: a second SIGTERM could land after its handler
        wall = time.perf_counter() - start
        run_dir = variant_dir(args, agent) / f"seed{args.seed}"
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


def variant_dir(args: argparse.Namespace, agent: str) -> Path:
    """The agent's run directory without the seed, named as `bench run` names it (an override set's hash
    included), so that runs of other override sets in the same results folder are never read or stopped."""
    spec = expand(args.suite, [args.task], [agent], [0], "small", args.sets)[0]
    return spec.run_dir(Path(args.results)).parent


def stop_if_passed(run_dir: Path, threshold: float, evals_needed: int) -> bool:
    """SIGTERM a run training on this host (its loop checkpoints and returns) once its last evals all reached
    the threshold; True when signalled."""
    try:
        status = json.loads((run_dir / "status.json").read_text())
        curve = pd.read_parquet(run_dir / "eval.parquet").groupby("step")["return"].mean()
    except (OSError, ValueError):  # not started, or a file being replaced: look again next time
        return False
    passed = len(curve) > evals_needed and (curve.iloc[-evals_needed:] >= threshold).all()
    here = status.get("state") == "running" and status.get("host") == socket.gethostname()
    if not (passed and here and status.get("pid")):
        return False
    print(f"{run_dir}: last {evals_needed} evals >= {threshold}, stopping it", flush=True)
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(status["pid"]), signal.SIGTERM)
    return True


if __name__ == "__main__":
    main()
