"""Every installable suite through the one Env interface, with real simulators: observation keys, dtypes
and shapes, is_first/is_last/is_terminal semantics, truncation vs termination, seeding, bad names."""

import numpy as np
import pytest

import suites

# (suite, task, env overrides that keep episodes short)
CASES = [
    ("dmc", "cartpole_balance", {"time_limit": 20}),
    ("dmcr", "cheetah_run", {"time_limit": 20}),
    ("metaworld", "lever-pull", {"time_limit": 10}),
    ("atari100k", "pong", {"time_limit": 40}),
    ("gym", "Pendulum-v1", {}),
]


def make(name, task, overrides, seed=0, mode="train"):
    suite = suites.get(name)
    env_config = {**suite.config("smoke")["env"], **overrides}
    suite.check_config(task, env_config)
    return suite.make(task, seed, env_config, mode), env_config


def act(env, rng):
    if hasattr(env.act_space, "n"):
        return np.eye(env.act_space.n, dtype=np.float32)[rng.integers(env.act_space.n)]  # one-hot
    return rng.uniform(-1, 1, env.act_space.shape).astype(np.float32)


def run_episode(env, seed=0, max_steps=1000):
    rng = np.random.default_rng(seed)
    steps = [env.reset()]
    while not steps[-1]["is_last"] and len(steps) <= max_steps:
        steps.append(env.step(act(env, rng)))
    return steps


@pytest.mark.parametrize("name,task,overrides", CASES, ids=[c[0] for c in CASES])
def test_episode_follows_the_contract(name, task, overrides):
    env, env_config = make(name, task, overrides)
    assert set(env.obs_space.spaces) <= {"image", "state"} and env.obs_space.spaces
    steps = run_episode(env)
    first, rest = steps[0], steps[1:]
    assert first["is_first"] and not first["is_last"] and first["reward"] == 0
    assert not any(s["is_first"] for s in rest)
    assert rest[-1]["is_last"] and not any(s["is_last"] for s in rest[:-1])
    for step in steps:
        for key, space in env.obs_space.spaces.items():
            assert step[key].dtype == space.dtype and step[key].shape == space.shape, key
        assert step["reward"].dtype == np.float32
        assert all(isinstance(step[k], bool | np.bool_) for k in ("is_first", "is_last", "is_terminal"))
    if "image" in env.obs_space.spaces:
        assert env.obs_space["image"].shape == (env_config["image_size"],) * 2 + (3,)
    if name == "metaworld":
        assert all(isinstance(s["success"], bool) for s in steps)
    env.close()


@pytest.mark.parametrize(
    "name,task,overrides", CASES[:3] + CASES[4:], ids=["dmc", "dmcr", "metaworld", "gym"]
)
def test_time_limit_truncates_without_terminating(name, task, overrides):
    env, env_config = make(name, task, overrides)
    steps = run_episode(env)
    assert steps[-1]["is_last"] and not steps[-1]["is_terminal"]
    frames = (len(steps) - 1) * env_config["action_repeat"]
    limit = env_config.get("time_limit", 200)  # Pendulum-v1: gymnasium's 200-step limit
    assert frames == limit
    env.close()


def test_termination_is_terminal_and_last():
    env, _ = make("gym", "CartPole-v1", {})
    steps = run_episode(env)
    assert len(steps) - 1 < 500, "a random CartPole policy falls long before the 500-step limit"
    assert steps[-1]["is_terminal"] and steps[-1]["is_last"]
    start = env.reset()["state"]
    pushed = [env.step(a)["state"][1] for a in (1, 1)]  # ints are accepted for Discrete spaces too
    assert pushed[1] > pushed[0] > start[1]  # action 1 pushes the cart right: its velocity grows
    env.close()


@pytest.mark.parametrize("name,task,overrides", CASES, ids=[c[0] for c in CASES])
def test_same_seed_same_frames_and_different_seed_differs(name, task, overrides):
    key = "image" if name != "gym" else "state"

    def trajectory(seed):
        env, _ = make(name, task, overrides, seed=seed)
        frames = [s[key] for s in run_episode(env, seed=0, max_steps=8)] + [env.reset()[key]]
        env.close()
        return np.stack(frames)

    first, again, other = trajectory(1), trajectory(1), trajectory(2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_dmc_state_and_both_observations():
    env, _ = make("dmc", "cheetah_run", {"obs": "both", "time_limit": 4})
    obs = env.reset()
    assert set(env.obs_space.spaces) == {"image", "state"}
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (17,)  # 8 positions + 9 velocities
    env, _ = make("dmc", "cheetah_run", {"obs": "state"})
    assert set(env.obs_space.spaces) == {"state"} and "image" not in env.reset()


def test_dmc_lists_every_dm_control_task():
    from dm_control import suite

    tasks = suites.get("dmc").tasks()
    assert len(tasks) == len(suite.ALL_TASKS) and "ball_in_cup_catch" in tasks


def test_fast_render_changes_the_look_but_not_the_shapes():
    fast, _ = make("dmc", "cheetah_run", {"render": "fast"})
    default, _ = make("dmc", "cheetah_run", {"render": "default"})
    a, b = fast.reset()["image"], default.reset()["image"]
    assert a.shape == b.shape and not np.array_equal(a, b)


@pytest.mark.parametrize("name", ["dmc", "dmcr", "metaworld", "atari100k", "rlbench", "gym"])
def test_bad_task_name_lists_the_tasks(name):
    suite = suites.get(name)
    with pytest.raises(ValueError) as error:
        suite.check_config("no_such_task", suite.config("smoke")["env"])
    message = str(error.value)
    assert "\n" not in message and "no_such_task" in message and suite.tasks()[0] in message


@pytest.mark.parametrize("name", ["dmc", "dmcr", "metaworld", "atari100k", "rlbench", "gym"])
def test_configs_are_json_typed_and_complete(name):
    suite = suites.get(name)
    for preset in ("smoke", "small", "paper"):
        config = suite.config(preset)
        assert set(config["run"]) == {"steps", "eval_every", "eval_episodes"}
        assert {"obs", "action_repeat"} <= set(config["env"])
        for value in config["env"].values():
            assert isinstance(value, int | float | bool | str | list), value
        suite.check_config(suite.default_tasks[0], config["env"])
    assert suite.config("smoke")["run"]["steps"] <= 2_000


def test_bad_env_option_is_one_line_value_error():
    suite = suites.get("dmc")
    with pytest.raises(ValueError, match="env.render"):
        suite.check_config("cheetah_run", {**suite.config("smoke")["env"], "render": "pretty"})
    with pytest.raises(ValueError, match="env.obs"):
        suite.check_config("cheetah_run", {**suite.config("smoke")["env"], "obs": "pixels"})
