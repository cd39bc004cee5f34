"""DreamerPro: Sinkhorn, augmented views, EMA target, prototypes, losses, and the agent end to end."""

import copy

import pytest
import torch
from torch import nn

from agents import prototypes

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
