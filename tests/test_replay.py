"""The replay buffer: sampling, ring eviction, incremental save/load."""

import numpy as np

from bench.replay import Replay


def _step(i: int) -> dict:
    return {
        "image": np.full((4, 4, 3), i % 256, np.uint8),
        "action": np.array([i, -i], np.float32),
        "reward": np.float32(i),
        "is_first": i % 7 == 0,
    }


def test_sample_returns_consecutive_steps_within_the_buffer():
    replay = Replay(capacity=50, chunk=8)
    for i in range(120):  # wraps the ring more than twice
        replay.add(_step(i))
    batch = replay.sample(16, 10, np.random.default_rng(0))
    assert batch["image"].shape == (16, 10, 4, 4, 3) and batch["image"].dtype == np.uint8
    rewards = batch["reward"]
    assert np.all(np.diff(rewards, axis=1) == 1)  # consecutive
    assert rewards.min() >= 70 and rewards.max() <= 119  # only the 50 newest steps


def test_save_load_round_trip_and_prune(tmp_path):
    replay = Replay(capacity=30, chunk=8)
    for i in range(45):
        replay.add(_step(i))
    meta = replay.save(tmp_path)
    replay.prune(tmp_path)
    # steps 15..44 are kept: chunks 1 (8..15) .. 4 (32..39) on disk, 40..44 in the tail
    assert sorted(p.name for p in tmp_path.glob("chunk_*.npz")) == [f"chunk_{k:09d}.npz" for k in range(1, 5)]
    restored = Replay(capacity=30, chunk=8)
    restored.load(tmp_path, meta)
    assert restored.total == 45 and len(restored) == 30
    a = replay.sample(32, 5, np.random.default_rng(1))
    b = restored.sample(32, 5, np.random.default_rng(1))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    # the restored buffer continues exactly like the original
    for i in range(45, 60):
        replay.add(_step(i))
        restored.add(_step(i))
    a = replay.sample(32, 5, np.random.default_rng(2))
    b = restored.sample(32, 5, np.random.default_rng(2))
    np.testing.assert_array_equal(a["reward"], b["reward"])


def test_checkpoints_write_only_new_chunks(tmp_path):
    replay = Replay(capacity=1000, chunk=16)
    for i in range(40):
        replay.add(_step(i))
    replay.save(tmp_path)
    first = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("chunk_*.npz")}
    for i in range(40, 70):
        replay.add(_step(i))
    replay.save(tmp_path)
    second = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("chunk_*.npz")}
    assert set(first) < set(second)
    assert all(second[name] == first[name] for name in first)  # old chunks untouched
