"""Env frames/s of whole runs (acting, learning, logging, checkpoints) with 1, 2, 4 envs, and the
share of the run's wall time in each part of the loop (from train.parquet's ``time/*`` columns; "other" is
start-up, building envs and agent, and the rest).

Each run is the real ``bench run`` on dmc cartpole_balance with the chosen preset's model and the paper
preset's train ratio (replayed steps per policy step, summed over the envs) and a short prefill, so the
learner works at the paper's pace on a budget of minutes. Evaluation is left out (run.eval_episodes=0): one
500-step eval episode would outweigh such a budget.

    MUJOCO_GL=egl nice -n 10 .venv/bin/python benchmarks/run_speed.py [--agents dreamerv3 harmonydream]
        [--envs 1 2 4] [--frames 400] [--prefill 128] [--preset small] [--device cpu] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.spec import RunSpec

PARTS = ("env", "policy", "update", "log", "checkpoint")
TASK = "cartpole_balance"


def measure(agent: str, envs: int, args: argparse.Namespace, results: Path) -> dict[str, float]:
    train_ratio = RunSpec("dmc", TASK, agent, 0, "paper").resolve()["run"]["train_ratio"]
    settings = {
        "run.envs": envs,
        "run.train_ratio": train_ratio,
        "run.steps": args.frames,
        "run.eval_every": args.frames,
        "run.eval_episodes": 0,
        "run.prefill": args.prefill,
        "run.log_every": args.frames // 4,
        "run.device": args.device,
    }
    command = [sys.executable, "-m", "bench.cli", "run", "--suite", "dmc", "--tasks", TASK, "--agents", agent,
               "--preset", args.preset, "--results", str(results)]  # fmt: skip
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    for item in args.sets:
        command += ["--set", item]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "MUJOCO_GL": "egl"})
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{agent} envs={envs} failed:\n{proc.stderr[-3000:]}")
    (run,) = results.glob(f"dmc/{TASK}/*/seed0")
    train = pd.read_parquet(run / "train.parquet")
    spent = {part: float(train.get(f"time/{part}", pd.Series(dtype=float)).sum()) for part in PARTS}
    row = {"frames/s": args.frames / wall, "updates": float(train["updates"].iloc[-1]), "wall s": wall}
    row.update({part: spent[part] / wall for part in PARTS})
    row["other"] = 1.0 - sum(spent.values()) / wall
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agents", nargs="+", default=["dreamerv3", "harmonydream"])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--frames", type=int, default=400, help="budget in env frames (a multiple of 8)")
    # training starts once a stream holds a whole sequence (32 steps for the small model): with 128 steps of
    # prefill that is so for 1, 2 and 4 envs, so all start training at the same policy step
    parser.add_argument("--prefill", type=int, default=128, help="random agent steps before training")
    parser.add_argument(
        "--preset", default="small", help="the model's preset (the train ratio is the paper's)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], help="more bench overrides, key=value"
    )
    args = parser.parse_args()
    print(f"dmc {TASK}, {args.preset} model, paper train ratio, {args.frames} frames, prefill {args.prefill} "
          f"steps, device {args.device}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    if args.sets:
        print("overrides: " + " ".join(args.sets))
    header = f"{'agent':<14}{'envs':>5}{'frames/s':>10}{'updates':>9}{'wall s':>8}"
    print(header + "".join(f"{part:>11}" for part in (*PARTS, "other")) + "   (shares of wall time)")
    for agent in args.agents:
        for envs in args.envs:
            with tempfile.TemporaryDirectory() as results:
                row = measure(agent, envs, args, Path(results))
            print(f"{agent:<14}{envs:>5}{row['frames/s']:>10.1f}{row['updates']:>9.0f}{row['wall s']:>8.0f}"
                  + "".join(f"{row[part]:>11.2f}" for part in (*PARTS, "other")), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
