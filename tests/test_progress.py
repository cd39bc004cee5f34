"""Progress a user can plan by: the rate and ETA math, and `bench status` on real smoke runs."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import bench

from bench import store
from bench.progress import (
    SweepProgress,
    eta_seconds,
    format_duration,
    recent_rate,
    run_eta,
    sweep_rate_eta,
)

RUN = ["run", "--suite", "gym", "--tasks", "Pendulum-v1", "--agents", "dreamerv3", "--preset", "smoke",
       "--set", "run.eval_every=200", "--set", "log.progress=none",
       "--set", "log.tensorboard=false"]  # fmt: skip


def test_recent_rate_is_frames_over_time_of_the_last_rows():
    steps, fps = [100, 200, 300], [100.0, 10.0, 20.0]  # intervals of 1 s, 10 s and 5 s
    assert recent_rate(steps, fps) == pytest.approx(300 / 16)
    assert recent_rate(steps, fps, rows=2) == pytest.approx(200 / 15)  # the fast first interval left out
    assert recent_rate([100, 150], [50.0, 0.0]) == pytest.approx(50.0)  # a row without a rate counts nothing
    assert recent_rate([], []) == 0.0


def test_eta_seconds():
    assert eta_seconds(1000, 10.0) == pytest.approx(100.0)
    assert eta_seconds(1000, 10.0, elapsed=30.0) == pytest.approx(70.0)  # counted 30 s ago, still running
    assert eta_seconds(1000, 10.0, elapsed=500.0) == 0.0
    assert eta_seconds(0, 0.0) == 0.0
    assert eta_seconds(1000, 0.0) == math.inf


def test_run_eta_by_state():
    now = 1_000_000.0
    status = {"step": 300, "budget": 800, "updated": now - 30}
    assert run_eta({**status, "state": "running"}, 10.0, now) == pytest.approx(50 - 30)
    assert run_eta({**status, "state": "stalled"}, 10.0, now) == pytest.approx(50)  # what it needs resumed
    assert run_eta({**status, "state": "preempted"}, 10.0, now) == pytest.approx(50)
    assert run_eta({**status, "state": "done"}, 10.0, now) == 0.0
    assert run_eta({**status, "state": "failed"}, 10.0, now) == math.inf
    assert run_eta({"state": "pending", "step": 0, "budget": 800}, 0.0, now) == math.inf


def test_sweep_rate_eta_sums_the_running_runs():
    now = 1_000_000.0
    runs = [
        ({"state": "running", "step": 100, "budget": 200, "updated": now}, 10.0),
        ({"state": "running", "step": 0, "budget": 220, "updated": now - 1}, 20.0),  # 20 frames since
        ({"state": "pending", "step": 0, "budget": 300}, 0.0),
        ({"state": "failed", "step": 10, "budget": 1000}, 5.0),  # never resumes by itself: left out
        ({"state": "done", "step": 400, "budget": 400}, 7.0),
    ]
    rate, eta = sweep_rate_eta(runs, now)
    assert rate == pytest.approx(30.0)
    assert eta == pytest.approx((100 + 200 + 300) / 30.0)
    assert sweep_rate_eta(runs[2:], now) == (0.0, math.inf)  # nothing runs: unknown
    assert sweep_rate_eta(runs[4:], now) == (0.0, 0.0)


def test_format_duration():
    assert [format_duration(s) for s in (42, 187, 18_120, 183_600, math.inf)] == [
        "42s", "3m07s", "5h02m", "2d03h", "?"
    ]  # fmt: skip


def _expected_rate(run_dir) -> float:
    """Frames over seconds of the last 10 logged intervals, each interval's seconds being frames / fps."""
    rows = pd.read_parquet(run_dir / "train.parquet")
    frames = rows["step"].diff().fillna(rows["step"]).tail(10)
    return frames.sum() / (frames / rows["fps"]).tail(10).sum()


def test_status_shows_rates_and_etas_of_a_finished_and_a_killed_run(tmp_path):
    results = tmp_path / "results"
    # One command, two runs in turn: a 200-frame run that finishes, then a 400-frame run killed at 200.
    args = [*RUN, "--sweep", "run.steps=200,400", "--results", str(results)]
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})  # fmt: skip
    deadline = time.time() + 300
    long_run = None
    while time.time() < deadline:
        statuses = {p.parent: json.loads(p.read_text()) for p in results.glob("*/*/*/seed0/status.json")}
        long_run = next((d for d, s in statuses.items() if s.get("budget") == 400), None)
        if long_run is not None and statuses[long_run].get("step", 0) >= 200:
            break
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    else:
        raise AssertionError("the second run never reached 200 frames")
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    rows = {r["budget"]: r for r in json.loads(bench("status", "--results", str(results), "--json").stdout)}
    done, killed = rows[200], rows[400]
    assert done["state"] == "done" and killed["state"] != "done" and 200 <= killed["step"] < 400
    for row in (done, killed):
        expected = _expected_rate(results / row["suite"] / row["task"] / row["variant"] / row["seed"])
        assert 1 < row["fps"] < 10_000 and row["fps"] == pytest.approx(expected)
    assert done["eta_s"] == 0.0
    remaining = (400 - killed["step"]) / killed["fps"]
    if killed["state"] == "running":  # its lease has not expired yet: counted from its last update
        assert remaining - (time.time() - killed["updated"]) - 5 <= killed["eta_s"] <= remaining
    else:
        assert killed["eta_s"] == pytest.approx(remaining)

    text = bench("status", "--results", str(results))
    assert text.returncode == 0, text.stderr
    lines = {line.split()[0]: line.split() for line in text.stdout.splitlines() if line.startswith("  gym/")}
    done_line = lines[f"gym/Pendulum-v1/{done['variant']}/seed0"]
    killed_line = lines[f"gym/Pendulum-v1/{killed['variant']}/seed0"]
    assert done_line[-3:] == ["200/200", f"{done['fps']:.1f}", "done"]
    assert killed_line[-3] == f"{killed['step']}/400" and killed_line[-2] == f"{killed['fps']:.1f}"
    if killed["state"] != "running":  # a running run's ETA moves on between the two commands
        assert killed_line[-1] == format_duration(killed["eta_s"])


def test_sweep_progress_line_counts_runs_frames_and_eta(tmp_path, capsys):
    # Two run directories whose status.json files the test writes as the loop does (no training needed).
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        store.update_status(run, state="running", step=0, budget=400)
    progress = SweepProgress(runs, mode="lines")
    store.update_status(runs[0], state="done", step=400, budget=400)
    store.update_status(runs[1], state="running", step=100, budget=400)
    progress.update(finished=[runs[0]])
    progress.close()
    line = capsys.readouterr().err.strip()
    assert line.startswith("[all runs] 500/800 frames, runs 1/2 finished, ")
    rate = float(line.split(", ")[2].split()[0])
    assert rate > 0 and line.endswith(f"eta {format_duration(300 / rate)}")
