"""Harness overhead: expanding + dry-running a 1,000-run sweep, and `bench status` over 10,000 run dirs.

Targets: < 10 s and < 2 s on a 2-core CPU machine. Each row is timed as the user runs it (a
fresh `bench` process, imports included), median of --repeats; the baseline row beside each is the floor
the command cannot beat: starting `bench` at all (`bench list suites`), and reading every status.json with
no table work.

    python benchmarks/harness.py [--repeats 3] [--runs 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STATES = ["done", "running", "failed", "pending", "preempted"]


def _time(cmd: list[str], repeats: int) -> tuple[float, str]:
    samples, out = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        samples.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
        out = proc.stdout
    return statistics.median(samples), out


def _make_runs(root: Path, count: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / ".harmonybench").write_text("harmonybench results root\n")
    for i in range(count):
        run = root / "dmc" / f"task{i % 20}" / f"agent{i % 10}-smoke-{i % 7:08x}" / f"seed{i // 1400}"
        run.mkdir(parents=True, exist_ok=True)
        spec = {
            "id": str(run.relative_to(root)),
            "suite": "dmc",
            "seed": i // 1400,
            "config": {"run": {"steps": 1000}},
        }
        (run / "spec.json").write_text(json.dumps(spec))
        status = {"state": STATES[i % len(STATES)], "step": (i * 37) % 1000, "budget": 1000, "pid": None}
        (run / "status.json").write_text(json.dumps(status))


def _read_all_statuses(root: Path) -> float:
    start = time.perf_counter()
    n = sum(1 for p in root.glob("*/*/*/seed*/status.json") if json.loads(p.read_text()))
    assert n > 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    bench = [sys.executable, "-m", "bench.cli"]
    env_note = f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start_cost, _ = _time([*bench, "list", "suites"], args.repeats)
        # 10 tasks x 10 seeds x 10 sweep values = 1,000 runs
        tasks = "acrobot_swingup,cartpole_balance,cartpole_swingup,cheetah_run,finger_spin,hopper_hop,pendulum_swingup,reacher_easy,walker_run,walker_walk"
        sweep = [*bench, "run", "--suite", "dmc", "--tasks", tasks, "--agents", "dreamerv3", "--seeds", "10",
                 "--sweep", "agent.balancer.weights.reward=1,2,3,4,5,6,7,8,9,10", "--dry-run", "--results", str(tmp / "r")]  # fmt: skip
        sweep_cost, out = _time(sweep, args.repeats)
        assert "1000 runs" in out, out[-500:]
        _make_runs(tmp / "many", args.runs)
        floor = statistics.median(_read_all_statuses(tmp / "many") for _ in range(args.repeats))
        status_cost, out = _time([*bench, "status", "--results", str(tmp / "many")], args.repeats)
        assert "agent0" in out
    print(f"harness overhead ({env_note}; medians of {args.repeats})")
    print(f"{'what':<46} {'seconds':>8} {'baseline':>9} {'target':>7}")
    print(f"{'dry-run of a 1,000-run sweep (process)':<46} {sweep_cost:8.2f} {start_cost:9.2f} {'< 10':>7}")
    print(
        f"{f'bench status over {args.runs:,} runs (process)':<46} {status_cost:8.2f} {start_cost + floor:9.2f} {'< 2':>7}"
    )
    print(
        "baselines: `bench list suites` (process start + imports); for status plus the bare read of every status.json"
    )


if __name__ == "__main__":
    main()
