"""DreamerV2/V3 agents end to end on tiny models: configs, updates, policy, resets, checkpoints, balancers."""

from __future__ import annotations

import copy
import io
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents
from agents import dreamer

torch.set_num_threads(1)
IMAGE = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
STATE = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)


def make_agent(name="dreamerv3", obs=("image",), discrete=False, **overrides):
    config = agents.default_config(name, "smoke", "dmc")["agent"]
    config.update(overrides)
    obs_space = gym.spaces.Dict({k: {"image": IMAGE, "state": STATE}[k] for k in obs})
    act_space = gym.spaces.Discrete(3) if discrete else gym.spaces.Box(-1, 1, (2,), np.float32)
    return agents.make(name, obs_space, act_space, config, torch.device("cpu"))


def random_batch(agent, seed=0):
    rng = np.random.default_rng(seed)
    b, t = agent.batch_size, agent.batch_length
    batch = {
        "reward": rng.normal(size=(b, t)).astype(np.float32),
        "is_first": np.zeros((b, t), bool),
        "is_last": np.zeros((b, t), bool),
        "is_terminal": np.zeros((b, t), bool),
    }
    batch["is_first"][:, 0] = batch["is_first"][0, 3] = True
    batch["is_terminal"][1, 2] = True
    if agent.discrete:
        batch["action"] = np.eye(agent.actions, dtype=np.float32)[rng.integers(0, agent.actions, (b, t))]
    else:
        batch["action"] = rng.uniform(-1, 1, (b, t, agent.actions)).astype(np.float32)
    batch["action"][batch["is_first"]] = 0
    if "image" in agent.obs_keys:
        batch["image"] = rng.integers(0, 256, (b, t, 64, 64, 3), dtype=np.uint8)
    if "state" in agent.obs_keys:
        batch["state"] = rng.normal(size=(b, t, 5)).astype(np.float32)
    return batch


@pytest.mark.parametrize("backbone", ["dreamerv2", "dreamerv3"])
@pytest.mark.parametrize("preset", ["paper", "small", "smoke"])
@pytest.mark.parametrize("suite", ["dmc", "dmcr", "metaworld", "atari100k", "rlbench", "gym"])
def test_default_config_is_json_and_valid(backbone, preset, suite):
    config = dreamer.default_config(backbone, preset, suite)
    assert json.loads(json.dumps(config)) == config
    agent = config["agent"]
    dreamer.check_config(backbone, agent)
    assert agent["version"] == ("dreamerv2" if backbone == "dreamerv2" else "dreamerv3-2023")
    replay = {"replay_sampling", "replay_ends", "replay_mark_first"}
    assert set(config["run"]) <= {"train_ratio", "prefill", "pretrain", "replay_capacity", "envs", *replay}
    # HD/DV2 sample within episodes (gym has no HD config); DV3 keeps the stream replay
    episodes = backbone == "dreamerv2" and suite != "gym"
    assert config["run"].get("replay_sampling", "stream") == ("episodes" if episodes else "stream")
    assert {"train_ratio", "prefill", "pretrain", "replay_capacity"} <= set(config["run"])
    weights = agent["balancer"]["weights"]
    if backbone == "dreamerv3":
        assert (
            weights["dyn"] == pytest.approx(0.6)
            and agent["kl_dyn_scale"] == 0.5
            and agent["kl_rep_scale"] == 0.1
        )
    else:
        assert agent["kl_balance"] == 0.8 and agent["stoch"] == agent["classes"] == (
            32 if preset == "paper" else agent["stoch"]
        )


def test_paper_presets_follow_the_references():
    dv3 = dreamer.default_config("dreamerv3", "paper", "atari100k")
    assert (
        dv3["run"]["train_ratio"] == 1024
        and dreamer.default_config("dreamerv3", "paper", "dmc")["run"]["train_ratio"] == 512
    )
    assert (dv3["agent"]["deter"], dv3["agent"]["units"], dv3["agent"]["cnn_depth"]) == (
        512,
        512,
        32,
    )  # size S
    mw = dreamer.default_config("dreamerv2", "paper", "metaworld")["agent"]
    assert (mw["batch_size"], mw["batch_length"], mw["model_lr"]) == (50, 50, 3e-4)


