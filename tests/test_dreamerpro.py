"""DreamerPro: Sinkhorn, augmented views, EMA target, prototypes, losses, and the agent end to end."""

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import agents
from agents import dreamer, dreamerpro, prototypes, rssm

torch.set_num_threads(1)


def test_sinkhorn_is_doubly_stochastic_up_to_scale():
    torch.manual_seed(0)
    scores = (
        torch.nn.functional.normalize(torch.randn(50, 8), dim=-1)
        @ torch.nn.functional.normalize(torch.randn(200, 8), dim=-1).T
    )  # cosine scores (K=50 prototypes, N=200 samples)
    q = prototypes.sinkhorn(scores, eps=0.05, iters=3)
    assert torch.allclose(q.sum(0), torch.ones(200), atol=1e-5)  # one assignment per sample (last step)
    assert (q >= 0).all()
    raw = torch.softmax(scores / 0.05, 0)  # a plain softmax per sample uses prototypes very unequally
    assert (raw.sum(1) - 4).abs().max() > 3 * (q.sum(1) - 4).abs().max()
    converged = prototypes.sinkhorn(scores, eps=0.05, iters=300)  # the iteration's fixed point: rows N/K
    assert torch.allclose(converged.sum(1), torch.full((50,), 200 / 50), rtol=1e-3)
    assert torch.allclose(converged.sum(0), torch.ones(200), atol=1e-5)


def test_random_shift_moves_each_sequence_by_one_shift_of_at_most_max_delta():
    height = width = 16
    ys, xs = torch.meshgrid(torch.arange(height.__float__()), torch.arange(width.__float__()), indexing="ij")
    ramp = torch.stack([xs, ys])  # channel 0 = x coordinate, channel 1 = y coordinate
    images = ramp.expand(4, 3, 2, height, width).clone()  # (B, T, C, H, W)
    shifted = prototypes.random_shift(images, 3.0, torch.Generator().manual_seed(0))
    interior = (slice(None), slice(None), slice(None), slice(4, -4), slice(4, -4))
    delta = (images - shifted)[interior]  # bilinear keeps a ramp linear: a constant offset per sequence
    dx, dy = delta[:, :, 0], delta[:, :, 1]
    assert torch.allclose(dx, dx[:, :1, :1, :1].expand_as(dx), atol=1e-4)  # same shift across time and space
    assert torch.allclose(dy, dy[:, :1, :1, :1].expand_as(dy), atol=1e-4)
    assert dx.abs().max() <= 3.0 + 1e-5 and dy.abs().max() <= 3.0 + 1e-5
    assert dx[:, 0, 0, 0].unique().numel() == 4  # each sequence its own shift
    assert (shifted - images).abs().max() <= 3.0 + 1e-5  # nowhere more than the shift (edges replicate)


