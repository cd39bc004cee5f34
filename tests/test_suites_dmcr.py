"""DMC Remastered re-implementation: visual seeds, factors, modes and camera ranges (real dm_control)."""

import numpy as np
import pytest

import suites
from suites.dmcr import VisualSeeds, parse_mode
from suites.dmcr_visuals import DOMAINS, FACTORS


def make(task="cheetah_run", seed=0, split="train", **overrides):
    suite = suites.get("dmcr")
    env_config = {**suite.config("smoke")["env"], "time_limit": 10, **overrides}
    suite.check_config(task, env_config)
    return suite.make(task, seed, env_config, split)


def first_frame(visual_seed, task="cheetah_run", vary=FACTORS, dynamics_seed=0):
    env = make(task, seed=dynamics_seed, mode=f"classic:{visual_seed}", vary=list(vary))
    frame = env.reset()["image"]
    env.close()
    return frame


def test_same_visual_seed_same_frames_different_seeds_differ():
    a, b, c = first_frame(7), first_frame(7), first_frame(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_visual_seed_is_independent_of_the_dynamics_seed():
    # Same dynamics seed, different looks: the pose is the same, so only the look changes the frame;
    # same look, different dynamics: the frames differ too. Both visual seeds reproduce exactly.
    assert not np.array_equal(first_frame(3, dynamics_seed=0), first_frame(4, dynamics_seed=0))
    assert not np.array_equal(first_frame(3, dynamics_seed=0), first_frame(3, dynamics_seed=1))


def test_visual_seed_zero_is_the_plain_dmc_frame():
    dmc = suites.get("dmc")
    plain = dmc.make("cheetah_run", 0, {**dmc.config("smoke")["env"], "time_limit": 10})
    np.testing.assert_array_equal(first_frame(0), plain.reset()["image"])


@pytest.mark.parametrize("factor", FACTORS)
def test_each_factor_alone_changes_the_image(factor):
    # reacher films a target on a floor from above; cheetah shows the sky. (Walker's and hopper's lights
    # never move, as in DMCR.)
    task = "cheetah_run" if factor == "bg" else "reacher_easy"
    stock = first_frame(0, task=task)
    varied = first_frame(11, task=task, vary=[factor])
    assert np.abs(varied.astype(int) - stock.astype(int)).sum() > 0, factor


def test_switching_a_factor_off_keeps_the_others():
    # Every factor is drawn whether varied or not, so removing the camera leaves the colours alone.
    env = make("cartpole_balance", mode="classic:5", vary=["body", "camera"])
    env.reset()
    body_with_camera = env.visuals.body.copy()
    env = make("cartpole_balance", mode="classic:5", vary=["body"])
    env.reset()
    np.testing.assert_array_equal(body_with_camera, env.visuals.body)


@pytest.mark.parametrize("task", ["cheetah_run", "walker_walk", "cartpole_balance", "hopper_stand"])
def test_camera_stays_inside_its_range(task):
    env = make(task, mode="random", vary=["camera"])
    ranges = DOMAINS[task.split("_")[0]].camera
    positions = []
    for _ in range(5):
        env.reset()
        positions.append(env.physics.model.cam_pos[0].copy())
    positions = np.array(positions)
    low, high = np.array(ranges).T
    assert (positions >= low).all() and (positions <= high).all()
    assert len({tuple(p) for p in positions}) == 5  # a new pose every episode


def test_random_mode_draws_a_fresh_visual_seed_every_episode_in_train_and_eval():
    for split in ("train", "eval"):
        env = make(mode="random", seed=3, split=split)
        seeds = []
        frames = []
        for _ in range(3):
            frames.append(env.reset()["image"])
            seeds.append(env.visual_seed)
        assert len(set(seeds)) == 3 and all(1 <= s <= 1_000_000 for s in seeds)
        assert not np.array_equal(frames[0], frames[1])


def test_generalization_split_trains_on_n_levels_and_evaluates_on_unseen_seeds():
    train = VisualSeeds("generalization:5", seed=0, split="train")
    evaluation = VisualSeeds("generalization:5", seed=0, split="eval")
    train_seeds = {train.next() for _ in range(200)}
    eval_seeds = {evaluation.next() for _ in range(200)}
    assert train_seeds == {1, 2, 3, 4, 5}
    assert min(eval_seeds) > 5 and len(eval_seeds) > 190


def test_classic_mode_keeps_one_look():
    env = make(mode="classic:42")
    a = env.reset()["image"]
    env.step(np.zeros(6))
    b = env.reset()["image"]
    assert env.visual_seed == 42 and a.shape == b.shape


@pytest.mark.parametrize("mode", ["classic", "classic:-1", "generalization:0", "fixed:3", "random:2"])
def test_malformed_mode_is_rejected(mode):
    with pytest.raises(ValueError, match="env.mode"):
        parse_mode(mode)


def test_bad_factor_is_rejected():
    suite = suites.get("dmcr")
    with pytest.raises(ValueError, match="skybox"):
        suite.check_config("cheetah_run", {**suite.config("smoke")["env"], "vary": ["skybox"]})


def test_all_ten_domains_build_and_render_a_varied_look():
    tasks = suites.get("dmcr").tasks()
    assert {t.rsplit("_", 1)[0] if not t.startswith("ball") else "ball_in_cup" for t in tasks} >= set(
        DOMAINS
    ) - {"ball_in_cup"}
    for domain in DOMAINS:
        task = next(t for t in tasks if t.startswith(domain))
        plain, varied = first_frame(0, task=task), first_frame(99, task=task)
        assert not np.array_equal(plain, varied), task