@pytest.mark.parametrize(
    "key,value",
    [
        ("precision", "fp8"),
        ("kl", "mystery"),
        ("batch_size", 0),
        ("discount", 1.5),
        ("compile", "yes"),
        ("nope", 1),
    ],
)
def test_check_config_rejects_bad_values_in_one_line(key, value):
    config = dreamer.default_config("dreamerv3", "smoke", "dmc")["agent"]
    config[key] = value
    with pytest.raises(ValueError) as err:
        dreamer.check_config("dreamerv3", config)
    assert key in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "name,obs,discrete",
    [
        ("dreamerv2", ("image",), False),
        ("dreamerv2", ("state",), True),
        ("dreamerv3", ("image", "state"), True),
        ("dreamerv3", ("state",), False),
    ],
)
def test_update_reports_metrics_and_changes_every_trained_net(name, obs, discrete):
    torch.manual_seed(0)
    agent = make_agent(name, obs, discrete)
    before = {k: v.clone() for k, v in agent.modules.state_dict().items()}
    metrics = agent.train(random_batch(agent))
    for group in agent.groups:
        assert math.isfinite(metrics[f"loss/{group}"]) and f"weight/{group}" in metrics
    for key in ("loss/actor", "loss/critic", "kl", "entropy", "return_scale", "grad_norm/model"):
        assert math.isfinite(metrics[key])
    after = agent.modules.state_dict()
    for prefix in ("wm.rssm.cell", "wm.reward_head", "ac.actor", "ac.critic"):
        changed = [not torch.equal(before[k], after[k]) for k in after if k.startswith(prefix)]
        assert any(changed), prefix
    obs_batch = {k: random_batch(agent)[k][:, 0] for k in agent.obs_keys}
    obs_batch["is_first"] = np.ones(agent.batch_size, bool)
    action, state = agent.policy(obs_batch, None, "train")
    action, state = agent.policy({**obs_batch, "is_first": np.zeros(agent.batch_size, bool)}, state, "eval")
    assert action.shape == (agent.batch_size, agent.actions) and action.dtype == np.float32
    if discrete:
        assert np.array_equal(action.sum(-1), np.ones(agent.batch_size)) and set(np.unique(action)) <= {0, 1}
    else:
        assert np.abs(action).max() <= 1


@pytest.mark.parametrize("name", ["dreamerv2", "dreamerv3"])
def test_is_first_resets_the_posterior(name):
    torch.manual_seed(0)
    agent = make_agent(name, ("state",))
    wm = agent.wm
    batch = agent.to_device(random_batch(agent))
    embed = wm.encode(batch)
    first = batch["is_first"].clone()
    first[:, 4] = 1
    altered = embed.clone()
    altered[:, :4] += 3.0  # history before the reset differs
    torch.manual_seed(1)
    post_a, _ = wm.rssm.observe(embed, batch["action"], first)
    torch.manual_seed(1)
    post_b, _ = wm.rssm.observe(altered, batch["action"], first)
    assert not torch.equal(post_a["deter"][:, 3], post_b["deter"][:, 3])
    assert torch.equal(post_a["deter"][:, 4:], post_b["deter"][:, 4:])


@pytest.mark.parametrize("name,discrete", [("dreamerv2", False), ("dreamerv3", True)])
def test_checkpoint_round_trip_reproduces_the_next_update_bit_for_bit(name, discrete):
    torch.manual_seed(0)
    agent = make_agent(name, ("image", "state"), discrete)
    for seed in range(2):
        agent.train(random_batch(agent, seed))
    buffer = io.BytesIO()
    torch.save({"agent": agent.state_dict(), "rng": torch.get_rng_state()}, buffer)
    expected = agent.train(random_batch(agent, 5))
    expected_params = copy.deepcopy(agent.modules.state_dict())

    torch.manual_seed(123)  # a fresh agent with different weights
    fresh = make_agent(name, ("image", "state"), discrete)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    fresh.load_state_dict(saved["agent"])
    torch.set_rng_state(saved["rng"])
    assert fresh.train(random_batch(fresh, 5)) == expected
    for key, value in fresh.modules.state_dict().items():
        assert torch.equal(value, expected_params[key]), key


