"""Atari 100K (all 26 games construct; HNS anchors) and Meta-world (success, upright image), real envs."""

import numpy as np
import pytest

import suites
from suites.reference_scores import ATARI_RANDOM_HUMAN, hns


def test_all_26_atari100k_games_construct_with_minimal_actions():
    suite = suites.get("atari100k")
    env_config = suite.config("smoke")["env"]
    assert len(suite.tasks()) == 26
    for game in suite.tasks():
        env = suite.make(game, 0, env_config)
        assert env.act_space.n <= 18 and env.reset()["image"].shape == (64, 64, 3), game
        env.close()


@pytest.mark.parametrize("game", sorted(ATARI_RANDOM_HUMAN))
def test_hns_of_random_and_human_scores_is_zero_and_one(game):
    random, human = ATARI_RANDOM_HUMAN[game]
    assert hns(game, random) == pytest.approx(0.0) and hns(game, human) == pytest.approx(1.0)


def test_hns_reproduces_the_published_harmony_aggregate(shared_dir):
    import json

    scores = json.loads(
        (shared_dir / "data/published/harmonydream-atari100k-harmony_dreamerv3.json").read_text()
    )
    final = {game: np.mean([run[-1] for run in runs]) for game, runs in scores["score"].items()}
    normalised = [hns(game, score) for game, score in final.items()]
    assert np.mean(normalised) == pytest.approx(1.364, abs=0.001)  # published mean 136.4%
    assert np.median(normalised) == pytest.approx(0.671, abs=0.001)  # published median 67.1%


def test_unknown_game_is_a_value_error():
    with pytest.raises(ValueError, match="alien"):
        hns("tetris", 1.0)


def metaworld_env(**overrides):
    suite = suites.get("metaworld")
    return suite.make("reach", 0, {**suite.config("smoke")["env"], **overrides})


def test_metaworld_image_is_upright():
    env = metaworld_env(time_limit=5)
    image = env.reset()["image"]
    raw = env._env.render()  # metaworld 3 returns MuJoCo's bottom-up buffer
    np.testing.assert_array_equal(image, raw[::-1])
    # Upright: the bright sky/wall is at the top of the frame and the dark floor at the bottom.
    assert image[:8].mean() > image[-8:].mean()
    env.close()


def test_metaworld_reports_success_once_solved_at_any_step():
    env = metaworld_env(obs="both", time_limit=60)
    obs = env.reset()
    assert obs["success"] is False
    goal = env._env._target_pos
    steps = []
    for _ in range(60):  # a proportional controller moves the hand to the reach goal
        hand = obs["state"][:3]
        action = np.append(np.clip((goal - hand) * 20, -1, 1), 0.0)
        obs = env.step(action)
        steps.append(obs["success"])
    assert steps[-1] and any(steps) and obs["is_last"] and not obs["is_terminal"]
    first = steps.index(True)
    assert all(steps[first:]), "success stays true for the rest of the episode"
    env.close()
