"""Runs with several envs, end to end through the real `bench` command on real dm_control (cartpole_balance,
DreamerV3 smoke, 30-step episodes): a kill -9 anywhere and the same command give the eval rows of an
uninterrupted run, with one env and with four."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import bench

ARGS = ["run", "--suite", "dmc", "--tasks", "cartpole_balance", "--agents", "dreamerv3", "--preset", "smoke",
        "--set", "run.steps=480", "--set", "run.eval_every=160", "--set", "env.time_limit=60",
        "--set", "run.log_every=40", "--set", "run.checkpoint_every_s=1", "--set", "log.tensorboard=false"]  # fmt: skip


def _run_dir(results: Path) -> Path:
    (run,) = results.glob("dmc/cartpole_balance/*/seed0")
    return run


def _status_step(results: Path) -> int:
    found = list(results.glob("dmc/cartpole_balance/*/seed0/status.json"))
    return json.loads(found[0].read_text()).get("step", 0) if found else 0


@pytest.mark.parametrize("envs", [1, 4])
def test_kill_9_anywhere_then_the_same_command_gives_the_uninterrupted_eval_rows(tmp_path, envs):
    args = [*ARGS, "--set", f"run.envs={envs}"]
    whole = bench(*args, "--results", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = pd.read_parquet(_run_dir(tmp_path / "whole") / "eval.parquet")
    assert list(expected["step"].unique()) == [0, 160, 320, 480]

    results = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", *args, "--results", str(results)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ})  # fmt: skip
    deadline = time.time() + 600
    while _status_step(results) < 280:  # past the second eval, in the middle of an episode of every env
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "the run did not get there in time"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = _run_dir(results)
    assert json.loads((run / "status.json").read_text())["state"] == "running"  # died without a word
    resumed = bench(*args, "--results", str(results))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "not exact" not in resumed.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(run / "eval.parquet"), expected)
