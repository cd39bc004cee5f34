"""Checkpoints are data, never code: every agent's checkpoint restores with torch.load(weights_only=True),
and a damaged or malicious one fails its run with one line naming the file (no traceback, nothing run)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import bench

import agents
from bench import launch, loop, store
from bench.spec import RunSpec

SMOKE_RUN = ("run", "--suite", "gym", "--tasks", "Pendulum-v1", "--agents", "dreamerv3", "--preset", "smoke")


def _prepared(results: Path, spec: RunSpec) -> Path:
    store.init_results_root(results)
    return launch.prepare(spec, results, spec.resolve())


def _fill_and_update(run: loop.Run) -> None:
    """Enough random steps for a batch and two replay chunks (with episode sampling, up to the end of the first
    episode), then one update: the checkpoint holds optimizer state."""
    obs = run.envs.reset()[0]
    run.replay.add(
        loop._replay_step(obs, np.zeros(loop._action_dim(run.envs.act_space), np.float32), run.obs_keys)
    )
    length = run.agent.batch_length
    while len(run.replay) < max(2 * length, 40) or not run.replay.valid_starts(length).any():  # 40: 2+ chunks
        action = loop._random_action(run.envs.act_space, run.np_rng)
        obs = run.envs.step(action[None])[0][0]
        run.replay.add(loop._replay_step(obs, action, run.obs_keys))
        run.counters["agent_step"] += 1
    sample = run.replay.sample(run.agent.batch_size, run.agent.batch_length, run.np_rng)
    run.agent.train(sample)
    if run.per is not None:
        run.replay.update_priorities(sample["start"], run.agent.priorities)


@pytest.mark.parametrize("agent", list(agents.ALL))
def test_every_agents_checkpoint_restores_data_only(tmp_path: Path, agent: str) -> None:
    # pixels (DMC) so that DreamerPro runs too; a small replay chunk so that chunk files are written
    spec = RunSpec("dmc", "cartpole_balance", agent, 0, "smoke", (("run.replay_chunk", 16),))
    run_dir = _prepared(tmp_path, spec)
    run = loop.Run(run_dir)
    _fill_and_update(run)
    run.save_checkpoint()
    again = loop.Run(run_dir)  # torch.load(weights_only=True) inside
    assert again.resumed and again.counters == run.counters
    saved, loaded = run.agent.state_dict(), again.agent.state_dict()
    flat_saved, flat_loaded = dict(loop._tensors(saved)), dict(loop._tensors(loaded))
    assert flat_saved.keys() == flat_loaded.keys() and flat_saved
    assert all(torch.equal(flat_saved[k], flat_loaded[k]) for k in flat_saved)
    assert len(again.replay) == len(run.replay) and list(run_dir.glob("ckpt/replay/chunk_*.npz"))
    batch = run.replay.sample(4, run.agent.batch_length, np.random.default_rng(0))
    resumed = again.replay.sample(4, run.agent.batch_length, np.random.default_rng(0))
    assert all(np.array_equal(batch[k], resumed[k]) for k in batch)  # images, actions, flags, priorities
    assert again.np_rng.random() == run.np_rng.random()  # the RNG states came back too
    run.close()
    again.close()


class _RunsCode:
    """What an attacker would put in a checkpoint: unpickling it runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _bench_resume(results: Path) -> tuple:
    done = bench(*SMOKE_RUN, "--results", str(results))
    run_dir = next(store.iter_run_dirs(results))
    return done, run_dir, store.read_status(run_dir)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path: Path) -> None:
    results, marker = tmp_path / "results", tmp_path / "pwned"
    run_dir = _prepared(results, RunSpec("gym", "Pendulum-v1", "dreamerv3", 0, "smoke"))
    (run_dir / "ckpt").mkdir()
    torch.save({"agent": _RunsCode(marker), "counters": {}}, run_dir / "ckpt" / "state.pt")
    done, _, status = _bench_resume(results)
    assert not marker.exists()  # the command never ran
    path = run_dir / "ckpt" / "state.pt"
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert status["state"] == "failed" and status["error"].startswith(
        f"damaged checkpoint {path}: not data-only"
    )
    assert "system" in status["error"] and "\n" not in status["error"]
    assert f"damaged checkpoint {path}" in done.stdout


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_checkpoint_fails_the_run_with_one_line_naming_it(tmp_path: Path, damage: str) -> None:
    results = tmp_path / "results"
    run_dir = _prepared(results, RunSpec("gym", "Pendulum-v1", "dreamerv3", 0, "smoke"))
    run = loop.Run(run_dir)
    _fill_and_update(run)
    run.save_checkpoint()
    run.close()
    path = run_dir / "ckpt" / "state.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a checkpoint\n" * 100)
    done, _, status = _bench_resume(results)
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert status["state"] == "failed" and status["error"].startswith(f"damaged checkpoint {path}: ")
    assert "\n" not in status["error"] and not (run_dir / "error.log").exists()
    assert json.loads((run_dir / "status.json").read_text())["pid"] is None