def test_random_shift_equals_a_translation_through_affine_grid():
    """The grid is built by addition for speed; it must sample exactly what PRO's affine translation does."""
    images = torch.rand(3, 2, 3, 64, 64)
    shifted = prototypes.random_shift(images, 3.0, torch.Generator().manual_seed(1))
    delta = (torch.rand(3, 1, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1) * 3.0
    delta = delta.expand(3, 2, 2).reshape(6, 2)
    theta = torch.zeros(6, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = -2 * delta / 63
    flat = images.reshape(6, 3, 64, 64)
    grid = torch.nn.functional.affine_grid(theta, [6, 3, 64, 64], align_corners=True)
    expected = torch.nn.functional.grid_sample(
        flat, grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    assert delta.abs().max() > 1.0  # a shift of pixels, not a no-op
    assert torch.equal(shifted.reshape(6, 3, 64, 64), expected)


def test_ema_moves_the_target_by_the_fraction():
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = copy.deepcopy(target)
    prototypes.ema_update(target, source, 0.05)
    for new, old, src in zip(target.parameters(), before.parameters(), source.parameters()):
        assert torch.allclose(new - old, 0.05 * (src - old), atol=1e-7)
        assert not torch.allclose(new, old)


def test_prototypes_start_unit_norm_and_freeze_for_the_set_updates():
    protos = prototypes.Prototypes(2500, 32, freeze=10_000)
    assert torch.allclose(protos.vectors.norm(dim=-1), torch.ones(2500), atol=1e-5)
    with torch.no_grad():
        protos.vectors.mul_(3.0)
    protos.normalize()
    assert torch.allclose(protos.vectors.norm(dim=-1), torch.ones(2500), atol=1e-5)
    assert protos.frozen(9_999) and not protos.frozen(10_000)


def test_proto_losses_match_a_direct_computation_and_train_the_right_inputs():
    torch.manual_seed(3)
    k, d, b, t = 20, 8, 3, 5
    protos = torch.nn.functional.normalize(torch.randn(k, d), dim=-1)
    obs = torch.randn(2 * b, t, d, requires_grad=True)
    feat = torch.randn(2 * b, t, d, requires_grad=True)
    ema = torch.nn.functional.normalize(torch.randn(2 * b, t, d), dim=-1)
    losses = prototypes.proto_losses(obs, feat, ema, protos, 0.1, 0.05, 3, warm_up=1)

    def assign(x):  # (N, D) -> (N, K) log-probs
        return torch.log_softmax(torch.nn.functional.normalize(x, dim=-1) @ protos.T / 0.1, -1)

    def targets(x):  # (N, D) -> (N, K) Sinkhorn assignments
        return prototypes.sinkhorn(protos @ x.T, 0.05, 3).T

    o1, o2 = obs[:b, 1:].reshape(-1, d), obs[b:, 1:].reshape(-1, d)
    e1, e2 = ema[:b, 1:].reshape(-1, d), ema[b:, 1:].reshape(-1, d)
    q1, q2 = targets(e1), targets(e2)
    swav = -0.5 * (q2 * assign(o1)).sum(-1).mean() - 0.5 * (q1 * assign(o2)).sum(-1).mean()
    f = torch.cat([feat[:b, 1:].reshape(-1, d), feat[b:, 1:].reshape(-1, d)])
    temp = -(torch.cat([q1, q2]) * assign(f)).sum(-1).mean()
    norm = ((obs.norm(dim=-1) - 1) ** 2).mean() + ((feat.norm(dim=-1) - 1) ** 2).mean()
    assert losses["swav"].item() == pytest.approx(swav.item(), rel=1e-5)
    assert losses["temp"].item() == pytest.approx(temp.item(), rel=1e-5)
    assert losses["norm"].item() == pytest.approx(norm.item(), rel=1e-6)
    losses["swav"].backward()
    assert feat.grad is None and obs.grad[:, 0].abs().sum() == 0  # warm-up step and RSSM untouched by swav
    assert obs.grad[:, 1:].abs().sum() > 0


def make_agent(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    config = dreamerpro.default_config("dreamerpro", "smoke", "dmc")["agent"]
    config.update(overrides)
    obs = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    return dreamerpro.make("dreamerpro", obs, gym.spaces.Box(-1, 1, (2,), np.float32), config, "cpu")


def random_batch(agent, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    b, t = agent.batch_size, agent.batch_length
    first = np.zeros((b, t), bool)
    first[:, 0] = True
    return {
        "image": rng.integers(0, 256, (b, t, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (b, t, 2)).astype(np.float32),
        "reward": rng.normal(size=(b, t)).astype(np.float32),
        "is_first": first,
        "is_last": np.zeros((b, t), bool),
        "is_terminal": np.zeros((b, t), bool),
    }


def test_smoke_update_is_finite_and_obs_is_the_sum_of_the_proto_terms():
    agent = make_agent(obs_terms={"swav": 1.0, "temp": 0.5, "norm": 2.0})
    assert not hasattr(agent.wm, "cnn_decoder")
    metrics = agent.train(random_batch(agent))
    for key in ("loss/obs", "loss/reward", "loss/dyn", "loss/swav", "loss/temp", "loss/norm"):
        assert np.isfinite(metrics[key]), key
    expected = metrics["loss/swav"] + 0.5 * metrics["loss/temp"] + 2.0 * metrics["loss/norm"]
    assert metrics["loss/obs"] == pytest.approx(expected, rel=1e-5)
    assert "loss/cont" not in metrics  # PRO dmc: no continue head
    actions, _ = agent.policy({"image": random_batch(agent)["image"][:, 0]}, None, "eval")
    assert actions.shape == (agent.batch_size, 2) and np.abs(actions).max() <= 1


def test_prototypes_stay_frozen_then_learn_and_stay_unit_norm():
    agent = make_agent(proto_freeze=2)
    batch = random_batch(agent)
    start = agent.wm.prototypes.vectors.detach().clone()
    for _ in range(2):
        assert agent.train(batch)["prototypes_frozen"] == 1.0
    assert (
        agent.wm.prototypes.vectors - start
    ).abs().max() < 1e-6  # renormalising a unit vector: rounding only
    # PRO zeroes the frozen prototypes' gradient rather than removing it: Adam counted those steps too
    assert int(agent.model_opt.state[agent.wm.prototypes.vectors]["step"]) == 2
    for _ in range(2):
        assert agent.train(batch)["prototypes_frozen"] == 0.0
    assert (agent.wm.prototypes.vectors - start).abs().max() > 1e-4
    agent.wm.prototypes.normalize()  # what the next loss does first
    assert torch.allclose(agent.wm.prototypes.vectors.norm(dim=-1), torch.ones(len(start)), atol=1e-5)


def test_ema_target_moves_by_the_fraction_after_each_update():
    agent = make_agent(ema_fraction=0.05)
    batch = random_batch(agent)
    agent.train(batch)  # the online encoder now differs from the target
    before = [p.detach().clone() for p in agent.wm.ema_encoder.parameters()]
    agent.train(batch)
    online = list(agent.wm.cnn_encoder.parameters())
    for old, new, src in zip(before, agent.wm.ema_encoder.parameters(), online):
        assert torch.allclose(new, old + 0.05 * (src.detach() - old), atol=1e-7)
    assert any(not torch.allclose(n, o) for n, o in zip(agent.wm.ema_encoder.parameters(), before))


def test_checkpoint_round_trip_reproduces_the_next_update():
    agent = make_agent(seed=0, proto_freeze=1)
    batch = random_batch(agent)
    agent.train(batch)
    saved = copy.deepcopy(agent.state_dict())
    restored = make_agent(seed=7, proto_freeze=1)
    restored.load_state_dict(saved)
    torch.manual_seed(123)
    expected = agent.train(batch)
    torch.manual_seed(123)
    got = restored.train(batch)
    assert got == expected
    torch.manual_seed(123)
    assert make_agent(seed=7, proto_freeze=1).train(batch)["loss/obs"] != expected["loss/obs"]


def test_harmony_and_reward_1000_variants():
    harmony = agents.default_config("dreamerpro+harmony", "smoke", "dmc")["agent"]
    assert harmony["balancer"]["name"] == "harmony"
    agent = make_agent(balancer=harmony["balancer"])
    batch = random_batch(agent)
    agent.train(batch)
    metrics = agent.train(batch)
    assert metrics["weight/obs"] != 1.0 and np.isfinite(metrics["loss/total"])  # sigma_obs is learning
    weighted = make_agent(balancer={**harmony["balancer"], "name": "fixed", "weights": {"reward": 1000.0}})
    metrics = weighted.train(batch)  # PRO reward_1000 preset (natural backgrounds)
    assert metrics["weight/reward"] == 1000.0 and metrics["weight/obs"] == 1.0


@pytest.mark.parametrize(
    "key, value",
    [
        ("proto_count", 0),
        ("proto_dim", 2.5),
        ("proto_temperature", 0.0),
        ("sinkhorn_eps", -1.0),
        ("sinkhorn_iters", 0),
        ("proto_freeze", -1),
        ("proto_warm_up", 99),
        ("ema_fraction", 1.5),
        ("ema_every", True),
        ("aug_max_delta", -3.0),
        ("obs_terms", {"swav": 1.0}),
        ("obs_terms", {"swav": 1.0, "temp": -1.0, "norm": 1.0}),
        ("deter", 0),
        ("latent", "continuous"),
        ("latent_min_std", 0.0),
        ("unimix", 0.01),  # with Gaussian latents (the DMC preset)
        ("actor_dist", "beta"),
        ("actor_grad_mix", 1.5),
        ("adam_eps", "keras"),
        ("balancer", {"name": "bogus"}),
    ],
)
def test_bad_config_value_is_a_one_line_value_error(key, value):
    config = dreamerpro.default_config("dreamerpro", "smoke", "dmc")["agent"]
    config[key] = value if key != "balancer" else {**config["balancer"], **value}
    with pytest.raises(ValueError) as error:
        dreamerpro.check_config("dreamerpro", config)
    assert "\n" not in str(error.value) and key in str(error.value)


def test_bad_backbone_preset_and_space_are_value_errors():
    with pytest.raises(ValueError, match="dreamerpro"):
        dreamerpro.default_config("dreamerv2", "smoke", "dmc")
    with pytest.raises(ValueError, match="preset"):
        dreamerpro.default_config("dreamerpro", "huge", "dmc")
    config = dreamerpro.default_config("dreamerpro", "smoke", "dmc")["agent"]
    state_only = gym.spaces.Dict({"state": gym.spaces.Box(-1, 1, (5,), np.float32)})
    with pytest.raises(ValueError, match="image"):
        dreamerpro.make("dreamerpro", state_only, gym.spaces.Box(-1, 1, (2,), np.float32), config, "cpu")


def _independent_normal(state):
    return torch.distributions.Independent(torch.distributions.Normal(state["mean"], state["std"]), 1)


def test_gaussian_rssm_kl_matches_torch_and_is_balanced_with_free_nats_as_dv2():
    torch.manual_seed(0)
    cfg = dreamerpro.default_config("dreamerpro", "smoke", "dmc")["agent"]
    assert cfg["latent"] == "gaussian"
    model = rssm.RSSM(embed=6, actions=2, cfg=cfg)
    assert model.feat_dim == cfg["deter"] + cfg["stoch"]  # a Gaussian sample per latent, no classes
    post, prior = model.observe(torch.randn(3, 4, 6), torch.randn(3, 4, 2), torch.zeros(3, 4))
    assert post["stoch"].shape == (3, 4, cfg["stoch"]) and "logits" not in post and "logits" not in prior
    low = cfg["latent_min_std"]
    for state in (post, prior):  # DV2 std_act sigmoid2: 2 sigmoid(x / 2) + min_std, in (0.1, 2.1)
        assert (state["std"] > low).all() and (state["std"] < 2 + low).all()
    dyn, rep = rssm.latent_kl_terms(post, prior)
    expected = torch.distributions.kl_divergence(_independent_normal(post), _independent_normal(prior))
    assert torch.allclose(dyn, expected, rtol=1e-5) and torch.allclose(rep, expected, rtol=1e-5)
    # dyn trains only the prior's head, rep only the posterior's (DV2 kl_loss with stop-gradients); one step,
    # as later steps legitimately reach earlier posteriors through the GRU
    step_post, step_prior = model.observe(torch.randn(3, 1, 6), torch.randn(3, 1, 2), torch.ones(3, 1))
    step_dyn, step_rep = rssm.latent_kl_terms(step_post, step_prior)
    heads = [model.img_out[-1].weight, model.obs_out.weight]
    dyn_grads = torch.autograd.grad(step_dyn.mean(), heads, retain_graph=True, materialize_grads=True)
    rep_grads = torch.autograd.grad(step_rep.mean(), heads, materialize_grads=True)
    assert dyn_grads[0].abs().sum() > 0 and dyn_grads[1].abs().sum() == 0
    assert rep_grads[1].abs().sum() > 0 and rep_grads[0].abs().sum() == 0
    # DV2 kl_loss (forward False, balance 0.8, free_avg): 0.2 max(mean KL(post||sg prior), free) + 0.8 ...
    kl = expected.mean().item()
    for free in (0.0, kl + 1.0):
        loss = rssm.dv2_kl_loss(dyn, rep, 0.8, free, True).item()
        assert loss == pytest.approx(max(kl, free), rel=1e-5)
    entropy = rssm.latent_entropy(post).item()
    assert entropy == pytest.approx(_independent_normal(post).entropy().mean().item(), rel=1e-5)


def test_pro_dmc_preset_uses_gaussian_latents_and_a_tanh_normal_actor_and_dreamerv2_does_not():
    for suite in ("dmc", "dmcr"):
        for preset in ("paper", "small", "smoke"):
            agent = dreamerpro.default_config("dreamerpro", preset, suite)["agent"]
            assert (agent["latent"], agent["actor_dist"], agent["actor_grad_cont"]) == (
                "gaussian",
                "tanh_normal",
                "backprop",  # PRO dmc actor_grad dynamics
            )
        paper = dreamerpro.default_config("dreamerpro", "paper", suite)["agent"]
        assert (paper["stoch"], paper["latent_min_std"], paper["actor_min_std"]) == (32, 0.1, 0.1)
        assert (paper["dv2_actor"], paper["imag_horizon"]) == ("tf", 14)  # PRO's 15 states incl. the start
        assert not paper["carry_state"]  # PRO train.py trains each batch from the initial state
        assert (paper["deter"], paper["hidden"], paper["kl_free"]) == (200, 200, 1.0)
        assert paper["actor_ent"] == 1e-4
    other = dreamerpro.default_config("dreamerpro", "paper", "metaworld")  # PRO defaults block
    agent = other["agent"]
    assert (agent["latent"], agent["stoch"], agent["classes"], agent["actor_dist"]) == (
        "discrete",
        32,
        32,
        "tanh_normal",
    )
    assert (agent["actor_grad_cont"], agent["actor_grad_mix"], agent["actor_ent"]) == ("both", 0.1, 1e-4)
    assert (agent["clip_rewards"], agent["pred_cont"], agent["kl_free"]) == ("identity", True, 0.0)
    assert set(agent["balancer"]["weights"].values()) == {1.0} and other["run"]["prefill"] == 10_000
    for name in ("dreamerv2", "harmonydream"):  # DreamerV2's own presets keep discrete latents
        for suite in ("dmc", "dmcr", "metaworld"):
            agent = agents.default_config(name, "paper", suite)["agent"]
            assert (agent["latent"], agent["actor_dist"], agent["actor_grad_cont"], agent["dv2_actor"]) == (
                "discrete",
                "trunc_normal",
                "backprop",
                "hd",
            )


def test_pro_dmc_paper_preset_shrunk_trains_one_update_with_finite_losses():
    torch.manual_seed(0)
    config = dreamerpro.default_config("dreamerpro", "paper", "dmc")["agent"]
    config.update(batch_size=2, batch_length=4, deter=16, hidden=16, units=16, layers=1, cnn_depth=4)
    config.update(imag_horizon=3, proto_count=16, proto_dim=8, proto_freeze=0)
    obs = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    agent = dreamerpro.make("dreamerpro", obs, gym.spaces.Box(-1, 1, (2,), np.float32), config, "cpu")
    assert agent.wm.rssm.gaussian and agent.wm.rssm.stoch == 32
    metrics = agent.train(random_batch(agent))
    for key in ("loss/obs", "loss/reward", "loss/dyn", "loss/actor", "loss/critic", "entropy"):
        assert np.isfinite(metrics[key]), key
    assert np.isfinite(metrics["post_entropy"]) and np.isfinite(metrics["prior_entropy"])
    assert metrics["loss/dyn"] >= 1.0  # PRO dmc kl.free 1.0 on the mean KL
    out = torch.randn(5, 4) * 10  # raw actor outputs: mean then std for 2 actions
    dist = agent.ac.dist(out)
    mean, std = out.chunk(2, -1)
    reference = torch.distributions.Independent(
        torch.distributions.TransformedDistribution(
            torch.distributions.Normal(5 * torch.tanh(mean / 5), nn.functional.softplus(std) + 0.1),
            [torch.distributions.TanhTransform()],
        ),
        1,
    )
    y = reference.sample().clamp(-0.999, 0.999)
    assert torch.allclose(dist.log_prob(y), reference.log_prob(y), rtol=1e-4, atol=1e-4)
    image = random_batch(agent)["image"][:, 0]
    for mode in ("train", "eval"):
        actions, (latent, _) = agent.policy({"image": image}, None, mode)
        assert actions.shape == (2, 2) and np.abs(actions).max() <= 1
        assert latent["stoch"].shape == (2, 32)


def test_actor_grad_both_mixes_dynamics_and_reinforce_objectives():
    agent = make_agent()
    data = agent.to_device(random_batch(agent))
    post, _, _ = agent.wm.loss(data)
    start = {k: post[k].detach().flatten(0, 1) for k in ("deter", "stoch")}
    cont = torch.ones(len(start["deter"]))

    def actor_loss(**settings):
        agent.cfg.update(settings)
        torch.manual_seed(5)  # the same imagined trajectory and entropy draws each time
        return agent.ac.losses(agent.wm, start, cont)[0].item()

    dynamics, reinforce = actor_loss(actor_grad_cont="backprop"), actor_loss(actor_grad_cont="reinforce")
    assert dynamics != pytest.approx(reinforce)
    assert actor_loss(actor_grad_cont="both", actor_grad_mix=1.0) == pytest.approx(dynamics, rel=1e-5)
    assert actor_loss(actor_grad_cont="both", actor_grad_mix=0.0) == pytest.approx(reinforce, rel=1e-5)
    mixed = actor_loss(actor_grad_cont="both", actor_grad_mix=0.1)  # PRO defaults
    assert mixed == pytest.approx(0.1 * dynamics + 0.9 * reinforce, rel=1e-4)


@pytest.mark.parametrize("grad", ["backprop", "reinforce"])
def test_actor_critic_trains_the_actor_at_z_t_towards_its_own_return_as_pro(grad):
    """PRO agent.py ActorCritic (danijar/dreamerv2's TF code): over imagined z_0..z_H, targets
    t_t = r_t + g ((1 - lam) v_t+1 + lam t_t+1) with t_H = v_H from the slow critic; the actor at z_0..z_H-1
    maximises w_t (t_t + ent H_t) (dynamics) or w_t (log pi(a_t) (t_t - critic(z_t)) + ent H_t) (reinforce);
    the critic regresses t_0..t_H-1 without the entropy bonus."""
    agent = make_agent(actor_grad_cont=grad)
    cfg, ac = agent.cfg, agent.ac
    assert cfg["dv2_actor"] == "tf"
    data = agent.to_device(random_batch(agent))
    post, _, _ = agent.wm.loss(data)
    start = {k: post[k].detach().flatten(0, 1) for k in ("deter", "stoch")}
    cont = torch.ones(len(start["deter"]))
    torch.manual_seed(5)
    feats, outs, actions = ac.imagine(agent.wm, start)
    fast, slow = ac.value(ac.critic, feats), ac.value(ac.slow_critic, feats)
    reward, gamma, lam = agent.wm.reward(feats), cfg["discount"], cfg["lambda"]
    targets = [slow[-1]]
    for t in reversed(range(len(feats) - 1)):
        targets.insert(0, reward[t] + gamma * ((1 - lam) * slow[t + 1] + lam * targets[0]))
    target = torch.stack(targets[:-1])
    weight = gamma ** torch.arange(len(target), dtype=torch.float32)[:, None]
    dist = ac.dist(outs)
    torch.manual_seed(6)
    entropy = dist.entropy()
    objective = target if grad == "backprop" else dist.log_prob(actions) * (target - fast[:-1])
    expected = -(weight * (objective + cfg["actor_ent"] * entropy)).mean()
    torch.manual_seed(6)
    actor_loss, ret, *_ = ac._actor_dv2(agent.wm, feats, outs, actions, slow, fast, cont)
    assert actor_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.allclose(ret, target, rtol=1e-5, atol=1e-6)  # no entropy bonus in the critic's targets


def test_pro_weight_decay_scales_every_weight_by_one_minus_wd_before_the_step():
    """PRO tfutils.py Optimizer: var.assign((1 - wd) * var), then Adam; DreamerV2 (HD) adds wd * w to the
    gradient instead. With a zero loss gradient Adam's own step is zero, so only the decay is left."""
    start = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    cfg = dreamerpro.default_config("dreamerpro", "paper", "dmc")["agent"]
    assert cfg["weight_decay"] == "decoupled" and cfg["model_wd"] == 1e-6
    weight = nn.Parameter(start.clone())
    opt = dreamer._adam([weight], cfg, "model")
    for _ in range(3):
        weight.grad = torch.zeros_like(weight)
        opt.step()
    assert torch.allclose(weight.detach(), start * (1 - 1e-6) ** 3, rtol=1e-13, atol=0)
    hd = agents.default_config("dreamerv2", "paper", "dmc")["agent"]
    assert hd["weight_decay"] == "l2"
    weight = nn.Parameter(start.clone())
    opt = dreamer._adam([weight], hd, "model")
    weight.grad = torch.zeros_like(weight)
    opt.step()  # the gradient is wd * w, Adam's first step lr * g / (|g| + eps)
    grad = hd["model_wd"] * start
    expected = start - hd["model_lr"] * grad / (grad.abs() + hd["model_eps"])
    assert torch.allclose(weight.detach(), expected, rtol=1e-12, atol=0)


def _tf_adam_steps(start, grads, lr, eps, wd, b1=0.9, b2=0.999):
    """PRO tfutils.py Optimizer with Keras Adam (TF 2.4 adam.py), in closed form: var *= 1 - wd, then
    var -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps) at step t."""
    weight, m, v = start.clone(), torch.zeros_like(start), torch.zeros_like(start)
    for t, grad in enumerate(grads, 1):
        weight = (1 - wd) * weight
        m, v = b1 * m + (1 - b1) * grad, b2 * v + (1 - b2) * grad.square()
        weight = weight - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (v.sqrt() + eps)
    return weight


def test_pro_adam_adds_epsilon_before_the_bias_correction_as_tf_and_resumes_its_step():
    """adam_eps tf: each step equals Keras Adam's closed form (eps matters: gradients near eps), also after a
    checkpoint round trip (the third step takes t = 3, not a restarted t = 1); torch's Adam differs."""
    cfg = dreamerpro.default_config("dreamerpro", "paper", "dmc")["agent"]
    assert cfg["adam_eps"] == "tf"
    assert agents.default_config("dreamerv2", "paper", "dmc")["agent"]["adam_eps"] == "torch"
    lr, eps, wd = cfg["model_lr"], cfg["model_eps"], cfg["model_wd"]
    start = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    grads = [torch.tensor([1e-5, -3e-4, 2e-2], dtype=torch.float64) * scale for scale in (1.0, -0.5, 2.0)]

    def stepped(config, count, state=None):
        weight = nn.Parameter(start.clone() if state is None else state["weight"].clone())
        opt = dreamer._adam([weight], config, "model")
        if state is not None:
            opt.load_state_dict(state["opt"])
        for grad in grads[len(grads) - count :] if state is not None else grads[:count]:
            weight.grad = grad.clone()
            opt.step()
        return weight.detach(), copy.deepcopy(opt.state_dict())

    one, _ = stepped(cfg, 1)
    assert torch.allclose(one, _tf_adam_steps(start, grads[:1], lr, eps, wd), rtol=1e-12, atol=0)
    two, opt_state = stepped(cfg, 2)
    resumed, _ = stepped(cfg, 1, {"weight": two, "opt": opt_state})
    assert torch.allclose(resumed, _tf_adam_steps(start, grads, lr, eps, wd), rtol=1e-12, atol=0)
    straight, _ = stepped(cfg, 3)
    assert torch.equal(resumed, straight)
    torch_eps, _ = stepped({**cfg, "adam_eps": "torch"}, 3)
    assert not torch.allclose(torch_eps, resumed, rtol=1e-6, atol=0)


def test_pro_initialises_the_gru_as_keras_does_and_dreamerv2_keeps_hd_torch_default():
    """Keras Dense: glorot_uniform weights and zero biases, the GRUCell's Dense included (PRO nets.py);
    HD builds its GRU cell outside Module.get, so it keeps torch's default (bound 1 / sqrt(fan_in))."""
    gru = make_agent().wm.rssm.cell.linear
    fan_in, fan_out = gru.in_features, gru.out_features
    glorot, torch_default = math.sqrt(6 / (fan_in + fan_out)), 1 / math.sqrt(fan_in)
    assert torch_default < 0.8 * glorot  # the two are told apart by the largest weight
    assert torch_default < gru.weight.abs().max() <= glorot and torch.equal(
        gru.bias, torch.zeros_like(gru.bias)
    )
    config = agents.default_config("dreamerv2", "smoke", "dmc")["agent"]
    obs = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)})
    hd = agents.make(
        "dreamerv2", obs, gym.spaces.Box(-1, 1, (2,), np.float32), config, "cpu"
    ).wm.rssm.cell.linear
    assert config["init"] == "xavier" and hd.weight.abs().max() <= torch_default and hd.bias.abs().max() > 0
