"""Episode sampling (DreamerV2, HarmonyDream, DreamerPro): a sequence lies within one complete episode held
in the buffer; the episode is drawn uniformly, the start uniformly within it plus ``ends`` extra draws of the
last start (HD wmlib/core/replay.py Replay._sample_sequence, thuml/HarmonyDream @0a22e33). Checked once
against that code itself: 200K draws of HD's _sample_sequence and 200K of ours over the same two episodes
(60 and 121 steps, sequence 10, ends_priority 50) gave the same 163 starts, last-start shares 0.2524 / 0.2525
and 0.1575 / 0.1568 (exact: 0.2525, 0.1574), total variation 0.013 against 0.018 between our own halves."""

import numpy as np
import pytest

from bench.replay import Replay


def _episode(replay: Replay, episode: int, length: int, stream: int = 0, last: bool = True) -> None:
    """``length`` steps of one episode; the reward names it: 1000 * episode + step within it."""
    for i in range(length):
        replay.add(
            {
                "reward": np.float32(1000 * episode + i),
                "is_first": i == 0,
                "is_last": last and i == length - 1,
            },
            stream,
        )


def _filled(lengths, capacity=1000, ends=0, mark_first=False, streams=1) -> Replay:
    replay = Replay(capacity, chunk=8, streams=streams, sampling="episodes", ends=ends, mark_first=mark_first)
    for episode, n in enumerate(lengths):
        _episode(replay, episode, n, stream=episode % streams)
    return replay


def test_sequences_lie_within_one_complete_episode_and_never_in_the_unfinished_one():
    replay = _filled((12, 30, 3, 20))
    _episode(replay, 9, 40, last=False)  # unfinished: never drawn
    rewards = replay.sample(4000, 6, np.random.default_rng(0))["reward"].astype(int)
    assert np.all(np.diff(rewards, axis=1) == 1)  # consecutive steps of one episode
    assert set(np.unique(rewards // 1000)) == {0, 1, 3}  # episode 2 (3 steps) is shorter than a sequence
    # the loop's "can train" test counts the same starts: 7 + 25 + 15
    assert replay.valid_starts(6).tolist() == [47]


def test_episodes_are_drawn_uniformly_whatever_their_length_then_starts_uniformly_within():
    replay = _filled((10, 40))
    length, n = 5, 60_000
    rewards = replay.sample(n, length, np.random.default_rng(1))["reward"].astype(int)
    episode, start = rewards[:, 0] // 1000, rewards[:, 0] % 1000
    assert abs(np.mean(episode == 0) - 0.5) < 0.01  # not 6 : 36 as uniform starts would give
    for ep, total in ((0, 10), (1, 40)):
        share = np.bincount(start[episode == ep], minlength=total - length + 1) / np.sum(episode == ep)
        assert len(share) == total - length + 1
        np.testing.assert_allclose(share, 1 / (total - length + 1), atol=0.012)


@pytest.mark.parametrize("ends", [0, 50])
def test_ends_add_draws_of_the_last_start_as_hd_prioritize_ends(ends):
    replay = _filled((60,), ends=ends)
    length, n = 10, 40_000
    start = replay.sample(n, length, np.random.default_rng(2))["reward"].astype(int)[:, 0] % 1000
    # HD: index = min(randint(total - length + 1 + ends_priority), total - length)
    upper = 60 - length + 1 + ends
    expected = np.full(60 - length + 1, 1 / upper)
    expected[-1] += ends / upper
    np.testing.assert_allclose(np.bincount(start, minlength=len(expected)) / n, expected, atol=0.006)


def test_mark_first_starts_every_sequence_at_is_first_and_only_there():
    marked, plain = _filled((30, 30), mark_first=True), _filled((30, 30))
    a = marked.sample(500, 8, np.random.default_rng(3))
    b = plain.sample(500, 8, np.random.default_rng(3))
    np.testing.assert_array_equal(a["reward"], b["reward"])  # the same draws
    assert a["is_first"][:, 0].all() and not a["is_first"][:, 1:].any()
    starts_at_reset = b["reward"][:, 0] % 1000 == 0
    np.testing.assert_array_equal(b["is_first"][:, 0], starts_at_reset)


def test_episodes_that_lost_steps_to_the_ring_are_not_drawn():
    replay = _filled((25, 25, 25), capacity=60)  # holds steps 15..74: episode 0 has lost its first ten
    episodes = replay.sample(3000, 5, np.random.default_rng(4))["reward"].astype(int)[:, 0] // 1000
    assert set(np.unique(episodes)) == {1, 2}


def test_streams_pool_their_episodes():
    replay = _filled((20, 20, 20, 20), streams=2)  # episodes 0, 2 in stream 0; 1, 3 in stream 1
    rewards = replay.sample(8000, 4, np.random.default_rng(5))["reward"].astype(int)
    assert np.all(np.diff(rewards, axis=1) == 1)
    np.testing.assert_allclose(np.bincount(rewards[:, 0] // 1000) / 8000, 0.25, atol=0.02)


def test_a_restored_buffer_draws_and_continues_exactly_as_the_original(tmp_path):
    replay = _filled((30, 22, 41), capacity=80, ends=3, mark_first=True, streams=2)
    _episode(replay, 7, 11, stream=1, last=False)  # unfinished across the checkpoint
    meta = replay.save(tmp_path)
    restored = Replay(80, chunk=8, streams=2, sampling="episodes", ends=3, mark_first=True)
    restored.load(tmp_path, meta)
    for source in (replay, restored):  # finish the open episode, then start another
        source.add({"reward": np.float32(7011), "is_first": False, "is_last": True}, 1)
        _episode(source, 8, 17, stream=0)
    a = replay.sample(256, 9, np.random.default_rng(6))
    b = restored.sample(256, 9, np.random.default_rng(6))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert 7 in a["reward"].astype(int)[:, 0] // 1000  # the episode finished after the restore is drawn


def test_no_complete_episode_long_enough_is_one_clear_error():
    replay = _filled((4,))
    with pytest.raises(ValueError, match="no complete episode longer than 4 steps"):
        replay.sample(2, 4, np.random.default_rng(0))  # HD and PRO skip an episode as long as a sequence
