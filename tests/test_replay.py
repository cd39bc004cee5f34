"""The replay buffer: sampling, ring eviction, incremental save/load."""

import numpy as np
import pytest

from bench.priority_tree import PriorityTrees
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


def _prioritized(capacity: int = 100, steps: int = 60, per: tuple = (0.5, 0.4)) -> Replay:
    replay = Replay(capacity=capacity, chunk=8, per=per)
    for i in range(steps):
        replay.add(_step(i))
    return replay


def test_prioritized_sampling_follows_priority_to_the_alpha_with_importance_weights():
    replay = _prioritized()
    length = 5
    starts = np.arange(60 - length + 1)  # 56 valid starts
    assert np.all(replay.priority[:60] == 1.0)  # priorities start at 1
    priorities = np.where(starts == 10, 16.0, 1.0)
    replay.update_priorities(starts, priorities)
    batch = replay.sample(20000, length, np.random.default_rng(0))
    assert np.all(np.diff(batch["reward"], axis=1) == 1)
    assert np.array_equal(batch["reward"][:, 0], batch["start"])  # step i has reward i
    # P(10) = 16^0.5 / (55 + 16^0.5) = 4 / 59
    share = np.mean(batch["start"] == 10)
    assert abs(share - 4 / 59) < 0.01, share
    # weight = (N P)^-beta / max: the common starts get 1, the favoured one (56 * 4/59)^-0.4 / (56/59)^-0.4
    assert np.allclose(batch["weight"][batch["start"] != 10], 1.0)
    assert np.allclose(batch["weight"][batch["start"] == 10], 4.0**-0.4, rtol=1e-5)
    # new steps take the largest current priority (TDMPC: max of the stored priorities)
    replay.add(_step(60))
    assert replay.priority[60] == np.float32(16.0 + 1e-6)
    uniform = Replay(capacity=100, chunk=8)
    for i in range(60):
        uniform.add(_step(i))
    assert "weight" not in uniform.sample(8, length, np.random.default_rng(0))


def test_prioritized_replay_saves_and_restores_its_priorities(tmp_path):
    replay = _prioritized(capacity=30, steps=45, per=(0.6, 0.4))
    rng = np.random.default_rng(3)
    replay.update_priorities(np.arange(15, 41), rng.uniform(0.1, 5.0, 26))
    meta = replay.save(tmp_path)
    restored = Replay(capacity=30, chunk=8, per=(0.6, 0.4))
    restored.load(tmp_path, meta)
    assert np.array_equal(restored.priority, replay.priority)
    a = replay.sample(64, 5, np.random.default_rng(4))
    b = restored.sample(64, 5, np.random.default_rng(4))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    uniform = Replay(capacity=30, chunk=8)
    for i in range(10):
        uniform.add(_step(i))
    with pytest.raises(ValueError, match="per="):
        uniform.update_priorities(np.arange(4), np.ones(4))
    with pytest.raises(ValueError, match="no priorities"):
        Replay(capacity=30, chunk=8, per=(0.6, 0.4)).load(tmp_path / "u", uniform.save(tmp_path / "u"))


def test_priority_trees_match_brute_force_sums_maxes_and_prefix_search():
    rng = np.random.default_rng(5)
    trees = PriorityTrees(capacity=37, alpha=0.6)  # not a power of two
    priority = np.zeros(37, np.float32)
    for _ in range(50):  # single and batched (with repeats) updates
        slots = rng.integers(0, 37, size=rng.integers(1, 9))
        values = rng.uniform(0.01, 10.0, len(slots)).astype(np.float32)
        if len(slots) == 1:
            trees.set_one(int(slots[0]), values[0])  # the path of a newly added step
        else:
            trees.set(slots, values)
        priority[slots] = values  # last write wins, as in the tree
    mass = priority.astype(np.float64) ** 0.6
    assert trees.total == pytest.approx(mass.sum()) and trees.max == priority.max()
    targets = rng.uniform(0, mass.sum(), 1000)
    np.testing.assert_array_equal(
        trees.find(targets), np.searchsorted(np.cumsum(mass), targets, side="right")
    )
    rebuilt = PriorityTrees(capacity=37, alpha=0.6)
    rebuilt.rebuild(priority)
    np.testing.assert_allclose(rebuilt.sums, trees.sums)
    np.testing.assert_array_equal(rebuilt.maxes, trees.maxes)


def test_prioritized_sampling_after_the_ring_wraps_matches_the_exact_distribution():
    replay = _prioritized(capacity=40, steps=95, per=(0.7, 0.4))  # holds steps 55..94
    length = 6
    starts = np.arange(55, 95 - length + 1)
    priorities = np.random.default_rng(6).uniform(0.1, 3.0, len(starts))
    replay.update_priorities(starts, priorities)
    batch = replay.sample(40000, length, np.random.default_rng(7))
    assert batch["start"].min() >= 55 and batch["start"].max() <= 89
    np.testing.assert_array_equal(batch["reward"][:, 0], batch["start"])
    expected = priorities**0.7 / (priorities**0.7).sum()
    seen = np.bincount(batch["start"] - 55, minlength=len(starts)) / len(batch["start"])
    assert np.abs(seen - expected).max() < 0.01
    weight = (len(starts) * expected) ** -0.4
    np.testing.assert_allclose(batch["weight"], (weight / weight.max())[batch["start"] - 55], rtol=1e-5)
