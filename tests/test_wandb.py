"""Weights & Biases logging through the real `bench` command and the real wandb package, offline.

Reading the history back: wandb 0.31 ships no Python reader for a run's `.wandb` file (its writer and reader
live in the Go wandb-core), so `_records` reads the file's framing itself: LevelDB's log format (32 KiB
blocks of CRC-checked fragments, github.com/google/leveldb doc/log_format.md) behind W&B's ":W&B" header,
with zlib's CRC-32 of the fragment type and data. Each record is then parsed with wandb's own protobuf class
(wandb.proto.wandb_internal_pb2.Record). A change of format fails the header or a CRC check, not silently.
"""

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pandas as pd
import pytest
from conftest import bench

RUN = ["run", "--suite", "gym", "--tasks", "Pendulum-v1", "--agents", "dreamerv3", "--preset", "smoke",
       "--set", "run.steps=400", "--set", "run.eval_every=200", "--set", "run.checkpoint_every_s=1",
       "--set", "log.progress=none", "--set", "log.tensorboard=false", "--set", "log.wandb=true"]  # fmt: skip
BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:HEADER]) == (b":W&B", 0xBEE1, 0), f"{path}: not a W&B log"
    position, pieces = HEADER, b""
    while position + HEADER <= len(data):
        if BLOCK - position % BLOCK < HEADER:  # a block's tail too short for a header is padding
            position += BLOCK - position % BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[position : position + HEADER])
        if (crc, length, kind) == (0, 0, 0):  # zeros: the rest of a block the writer left empty
            position += BLOCK - position % BLOCK
            continue
        fragment = data[position + HEADER : position + HEADER + length]
        assert zlib.crc32(fragment, zlib.crc32(bytes([kind]))) == crc, f"{path}: bad CRC at {position}"
        position += HEADER + length
        pieces = fragment if kind in (FULL, FIRST) else pieces + fragment
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            yield record


def _history(wandb_dir: Path, run_id: str) -> list[list[dict]]:
    """The history rows of each start of one W&B run (its offline-run-<time>-<id> directories, in order)."""
    starts = sorted((wandb_dir / "wandb").glob(f"offline-run-*-{run_id}"))
    segments = []
    for start in starts:
        rows = []
        for record in _records(start / f"run-{run_id}.wandb"):
            if record.WhichOneof("record_type") == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})  # fmt: skip
        segments.append(rows)
    return segments


def _config(wandb_dir: Path, run_id: str) -> dict:
    config = {}
    for start in sorted((wandb_dir / "wandb").glob(f"offline-run-*-{run_id}")):
        for record in _records(start / f"run-{run_id}.wandb"):
            if record.WhichOneof("record_type") == "config":
                config.update({item.key: json.loads(item.value_json) for item in record.config.update})
    return config


def test_asking_for_wandb_without_the_package_is_one_line_and_exit_2(tmp_path):
    # Where wandb is installed, the child hides it the way Python documents for a missing module
    # (sys.modules[name] = None makes import and importlib.util.find_spec fail as if it were absent).
    results = tmp_path / "results"
    code = "import sys; sys.modules['wandb'] = None; from bench.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, *RUN, "--results", str(results)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "wandb" in proc.stderr and "harmonybench[wandb]" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not results.exists()


def test_history_holds_the_eval_returns_at_their_frames_after_kill_9_and_resume(tmp_path):
    pytest.importorskip("wandb")  # the optional extra; the dev extra (CI) installs it
    results, wandb_dir = tmp_path / "results", tmp_path / "wandb"
    wandb_dir.mkdir()
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir), "WANDB_SILENT": "true"}
    args = [*RUN, "--results", str(results)]
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline:  # past the eval and checkpoint at 200, before the budget
        status = [json.loads(p.read_text()) for p in results.glob("*/*/*/seed0/status.json")]
        if status and status[0].get("step", 0) >= 300:
            break
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    else:
        raise AssertionError("the run never reached 300 frames")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = bench(*args, env={"WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir), "WANDB_SILENT": "true"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    (run_dir,) = [p.parent for p in results.glob("*/*/*/seed0/spec.json")]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "done"
    run_id = json.loads((run_dir / "wandb.json").read_text())["id"]
    segments = _history(wandb_dir, run_id)
    assert len(segments) == 2  # the killed start and the resumed one, one W&B run id
    for rows in segments:  # W&B's own step counts log calls: strictly increasing in every start
        steps = [row["_step"] for row in rows]
        assert steps == sorted(set(steps))
    rows = [row for segment in segments for row in segment]

    # The later value at an env frame is the run's record (see bench/wandb_sink.py on duplicates).
    logged_evals = {row["env_frame"]: row["eval/return"] for row in rows if "eval/return" in row}
    evals = pd.read_parquet(run_dir / "eval.parquet").groupby("step")["return"].mean()
    assert sorted(logged_evals) == list(evals.index) == [0, 200, 400]
    for step, value in evals.items():
        assert logged_evals[step] == pytest.approx(value, rel=1e-9), step

    train = pd.read_parquet(run_dir / "train.parquet")
    logged_train = {row["env_frame"]: row for row in rows if "train/fps" in row}
    assert sorted(logged_train) == train["step"].tolist()
    for record in train.to_dict("records"):  # the same scalars as TensorBoard's, under its names
        logged = logged_train[record["step"]]
        assert logged["train/fps"] == pytest.approx(record["fps"])
        if pd.notna(record["loss/reward"]):  # NaN in a row logged before the first update
            assert logged["loss/reward"] == pytest.approx(record["loss/reward"])

    config = _config(wandb_dir, run_id)
    assert config["run"]["steps"] == 400 and config["log"]["wandb"] is True