@pytest.mark.parametrize(
    "name", ["dreamerv3+harmony", "dreamerv2+uncertainty", "dreamerv2+dwa", "dreamerv2+nashmtl"]
)
def test_every_balancer_trains_with_the_backbone(name):
    torch.manual_seed(0)
    config = agents.default_config(name, "smoke", "gym")["agent"]
    space = gym.spaces.Dict({"state": STATE})
    agent = agents.make(name, space, gym.spaces.Box(-1, 1, (2,), np.float32), config, torch.device("cpu"))
    for seed in range(2):
        metrics = agent.train(random_batch(agent, seed))
    assert all(math.isfinite(metrics[f"weight/{g}"]) for g in agent.groups)
    if name.endswith("harmony"):  # the balancer's scalars train with the world model
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.balancer.parameters())
        in_opt = {id(p) for group in agent.model_opt.param_groups for p in group["params"]}
        assert all(id(p) in in_opt for p in agent.balancer.parameters())


@pytest.mark.parametrize("name", ["dreamerv2+harmony", "dreamerv2+uncertainty"])
@pytest.mark.parametrize("balancer_lr", [None, 1e-2])
def test_learned_balancer_weights_step_at_their_own_lr(name, balancer_lr):
    """Adam's first step moves every parameter by about its lr: the sigma scalars by the balancer lr when
    one is set, else by the world model's (HD's own optimizer)."""
    torch.manual_seed(0)
    config = agents.default_config(name, "smoke", "gym")["agent"]
    config["balancer"]["lr"] = balancer_lr
    agent = agents.make(
        name,
        gym.spaces.Dict({"state": STATE}),
        gym.spaces.Box(-1, 1, (2,), np.float32),
        config,
        torch.device("cpu"),
    )
    before = [p.detach().clone() for p in agent.balancer.parameters()]
    agent.train(random_batch(agent))
    params = list(agent.balancer.parameters())
    moved = [abs((p.detach() - b).item()) for p, b in zip(params, before)]
    # a loss at UW's optimum (L = 1, e.g. the KL held at 1 free nat) gives its scalar no gradient
    pushed = [m for p, m in zip(params, moved) if p.grad is not None and p.grad.abs().item() > 1e-6]
    expected = config["model_lr"] if balancer_lr is None else balancer_lr
    assert len(params) == 3 and len(pushed) >= 2, moved
    assert all(m == pytest.approx(expected, rel=0.05) for m in pushed), moved


def test_world_model_fits_a_fixed_batch():
    torch.manual_seed(0)
    agent = make_agent("dreamerv3", ("state",), model_lr=1e-3)
    batch = random_batch(agent)
    first = agent.train(batch)
    for _ in range(60):
        last = agent.train(batch)
    assert last["loss/obs"] < 0.7 * first["loss/obs"] and last["loss/reward"] < first["loss/reward"]


def test_bf16_autocast_update_is_finite():
    torch.manual_seed(0)
    agent = make_agent("dreamerv3", ("image",), precision="bf16")
    metrics = agent.train(random_batch(agent))
    assert all(math.isfinite(v) for v in metrics.values())


def test_bad_spaces_raise_value_error():
    config = agents.default_config("dreamerv2", "smoke", "dmc")["agent"]
    with pytest.raises(ValueError, match="image size"):
        agents.make(
            "dreamerv2",
            gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (48, 48, 3), np.uint8)}),
            gym.spaces.Box(-1, 1, (2,)),
            config,
            "cpu",
        )


@pytest.mark.parametrize("backbone", ["dreamerv2", "dreamerv3"])
def test_paper_precision_is_the_references_fp16_on_cuda_and_fp32_on_a_cpu(backbone):
    assert dreamer.default_config(backbone, "paper", "dmc")["agent"]["precision"] == "auto"
    assert dreamer.default_config(backbone, "small", "dmc")["agent"]["precision"] == "fp32"
    agent = make_agent(backbone, ("image",), precision="auto")
    assert agent.dtype == torch.float32 and not agent.scaler.is_enabled()
