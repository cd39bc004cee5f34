"""``run.prefetch`` samples the next batch of a burst of updates in a thread while the current update runs.
It must not change a run: the same command with it off gives the same losses and eval returns (real
dm_control, DreamerV3 smoke, two envs: two updates are due per loop iteration, so every one is a burst)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from conftest import bench

ARGS = ["run", "--suite", "dmc", "--tasks", "cartpole_balance", "--agents", "dreamerv3", "--preset", "smoke",
        "--set", "run.steps=240", "--set", "run.eval_every=240", "--set", "env.time_limit=60",
        "--set", "run.envs=2", "--set", "run.log_every=40", "--set", "log.tensorboard=false"]  # fmt: skip


def _rows(results: Path, name: str) -> pd.DataFrame:
    (run,) = results.glob("dmc/cartpole_balance/*/seed0")
    return pd.read_parquet(run / name)


def test_prefetch_gives_the_same_run(tmp_path):
    for prefetch in ("true", "false"):
        done = bench(*ARGS, "--set", f"run.prefetch={prefetch}", "--results", str(tmp_path / prefetch))
        assert done.returncode == 0, done.stderr[-3000:]
    on, off = _rows(tmp_path / "true", "train.parquet"), _rows(tmp_path / "false", "train.parquet")
    losses = [column for column in on.columns if column.startswith(("loss/", "grad_norm/"))]
    assert losses and on["updates"].iloc[-1] > 40  # it trained after the 64-step prefill, in bursts of two
    pd.testing.assert_frame_equal(on[["step", "updates", *losses]], off[["step", "updates", *losses]])
    pd.testing.assert_frame_equal(
        _rows(tmp_path / "true", "eval.parquet"), _rows(tmp_path / "false", "eval.parquet")
    )
