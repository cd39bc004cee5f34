"""End to end through the real `bench` command on real simulators and the real DreamerV3 agent.

Covers the harness's promises: results layout, skip of done runs, kill -9 + resume, SIGTERM preemption,
determinism, NaN handling, and the local executor.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import bench

PENDULUM = ["run", "--suite", "gym", "--tasks", "Pendulum-v1", "--agents", "dreamerv3", "--preset", "smoke"]
SHORT = ["--set", "run.steps=400", "--set", "run.eval_every=200"]  # two 200-step episodes between evals


def _run_dir(results: Path) -> Path:
    (run,) = [p for p in results.glob("*/*/*/seed*") if (p / "spec.json").exists()]
    return run


def _check_complete(run: Path, budget: int, eval_every: int) -> pd.DataFrame:
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "done" and status["step"] == budget
    evals = pd.read_parquet(run / "eval.parquet")
    steps = evals.groupby("step").size()
    assert list(steps.index) == list(range(0, budget + 1, eval_every))  # increasing, none missing
    assert evals.duplicated(["step", "episode"]).sum() == 0
    train = pd.read_parquet(run / "train.parquet")
    assert train["step"].is_monotonic_increasing and train["step"].is_unique
    assert train["step"].iloc[-1] == budget
    return evals


def test_dmc_smoke_run_end_to_end_then_skip(tmp_path):
    results = tmp_path / "results"
    args = ["run", "--suite", "dmc", "--tasks", "cartpole_balance", "--agents", "dreamerv3", "--preset", "smoke",
            "--results", str(results)]  # fmt: skip
    proc = bench(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = results / "dmc" / "cartpole_balance" / "dreamerv3-smoke" / "seed0"
    spec = json.loads((run / "spec.json").read_text())
    assert spec["suite"] == "dmc" and spec["agent"] == "dreamerv3" and spec["preset"] == "smoke"
    assert spec["config"]["agent"]["version"] == "dreamerv3-2023"
    assert {"torch", "mujoco", "dm-control"} <= set(spec["packages"]) and spec["git_commit"] and spec["host"]
    budget, every = spec["config"]["run"]["steps"], spec["config"]["run"]["eval_every"]
    evals = _check_complete(run, budget, every)
    assert set(evals.columns) >= {"step", "agent_step", "episode", "return", "success", "length"}
    assert (evals["agent_step"] * 2 == evals["step"]).all()  # action repeat 2: frames vs agent steps
    train = pd.read_parquet(run / "train.parquet")
    for column in ("loss/obs", "loss/reward", "loss/dyn", "weight/obs", "weight/dyn", "fps", "update_ms"):
        assert column in train.columns, column
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "ckpt" / "state.pt").exists()
    before = (run / "eval.parquet").stat().st_mtime_ns
    again = bench(*args)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert (run / "eval.parquet").stat().st_mtime_ns == before


def test_two_fresh_runs_are_identical(tmp_path):
    outs = []
    for name in ("a", "b"):
        proc = bench(*PENDULUM, *SHORT, "--set", "log.tensorboard=false", "--results", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert not (_run_dir(tmp_path / name) / "tb").exists()
        outs.append(pd.read_parquet(_run_dir(tmp_path / name) / "eval.parquet"))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    assert outs[0]["return"].nunique() > 1  # real episodes, not a constant


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else "bench exited early"
        time.sleep(0.2)
    raise AssertionError("timed out")


def _popen(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})  # fmt: skip


def test_kill_9_then_same_command_resumes_to_exact_budget(tmp_path):
    results = tmp_path / "results"
    args = [*PENDULUM, "--set", "run.steps=800", "--set", "run.eval_every=200", "--set", "run.checkpoint_every_s=1",
            "--results", str(results)]  # fmt: skip
    proc = _popen(args)

    def past_first_checkpoint() -> bool:
        runs = list(results.glob("*/*/*/seed0/status.json"))
        return bool(runs) and json.loads(runs[0].read_text()).get("step", 0) >= 300

    _wait_for(past_first_checkpoint, 300, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = _run_dir(results)
    assert json.loads((run / "status.json").read_text())["state"] == "running"  # died without a word
    resumed = bench(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _check_complete(run, 800, 200)
    assert (run / "ckpt" / "replay").exists()


def test_sigterm_checkpoints_and_marks_preempted_then_resumes(tmp_path):
    results = tmp_path / "results"
    args = [*PENDULUM, *SHORT, "--results", str(results)]
    proc = _popen(args)

    def training() -> bool:
        runs = list(results.glob("*/*/*/seed0/status.json"))
        return bool(runs) and json.loads(runs[0].read_text()).get("step", 0) >= 100

    _wait_for(training, 300, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    run = _run_dir(results)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "preempted" and 100 <= status["step"] < 400
    import torch

    state = torch.load(run / "ckpt" / "state.pt", weights_only=False)
    assert state["counters"]["agent_step"] == status["step"]  # the checkpoint is from the signal, not older
    resumed = bench(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _check_complete(run, 400, 200)


def test_nan_fails_one_run_names_the_loss_and_the_others_continue(tmp_path):
    results = tmp_path / "results"
    proc = bench(*PENDULUM, *SHORT, "--sweep", "agent.model_lr=1e-4,1e30", "--results", str(results))
    assert proc.returncode == 1, proc.stderr[-3000:]
    statuses = {
        p.parent.parent.name: json.loads(p.read_text()) for p in results.glob("*/*/*/seed0/status.json")
    }
    states = sorted(s["state"] for s in statuses.values())
    assert states == ["done", "failed"]
    (failed,) = [s for s in statuses.values() if s["state"] == "failed"]
    assert failed["error"].startswith("non-finite loss/")  # the loop's check names it, not a sampler crash
    assert "failed:" in proc.stdout


def test_local_executor_runs_seeds_in_parallel_processes(tmp_path):
    results = tmp_path / "results"
    proc = bench(
        *PENDULUM, *SHORT, "--seeds", "2", "--executor", "local", "--jobs", "2", "--results", str(results)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(results.glob("*/*/*/seed*"))
    assert len(runs) == 2
    pids = set()
    for run in runs:
        _check_complete(run, 400, 200)
    pids = {json.loads((r / "spec.json").read_text())["seed"] for r in runs}
    assert pids == {0, 1}
    first, second = (pd.read_parquet(r / "eval.parquet")["return"].tolist() for r in runs)
    assert first != second  # different seeds, different runs
    status = bench("status", "--results", str(results))
    assert status.returncode == 0 and "dreamerv3-smoke" in status.stdout
    rows = json.loads(bench("status", "--results", str(results), "--json").stdout)
    assert [r["state"] for r in rows] == ["done", "done"]


def test_tdmpc_trains_from_prioritized_replay_and_checkpoints_the_priorities(tmp_path):
    results = tmp_path / "results"
    args = [*PENDULUM[:6], "tdmpc", "--preset", "smoke", *SHORT, "--results", str(results)]
    proc = bench(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = _run_dir(results)
    _check_complete(run, 400, 200)
    import torch  # here only: the other tests need no torch in this process

    replay = torch.load(run / "ckpt" / "state.pt", weights_only=False)["replay"]
    priority = replay["priority"].numpy()  # checkpoints hold tensors (data-only loading)
    assert len(priority) == replay["total"] > 400  # every step held: 400 actions plus the episode starts
    # updates rewrote the sampled starts' priorities from their TD errors; the rest keep the max at add
    assert len(np.unique(priority)) > 50 and np.all(priority > 0)
