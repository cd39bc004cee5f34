"""Vector envs over real dm_control (cartpole_balance, 20-frame episodes): workers match in-process envs,
and a worker that raises, is killed or hangs becomes a WorkerError naming it, never a silent hang."""

import contextlib
import os
import signal
import time

import numpy as np
import pytest

import suites
from bench.vec_env import InProcessEnvs, WorkerError, env_seed, make_vec_env

TASK = "cartpole_balance"
SEED = 3


@pytest.fixture
def env_config() -> dict:
    config = suites.get("dmc").config("smoke")["env"]
    return {**config, "time_limit": 20}  # 10 agent steps per episode: the test crosses resets


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail the test instead of hanging it."""

    def expired(signum, frame):
        raise AssertionError(f"no answer within {seconds} s: the vector env hung")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_workers_match_separate_in_process_envs_across_episodes_and_report_errors(env_config):
    alone = [InProcessEnvs(suites.get("dmc").make(TASK, env_seed(SEED, i), env_config)) for i in range(2)]
    actions = np.random.default_rng(0).uniform(-1, 1, (25, 2, 1)).astype(np.float32)
    with deadline(300):
        vec = make_vec_env("dmc", TASK, SEED, env_config, "train", 2, step_timeout_s=120)
        try:
            assert vec.action_repeat == 2 and vec.obs_space["image"].shape == (64, 64, 3)
            pairs = [(vec.reset(), [env.reset()[0] for env in alone])]
            for action in actions:
                separate = [env.step(a[None]) for env, a in zip(alone, action)]
                obs, firsts = vec.step(action)
                pairs.append((obs + firsts, [s[0][0] for s in separate] + [s[1][0] for s in separate]))
            firsts = 0
            for together, apart in pairs:
                for got, want in zip(together, apart, strict=True):
                    assert (got is None) == (want is None)
                    if got is not None:
                        assert got.keys() == want.keys()
                        for key in got:
                            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
                        firsts += bool(got["is_first"])
            assert firsts == 2 + 2 * 2  # the resets, then two new episodes per env in 25 steps of 10
            assert not np.array_equal(pairs[3][0][0]["image"], pairs[3][0][1]["image"])  # distinct seeds
            restored = InProcessEnvs(suites.get("dmc").make(TASK, env_seed(SEED, 1), env_config))
            episode = [a[1] for a in actions[20:]]  # env 1's current episode began after step 20
            (now,) = restored.restore([vec.resets[1]], [episode])
            assert vec.resets == [3, 3] and pairs[-1][0][1]["is_first"] is False
            for key in now:
                np.testing.assert_array_equal(now[key], pairs[-1][0][1][key], err_msg=key)
            restored.close()
            bad = [np.zeros(1, np.float32), np.zeros(3, np.float32)]  # dm_control refuses env-1's action
            with pytest.raises(WorkerError, match=r"(?s)env-1 \(pid \d+\) failed:.*Traceback.*broadcast"):
                vec.step(bad)
        finally:
            vec.close()
    for env in alone:
        env.close()


def test_a_killed_worker_is_named_with_its_death(env_config):
    with deadline(300):
        vec = make_vec_env("dmc", TASK, SEED, env_config, "train", 2, step_timeout_s=120)
        vec.reset()
        vec.step(np.zeros((2, 1), np.float32))
        victim = vec.pids[1]
        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(
            WorkerError, match=rf"env worker env-1 \(pid {victim}\) died \(killed by signal 9\)"
        ):
            for _ in range(5):
                vec.step(np.zeros((2, 1), np.float32))
        assert time.monotonic() - started < 60  # well within the step timeout: death is seen, not waited out
        assert vec.pids == []  # the other worker was stopped too


def test_a_hung_worker_times_out_with_its_name(env_config):
    with deadline(300):
        vec = make_vec_env("dmc", TASK, SEED, env_config, "train", 2, step_timeout_s=20)
        vec.reset()
        victim = vec.pids[0]
        os.kill(victim, signal.SIGSTOP)  # a real hang: the process stays alive and never answers
        try:
            with pytest.raises(WorkerError, match=rf"env-0 \(pid {victim}\).* did not answer within 20 s"):
                vec.step(np.zeros((2, 1), np.float32))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
            vec.close()
