"""Correctness of the Dreamer loss pieces: lambda-returns, KL balancing, free bits, return normalisation."""

from __future__ import annotations

import pytest
import torch

from agents.dreamer import ReturnNorm, lambda_return
from agents.rssm import RSSM, dv2_kl_loss, dv3_kl_loss, kl_terms

torch.set_num_threads(1)


def test_lambda_return_matches_hand_computation():
    reward = torch.tensor([[1.0], [2.0]])  # rewards entering states 1 and 2
    value = torch.tensor([[0.5], [1.0], [3.0]])  # values of states 0, 1, 2
    disc = torch.tensor([[0.9], [0.5]])
    # ret_1 = 2 + 0.5 * (0.5 * 3 + 0.5 * 3) = 3.5 ; ret_0 = 1 + 0.9 * (0.5 * 1 + 0.5 * 3.5) = 3.025
    ret = lambda_return(reward, value, disc, lam=0.5)
    assert ret[:, 0].tolist() == pytest.approx([3.025, 3.5])
    # lam = 1: discounted Monte Carlo with bootstrap; lam = 0: one-step TD targets
    assert lambda_return(reward, value, disc, 1.0)[:, 0].tolist() == pytest.approx(
        [1 + 0.9 * (2 + 0.5 * 3), 2 + 1.5]
    )
    assert lambda_return(reward, value, disc, 0.0)[:, 0].tolist() == pytest.approx([1 + 0.9 * 1, 2 + 0.5 * 3])


def _logits(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).log_softmax(-1).requires_grad_(True)


def test_kl_dyn_trains_only_the_prior_and_rep_only_the_posterior():
    post, prior = _logits((6, 4, 5), 0), _logits((6, 4, 5), 1)
    dyn, rep = kl_terms(post, prior)
    assert torch.allclose(dyn, rep)  # same value, different gradient paths
    (g_post, g_prior) = torch.autograd.grad(
        dyn.sum(), [post, prior], allow_unused=True, materialize_grads=True
    )
    assert g_post.abs().sum() == 0 and g_prior.abs().sum() > 0
    (g_post, g_prior) = torch.autograd.grad(
        rep.sum(), [post, prior], allow_unused=True, materialize_grads=True
    )
    assert g_post.abs().sum() > 0 and g_prior.abs().sum() == 0


def test_kl_terms_through_the_rssm_reach_the_right_heads():
    torch.manual_seed(0)
    cfg = {
        "deter": 8,
        "hidden": 8,
        "stoch": 3,
        "classes": 4,
        "unimix": 0.01,
        "action_clip": 1.0,
        "norm": True,
        "gru_norm": True,
        "gru_bias": False,
        "act": "silu",
        "initial": "learned",
    }
    rssm = RSSM(embed=5, actions=2, cfg=cfg)
    # One step: later steps legitimately pass dyn gradients to earlier posteriors through the GRU.
    post, prior = rssm.observe(torch.randn(2, 1, 5), torch.randn(2, 1, 2), torch.ones(2, 1))
    dyn, rep = kl_terms(post["logits"], prior["logits"])
    prior_head = list(rssm.img_out.parameters())
    post_head = [rssm.obs_out.weight]
    grads = torch.autograd.grad(
        dyn.mean(), prior_head + post_head, allow_unused=True, materialize_grads=True, retain_graph=True
    )
    assert all(g.abs().sum() > 0 for g in grads[:-1]) and grads[-1].abs().sum() == 0
    grads = torch.autograd.grad(rep.mean(), prior_head + post_head, allow_unused=True, materialize_grads=True)
    assert all(g.abs().sum() == 0 for g in grads[:-1]) and grads[-1].abs().sum() > 0


def test_dv2_balance_weights_prior_side_by_0_8():
    post, prior = _logits((3, 4, 5), 2), _logits((3, 4, 5), 3)
    dyn, rep = kl_terms(post, prior)
    loss = dv2_kl_loss(dyn, rep, balance=0.8, free=0.0, free_avg=True)
    g_post, g_prior = torch.autograd.grad(loss, [post, prior], retain_graph=True)
    ref_post, _ = torch.autograd.grad(
        rep.mean(), [post, prior], allow_unused=True, materialize_grads=True, retain_graph=True
    )
    _, ref_prior = torch.autograd.grad(dyn.mean(), [post, prior], allow_unused=True, materialize_grads=True)
    assert torch.allclose(g_prior, 0.8 * ref_prior) and torch.allclose(g_post, 0.2 * ref_post)


def test_dv3_free_bits_clip_each_element_below_one_nat():
    dyn = torch.tensor([0.2, 0.5, 3.0], requires_grad=True)
    rep = torch.tensor([2.0, 0.1, 0.4], requires_grad=True)
    group, d, r = dv3_kl_loss(dyn, rep, dyn_scale=0.5, rep_scale=0.1, free=1.0)
    assert d.item() == pytest.approx((1 + 1 + 3) / 3) and r.item() == pytest.approx((2 + 1 + 1) / 3)
    assert group.item() == pytest.approx((0.5 * d.item() + 0.1 * r.item()) / 0.6)
    group.backward()
    assert dyn.grad.tolist() == pytest.approx([0, 0, 0.5 / 0.6 / 3])  # clipped elements get no gradient
    assert rep.grad.tolist() == pytest.approx([0.1 / 0.6 / 3, 0, 0])


def test_dv2_free_nats_clip_the_mean_when_free_avg():
    dyn = torch.tensor([0.2, 1.5], requires_grad=True)  # mean 0.85 < 1: clipped as a whole
    loss = dv2_kl_loss(dyn, dyn.detach().clone().requires_grad_(True), balance=0.8, free=1.0, free_avg=True)
    assert loss.item() == pytest.approx(1.0)
    loss.backward()
    assert dyn.grad.abs().sum() == 0
    dyn2 = torch.tensor([0.2, 2.5], requires_grad=True)  # mean 1.35: element 0 still trains (free_avg)
    dv2_kl_loss(dyn2, dyn2.detach(), balance=0.8, free=1.0, free_avg=True).backward()
    assert dyn2.grad.tolist() == pytest.approx([0.4, 0.4])
    dyn3 = torch.tensor([0.2, 2.5], requires_grad=True)  # per element (free_avg off): element 0 clipped
    dv2_kl_loss(dyn3, dyn3.detach(), balance=0.8, free=1.0, free_avg=False).backward()
    assert dyn3.grad.tolist() == pytest.approx([0.0, 0.4])


def test_percentile_return_normalisation_on_a_known_sequence():
    ret = torch.arange(0.0, 1001.0)  # 5th percentile 50, 95th 950
    norm = ReturnNorm(decay=0.99, limit=1.0, low=5.0, high=95.0)
    scale = norm.update(ret)
    assert norm.low.item() == pytest.approx(0.5) and norm.high.item() == pytest.approx(9.5)
    assert scale.item() == pytest.approx(9.0)  # max(1, 9.5 - 0.5)
    scale = norm.update(ret)
    assert norm.low.item() == pytest.approx(0.5 * 0.99 + 0.5) and scale.item() == pytest.approx(
        900 * (1 - 0.99**2)
    )
    small = ReturnNorm(decay=0.0, limit=1.0, low=5.0, high=95.0)
    assert small.update(torch.linspace(0, 0.1, 11)).item() == pytest.approx(1.0)  # never scales up
    assert ReturnNorm(0.0, 1.0, 5.0, 95.0).update(ret).item() == pytest.approx(900.0)
