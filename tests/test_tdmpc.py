"""TD-MPC v1: planner bounds and quality on a known toy model, masked losses, learning on a fixed batch,
bit-for-bit checkpoints, schedules, balancer groups and config errors."""

import copy
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents
from agents import tdmpc

torch.set_num_threads(1)
OBS_SPACE = gym.spaces.Dict(
    {
        "state": gym.spaces.Box(-np.inf, np.inf, (5,), np.float32),
        "image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8),
    }
)
ACT_SPACE = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def smoke_config(suite: str = "gym", **overrides) -> dict:
    config = tdmpc.default_config("tdmpc", "smoke", suite)["agent"]
    config.update(overrides)
    return config


def make_agent(suite: str = "gym", **overrides) -> tdmpc.TDMPC:
    return tdmpc.make("tdmpc", OBS_SPACE, ACT_SPACE, smoke_config(suite, **overrides), "cpu")


def random_batch(agent: tdmpc.TDMPC, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch whose reward is a fixed function of state and action, so the model can fit it."""
    rng = np.random.default_rng(seed)
    b, t = agent.batch_size, agent.batch_length
    state = rng.normal(size=(b, t, 5)).astype(np.float32)
    action = rng.uniform(-1, 1, size=(b, t, 2)).astype(np.float32)
    reward = (state[..., 0] * action[..., 0] - action[..., 1] ** 2).astype(np.float32)
    image = rng.integers(0, 256, size=(b, t, 64, 64, 3), dtype=np.uint8)
    image[..., 0] = (np.clip(state[..., :1, None], -2, 2) * 60 + 128).astype(np.uint8)  # state visible in red
    flags = np.zeros((b, t), bool)
    is_first = flags.copy()
    is_first[:, 0] = True
    return {
        "state": state,
        "image": image,
        "action": action,
        "reward": reward,
        "is_first": is_first,
        "is_last": flags.copy(),
        "is_terminal": flags.copy(),
    }


def first_obs(batch: dict[str, np.ndarray], n: int = 3) -> dict[str, np.ndarray]:
    return {key: value[:n, 0] for key, value in batch.items()}


# ------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("preset", tdmpc.PRESETS)
@pytest.mark.parametrize("suite", ["gym", "dmc", "metaworld"])
def test_default_configs_are_valid_json_with_one_update_per_step(preset, suite):
    config = tdmpc.default_config("tdmpc", preset, suite)
    tdmpc.check_config("tdmpc", config["agent"])
    assert json.loads(json.dumps(config)) == config
    agent = config["agent"]
    # each sample replays horizon + 1 steps for the losses and k - 1 before them to stack the first
    assert agent["frame_stack"] == (1 if suite == "gym" else 3)
    assert config["run"]["train_ratio"] == agent["batch_size"] * (agent["horizon"] + agent["frame_stack"])
    assert set(config["run"]) == {"train_ratio", "prefill", "pretrain", "replay_capacity"}
    # TDMPC train.py: at step == seed_steps it makes seed_steps updates at once
    assert config["run"]["pretrain"] == (2 if preset == "smoke" else config["run"]["prefill"])
    assert agent["balancer"]["weights"] == {"consistency": 2.0, "reward": 0.5, "value": 0.1}
    assert agent["obs_key"] == ("state" if suite == "gym" else "image")


def test_paper_preset_matches_reference_values():
    state = tdmpc.default_config("tdmpc", "paper", "gym")["agent"]
    pixels = tdmpc.default_config("tdmpc", "paper", "dmc")["agent"]
    assert (state["batch_size"], state["lr"], pixels["batch_size"], pixels["lr"]) == (512, 1e-3, 256, 3e-4)
    assert (state["latent_dim"], state["horizon"], state["rho"], state["tau"]) == (50, 5, 0.5, 0.01)
    assert (state["plan_iterations"], state["plan_samples"], state["plan_elites"]) == (6, 512, 64)
    assert tdmpc._policy_trajectories(state) == 25
    assert (state["per"], state["per_alpha"], state["per_beta"], pixels["frame_stack"]) == (True, 0.6, 0.4, 3)


BAD_VALUES = [
    ("obs_key", "pixels"),
    ("latent_dim", 0),
    ("latent_dim", 2.5),
    ("mlp_dim", True),
    ("horizon", -1),
    ("rho", 0.0),
    ("rho", 1.5),
    ("discount", "0.99"),
    ("tau", 2.0),
    ("target_every", 0),
    ("batch_size", 0),
    ("lr", -1e-3),
    ("lr", float("nan")),
    ("plan_samples", 0),
    ("plan_elites", 1000),  # more elites than candidates
    ("plan_policy_fraction", 1.0),
    ("plan_temperature", 0),
    ("plan_momentum", -0.1),
    ("min_std", 0.9),  # above std_start
    ("aug_pad", -1),
    ("frame_stack", 0),
    ("per", 1),
    ("per_alpha", -0.5),
    ("per_beta", 1.5),
    ("schedule_steps", 1.5),
    ("grad_clip", 0),
    ("balancer", "fixed"),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES)
def test_bad_config_value_is_one_line_value_error_naming_it(key, value):
    config = smoke_config(**{key: value})
    with pytest.raises(ValueError) as error:
        tdmpc.make("tdmpc", OBS_SPACE, ACT_SPACE, config, "cpu")
    message = str(error.value)
    assert "\n" not in message and "valid" in message and key in message


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.update(horizon_steps=5),  # unknown key
        lambda c: c.pop("rho"),  # missing key
        lambda c: c["balancer"].update(name="bogus"),
        lambda c: c["balancer"].update(weights={"obs": 1.0}),  # not a TD-MPC group
    ],
)
def test_structural_config_errors_are_one_line(mutate):
    config = smoke_config()
    mutate(config)
    with pytest.raises(ValueError) as error:
        tdmpc.check_config("tdmpc", config)
    assert "\n" not in str(error.value) and "valid" in str(error.value)


def test_bad_preset_space_and_obs_key_are_value_errors():
    with pytest.raises(ValueError, match="preset='huge'.*smoke"):
        tdmpc.default_config("tdmpc", "huge", "gym")
    with pytest.raises(ValueError, match="Discrete.*Box"):
        tdmpc.make("tdmpc", OBS_SPACE, gym.spaces.Discrete(4), smoke_config(), "cpu")
    state_only = gym.spaces.Dict({"state": OBS_SPACE["state"]})
    with pytest.raises(ValueError, match="obs_key='image'.*valid: state"):
        tdmpc.make("tdmpc", state_only, ACT_SPACE, smoke_config("dmc"), "cpu")


def test_registry_builds_tdmpc_and_tdmpc_with_a_named_balancer():
    config = agents.default_config("tdmpc+fixed", "smoke", "gym")
    agent = agents.make("tdmpc+fixed", OBS_SPACE, ACT_SPACE, config["agent"], torch.device("cpu"))
    assert agent.batch_length == config["agent"]["horizon"] + 1


# ------------------------------------------------------------------------------------------- planning
@pytest.mark.parametrize("suite", ["gym", "dmc"])
def test_planning_returns_actions_within_bounds(suite):
    torch.manual_seed(0)
    agent = make_agent(suite, plan_init_std=50.0, std_start=5.0)  # wide samples and exploration noise
    for layer in agent.model.pi_net:  # a policy prior that saturates tanh
        if isinstance(layer, torch.nn.Linear):
            layer.weight.data.mul_(20)
    obs = first_obs(random_batch(agent))
    obs["image"] = obs["image"][:, ::-1]  # a flipped view with negative strides, as suites produce
    state = None
    for mode in ("train", "eval", "train"):
        action, state = agent.policy(obs, state, mode)
        assert action.shape == (3, 2) and action.dtype == np.float32
        assert np.all(np.abs(action) <= 1.0)
        assert np.abs(action).max() > 0.5  # the noise was really wide
    assert state["mean"].shape == (3, agent.horizon(), 2)


def test_policy_counts_train_steps_and_schedules_follow_them():
    agent = make_agent(horizon=4, schedule_steps=90, std_start=0.5, min_std=0.05)
    assert (agent.horizon(), agent.std_floor()) == (1, 0.5)
    obs = first_obs(random_batch(agent))
    agent.policy(obs, None, "eval")
    assert agent.step == 0
    for _ in range(10):
        _, state = agent.policy(obs, None, "train")
    assert agent.step == 30
    assert agent.horizon() == 2  # int(1 + 3 * 30 / 90)
    assert agent.std_floor() == pytest.approx(0.5 - 0.45 / 3)
    agent.step = 1000
    assert (agent.horizon(), agent.std_floor()) == (4, pytest.approx(0.05))
    _, state = agent.policy(obs, state, "train")  # warm start from a shorter plan
    assert state["mean"].shape == (3, 4, 2)


class ToyModel(torch.nn.Module):
    """A known latent model: z is unused, reward = -||a - a*||^2, Q = 0, and a policy prior that proposes
    uniform random actions (so the planner cannot copy a good prior)."""

    def __init__(self, target: torch.Tensor):
        super().__init__()
        self.target = target

    def next(self, z, a):
        return z, -(a - self.target).pow(2).sum(-1)

    def Q(self, z, a):  # noqa: N802
        zero = a.new_zeros(a.shape[:-1])
        return zero, zero

    def pi(self, z, std=0.0):
        return torch.rand(*z.shape[:-1], self.target.shape[-1]) * 2 - 1


def test_planner_beats_random_actions_on_a_toy_model_by_a_wide_margin():
    torch.manual_seed(0)
    act_dim, n = 4, 8
    target = torch.rand(n, 1, act_dim) * 1.6 - 0.8  # one optimum per env, broadcast over samples
    config = tdmpc.default_config("tdmpc", "paper", "gym")["agent"]
    model = ToyModel(target)
    z = torch.zeros(n, 3)
    planned, _ = tdmpc.plan_actions(model, z, None, horizon=3, std_floor=0.05, explore=False, config=config)
    random = torch.rand(1000, n, act_dim) * 2 - 1
    planned_cost = (planned - target[:, 0]).pow(2).sum(-1).mean().item()
    random_cost = (random - target[:, 0]).pow(2).sum(-1).mean().item()
    assert random_cost > 1.0
    assert planned_cost < 0.05 * random_cost, (planned_cost, random_cost)


def test_random_shift_is_a_replicate_padded_crop_per_frame():
    torch.manual_seed(0)
    pad = 2
    images = torch.randint(0, 256, (3, 4, 9, 9, 3), dtype=torch.uint8)
    shifted = tdmpc.random_shift(images, pad)
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    padded = torch.nn.functional.pad(
        images.reshape(12, 9, 9, 3).permute(0, 3, 1, 2).float(), (pad,) * 4, "replicate"
    )
    used = set()
    for frame, out in zip(padded, shifted.reshape(12, 9, 9, 3).permute(0, 3, 1, 2).float()):
        crops = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(frame[:, dy : dy + 9, dx : dx + 9], out)
        ]
        assert crops
        used.add(crops[0])
    assert len(used) > 3  # shifts are drawn per frame
    assert torch.equal(tdmpc.random_shift(images, 0), images)


def test_stack_frames_takes_the_last_k_oldest_first_and_repeats_an_episode_start():
    # one scalar "frame" per step whose value is its step index, 2 channels (value, 10 * value)
    frames = torch.arange(6.0)[:, None, None].expand(6, 2, 1) * torch.tensor([1.0, 10.0])
    is_first = torch.zeros(6, 2, dtype=torch.bool)
    is_first[3, 1] = True  # sequence 1: a new episode starts at step 3
    stacked = tdmpc.stack_frames(frames, is_first, 3)
    assert stacked.shape == (4, 2, 6)
    assert stacked[:, 0, ::2].tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    assert stacked[:, 1, ::2].tolist() == [[0, 1, 2], [3, 3, 3], [3, 3, 4], [3, 4, 5]]
    assert torch.equal(stacked[..., 1::2], 10 * stacked[..., ::2])  # channels stay with their frame
    assert torch.equal(tdmpc.stack_frames(frames, is_first, 1), frames)


def test_policy_stacks_frames_and_refills_the_stack_on_reset():
    torch.manual_seed(0)
    agent = make_agent("dmc")
    batch = random_batch(agent)
    assert agent.batch_length == agent.config["horizon"] + 3
    obs = [{**first_obs(batch, 2), "image": batch["image"][:2, t]} for t in range(3)]
    _, state = agent.policy(obs[0], None, "eval")
    assert all(torch.equal(state["frames"][:, i], torch.as_tensor(obs[0]["image"])) for i in range(3))
    _, state = agent.policy({**obs[1], "is_first": np.array([False, False])}, state, "eval")
    _, state = agent.policy({**obs[2], "is_first": np.array([False, True])}, state, "eval")
    frames = state["frames"]
    assert [torch.equal(frames[0, i], torch.as_tensor(obs[i]["image"][0])) for i in range(3)] == [True] * 3
    assert all(torch.equal(frames[1, i], torch.as_tensor(obs[2]["image"][1])) for i in range(3))


# ------------------------------------------------------------------------------------------- losses
def test_losses_ignore_everything_after_an_episode_boundary():
    agent = make_agent(horizon=3)
    batch = random_batch(agent)
    batch["is_first"][0, 2] = True  # sequence 0: a new episode starts at step 2

    def losses(b):
        data = agent._tensors(b)
        torch.manual_seed(1)  # the policy noise inside the TD target
        out, _, mask, _ = tdmpc.told_losses(agent.model, agent.target, **data, config=agent.config)
        return {k: v.item() for k, v in out.items()}, mask

    reference, mask = losses(batch)
    assert mask[:, 0].tolist() == [1.0, 1.0, 0.0, 0.0] and mask[:, 1].tolist() == [1.0] * 4
    after = copy.deepcopy(batch)
    for key in ("state", "reward", "action"):
        after[key][0, 2:] += 7.0
    assert losses(after)[0] == reference
    before = copy.deepcopy(batch)
    before["reward"][0, 1] += 7.0  # inside the episode: the reward loss must see it
    assert losses(before)[0]["reward"] != reference["reward"]


def test_priorities_are_the_td_errors_and_importance_weights_scale_each_sample():
    torch.manual_seed(0)
    agent = make_agent(horizon=1)  # Q heads start at exactly zero: the TD target is the reward itself
    batch = random_batch(agent)
    data = agent._tensors(batch)
    losses, _, _, priority = tdmpc.told_losses(agent.model, agent.target, **data, config=agent.config)
    reward = data["reward"][1]
    assert torch.allclose(priority, 2 * reward.abs())  # |Q1 - r| + |Q2 - r|
    assert losses["value"].item() == pytest.approx((2 * reward**2).mean().item(), rel=1e-5)
    weight = torch.zeros_like(reward)
    weight[0] = 3.0  # only sample 0 counts, thrice
    weighted, *_ = tdmpc.told_losses(
        agent.model, agent.target, **{**data, "weight": weight}, config=agent.config
    )
    assert weighted["value"].item() == pytest.approx(3 * 2 * reward[0].item() ** 2 / len(reward), rel=1e-5)
    assert agent.prioritized == (0.6, 0.4)
    agent.train({**batch, "weight": np.ones(agent.batch_size, np.float32)})
    assert agent.priorities.shape == (agent.batch_size,) and np.all(agent.priorities >= 0)
    assert make_agent(per=False).prioritized is None


def test_terminal_everywhere_equals_zero_discount():
    agent = make_agent()
    batch = random_batch(agent)
    for layer in (agent.target.q1[-1], agent.target.q2[-1]):  # a target Q that is not zero
        torch.nn.init.normal_(layer.weight)

    def value_loss(b, discount):
        torch.manual_seed(1)
        out, _, _, _ = tdmpc.told_losses(
            agent.model, agent.target, **agent._tensors(b), config={**agent.config, "discount": discount}
        )
        return out["value"].item()

    terminal = copy.deepcopy(batch)
    terminal["is_terminal"][:, 1:] = True
    assert value_loss(terminal, 0.99) == pytest.approx(value_loss(batch, 0.0))
    assert value_loss(batch, 0.99) != pytest.approx(value_loss(batch, 0.0))


@pytest.mark.parametrize("suite", ["gym", "dmc"])
def test_model_fits_a_fixed_batch(suite):
    torch.manual_seed(0)
    agent = make_agent(suite, batch_size=16, mlp_dim=64, lr=3e-3)
    batch = random_batch(agent)
    first = agent.train(batch)
    for _ in range(100):
        last = agent.train(batch)
    assert last["loss/reward"] < 0.5 * first["loss/reward"], (first, last)
    assert all(np.isfinite(v) for v in last.values())


def test_metrics_report_raw_losses_and_balancer_weights():
    weights = {"consistency": 3.0, "reward": 0.25, "value": 1.5}
    agent = make_agent(balancer={**smoke_config()["balancer"], "weights": weights})
    metrics = agent.train(random_batch(agent))
    assert {f"weight/{g}": w for g, w in weights.items()}.items() <= metrics.items()
    expected_total = sum(weights[g] * metrics[f"loss/{g}"] for g in tdmpc.GROUPS)
    assert metrics["loss/total"] == pytest.approx(expected_total, rel=1e-5)
    assert {"loss/pi", "grad_norm"} <= set(metrics)


@pytest.mark.parametrize("name", ["harmony", "uncertainty", "dwa", "nashmtl"])
def test_every_balancer_trains_tdmpc_on_its_three_groups(name):
    torch.manual_seed(0)
    config = agents.default_config(f"tdmpc+{name}", "smoke", "gym")["agent"]
    agent = agents.make(f"tdmpc+{name}", OBS_SPACE, ACT_SPACE, config, torch.device("cpu"))
    initial = [p.detach().clone() for p in agent.balancer.parameters()]
    for seed in range(3):
        metrics = agent.train(random_batch(agent, seed))
    assert all(np.isfinite(metrics[f"{kind}/{g}"]) for kind in ("loss", "weight") for g in tdmpc.GROUPS)
    # learnable balancer parameters (harmony's s, UW's log variance) are trained by the model optimizer
    for before, after in zip(initial, agent.balancer.parameters()):
        assert not torch.equal(before, after)


# ------------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("suite", ["gym", "dmc"])
def test_checkpoint_round_trip_reproduces_the_next_update_bit_for_bit(suite):
    torch.manual_seed(0)
    agent = make_agent(suite)
    batches = [random_batch(agent, seed) for seed in range(4)]
    for batch in batches[:3]:
        agent.train(batch)
    agent.policy(first_obs(batches[0]), None, "train")
    saved = copy.deepcopy(agent.state_dict())
    rng = torch.get_rng_state()
    expected = agent.train(batches[3])
    expected_action, _ = agent.policy(first_obs(batches[3]), None, "train")

    torch.manual_seed(123)
    fresh = make_agent(suite)
    fresh.load_state_dict(saved)
    torch.set_rng_state(rng)
    assert fresh.train(batches[3]) == expected
    action, _ = fresh.policy(first_obs(batches[3]), None, "train")
    assert np.array_equal(action, expected_action)
    for a, b in zip(agent.state_dict()["model"].values(), fresh.state_dict()["model"].values()):
        assert torch.equal(a, b)
