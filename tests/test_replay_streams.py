"""Replay with one stream per env: sequences never cross streams, uniform over every start, priorities and
checkpoints per stream."""

import numpy as np

from bench.replay import Replay

STREAMS = 3


def _step(stream: int, i: int) -> dict:
    # the reward names the step: stream s, step i -> 1000 s + i; episodes of 7 steps
    return {
        "image": np.full((2, 2, 1), i % 256, np.uint8),
        "reward": np.float32(1000 * stream + i),
        "is_first": i % 7 == 0,
    }


def _filled(lengths: tuple[int, ...], capacity: int = 60, per: tuple | None = None) -> Replay:
    replay = Replay(capacity=capacity, chunk=4, per=per, streams=len(lengths))
    for i in range(max(lengths)):  # interleaved, as the loop adds them
        for stream, n in enumerate(lengths):
            if i < n:
                replay.add(_step(stream, i), stream)
    return replay


def test_sequences_stay_in_one_stream_and_starts_are_uniform_over_all_streams():
    replay = _filled((30, 12, 3))  # capacity 20 per stream: stream 0 holds 10..29; stream 2 too short
    length = 4
    np.testing.assert_array_equal(replay.valid_starts(length), [17, 9, 0])
    rewards = replay.sample(52000, length, np.random.default_rng(0))["reward"]
    assert np.all(np.diff(rewards, axis=1) == 1)  # consecutive steps of one stream
    starts = rewards[:, 0].astype(int)
    expected = set(range(10, 27)) | set(range(1000, 1009))
    assert set(np.unique(starts)) == expected
    share = np.bincount([sorted(expected).index(s) for s in starts]) / len(starts)
    assert np.abs(share - 1 / 26).max() < 0.005


def test_priorities_address_steps_of_their_stream():
    replay = _filled((25, 25, 25), capacity=60, per=(0.6, 0.4))
    length = 3
    batch = replay.sample(16, length, np.random.default_rng(1))
    stream, step = batch["start"] % STREAMS, batch["start"] // STREAMS
    np.testing.assert_array_equal(batch["reward"][:, 0], 1000 * stream + step)
    favoured = 6 * STREAMS + 2  # stream 2, step 6
    replay.update_priorities(np.array([favoured]), np.array([50.0]))
    batch = replay.sample(20000, length, np.random.default_rng(2))
    others = 3 * 18 - 1  # each stream holds steps 5..24: 18 valid starts; all others keep priority 1
    share = np.mean(batch["start"] == favoured)
    expected = 50.0**0.6 / (50.0**0.6 + others)
    assert abs(share - expected) < 0.01, (share, expected)
    assert np.all(batch["reward"][batch["start"] == favoured, 0] == 2006)


def test_streams_checkpoint_round_trip_continues_exactly(tmp_path):
    replay = _filled((30, 17, 9), capacity=60, per=(0.6, 0.4))
    starts = replay.sample(25, 4, np.random.default_rng(4))["start"]
    replay.update_priorities(starts, np.linspace(0.5, 3.0, 25))
    meta = replay.save(tmp_path)
    replay.prune(tmp_path)
    names = {p.name for p in tmp_path.glob("*.npz")}
    assert "chunk_000000002.npz" in names and "stream1_chunk_000000003.npz" in names
    assert "chunk_000000001.npz" not in names  # stream 0 holds 10..29: chunk 1 (4..7) fell out
    restored = Replay(capacity=60, chunk=4, per=(0.6, 0.4), streams=STREAMS)
    restored.load(tmp_path, meta)
    assert restored.totals == [30, 17, 9] and np.array_equal(restored.priority, replay.priority)
    for i in range(5):  # both go on alike
        for buffer in (replay, restored):
            buffer.add(_step(1, 17 + i), 1)
    a, b = (buffer.sample(64, 4, np.random.default_rng(5)) for buffer in (replay, restored))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_current_episode_of_each_stream():
    replay = _filled((30, 12, 3), capacity=60)  # 20 per stream: stream 0 holds 10..29
    np.testing.assert_array_equal(replay.current_episode(0)["reward"], np.arange(28, 30))
    np.testing.assert_array_equal(replay.current_episode(1)["reward"], 1000 + np.arange(7, 12))
    np.testing.assert_array_equal(replay.current_episode(2)["reward"], 2000 + np.arange(3))
    long = Replay(capacity=5, chunk=4)
    for i in range(12):
        long.add(_step(0, i % 7 if i < 7 else 1))  # one first step, then it leaves the buffer
    assert long.current_episode(0) is None
