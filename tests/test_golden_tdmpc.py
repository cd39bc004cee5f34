"""Our TD-MPC backbone reproduces what nicklashansen/tdmpc (the TD-MPC paper's code) computes from the same
weights, batches and noise.

tests/golden/tdmpc.json holds the reference's numbers for two planning calls (the executed action and the
plan's mean, the second call warm-started) and two updates with their optimizer steps and target EMA: the
per-sample consistency, reward and value losses, the replay priorities (TD errors), the TD and latent targets,
the latents the policy trains on, the weighted group losses and their total, the policy loss, the gradient
norm of each module before clipping, and how far each module and its EMA target moved.
tools/golden/make_tdmpc.py records them and tests/golden_tdmpc.py builds our side (see there for what is made
deterministic).
"""

from __future__ import annotations

from pathlib import Path

import torch
from golden_check import (
    assert_matches,
    assert_same_settings,
    assert_same_weights,
    assert_shapes_match,
    load_golden,
    parameter_shapes,
)
from golden_tdmpc import (
    BATCH_SEED,
    CHOICE_U,
    NOISE_SEED,
    PLAN_STEP,
    TARGET_SEED,
    TINY,
    WEIGHT_SEED,
    agent_config,
    build_agent,
    measure_ours,
    noise_numbers,
    weight_sums,
)

GOLDEN = Path(__file__).parent / "golden" / "tdmpc.json"


def test_golden_file_matches_this_setup():
    """The file was recorded with the tiny agent, seeds, planning step and elite picks this test rebuilds."""
    golden = load_golden(GOLDEN)
    seeds = {"weight": WEIGHT_SEED, "target": TARGET_SEED, "batch": BATCH_SEED, "noise": NOISE_SEED}
    assert_same_settings("tdmpc", TINY, GOLDEN, key="tiny")
    assert_same_settings("tdmpc", seeds, GOLDEN, key="seeds")
    assert (golden["plan_step"], tuple(golden["choice_u"])) == (PLAN_STEP, CHOICE_U)


def test_tdmpc_reproduces_nicklashansen_tdmpc():
    torch.set_num_threads(1)
    agent = build_agent()
    assert_shapes_match("tdmpc", parameter_shapes(agent.model), GOLDEN)
    assert_same_settings("tdmpc", agent_config(), GOLDEN)
    assert_same_weights("tdmpc", weight_sums(agent), GOLDEN)
    assert_matches("tdmpc", measure_ours(agent, noise_numbers()), GOLDEN)
