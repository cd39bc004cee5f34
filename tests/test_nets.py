"""Building blocks of the Dreamer backbones: symlog, two-hot, action distributions, network shapes."""

from __future__ import annotations

import math

import pytest
import torch

from agents.nets import (
    ConvDecoder,
    ConvEncoder,
    Normal,
    OneHot,
    TanhNormal,
    TruncNormal,
    TwoHot,
    symexp,
    symlog,
    unimix_logits,
)

torch.set_num_threads(1)


def test_symlog_symexp_are_inverse_and_compress():
    x = torch.tensor([-1e6, -123.4, -1.0, -1e-3, 0.0, 1e-3, 0.5, 1.0, 42.0, 1e6], dtype=torch.float64)
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-12, atol=1e-12)
    assert torch.allclose(symlog(symexp(x.clamp(-50, 50))), x.clamp(-50, 50), rtol=1e-12)
    assert symlog(torch.tensor(math.e - 1)).item() == pytest.approx(1.0)
    assert symlog(torch.tensor(-(math.e - 1))).item() == pytest.approx(-1.0)


def test_twohot_round_trip_puts_mass_on_two_neighbouring_bins():
    twohot = TwoHot(255)
    x = torch.tensor([-3000.0, -7.3, -1.0, 0.0, 0.37, 1.0, 12.5, 999.0])
    weights = twohot.encode(x)
    assert weights.shape == (8, 255)
    assert torch.allclose(weights.sum(-1), torch.ones(8))
    assert ((weights > 0).sum(-1) <= 2).all()
    nonzero = [torch.nonzero(w).flatten() for w in weights]
    assert all(len(i) == 1 or i[1] - i[0] == 1 for i in nonzero)  # neighbouring bins
    decoded = twohot.decode(weights.clamp_min(1e-30).log())  # logits whose softmax is the two-hot
    assert torch.allclose(decoded, x, rtol=1e-4, atol=1e-4)


def test_twohot_bins_and_loss_minimum():
    twohot = TwoHot(255)
    assert twohot.bins[0] == -20 and twohot.bins[-1] == 20 and len(twohot.bins) == 255  # DV3 configs.yaml
    target = torch.tensor([5.0])
    good = twohot.encode(target).clamp_min(1e-30).log()
    bad = twohot.encode(torch.tensor([-5.0])).clamp_min(1e-30).log()
    assert twohot.loss(good, target).item() < twohot.loss(bad, target).item()


def test_unimix_mixes_one_percent_uniform():
    logits = torch.tensor([[100.0, 0.0, 0.0, 0.0]])
    probs = unimix_logits(logits, 0.01).exp()
    assert probs[0, 1].item() == pytest.approx(0.01 / 4, rel=1e-4)
    assert probs[0, 0].item() == pytest.approx(0.99 + 0.01 / 4, rel=1e-4)


def test_trunc_normal_stays_in_bounds_and_matches_moments():
    torch.manual_seed(0)
    mean, std = torch.full((20000, 1), 0.9), torch.full((20000, 1), 0.5)
    dist = TruncNormal(mean, std)
    x = dist.rsample()
    assert x.min() > -1 and x.max() < 1
    # mass is truncated above 1, so the sample mean lies below 0.9
    assert x.mean().item() < 0.8
    # log_prob integrates to one over [-1, 1]
    grid = torch.linspace(-1, 1, 4001)[:, None]
    density = TruncNormal(torch.full_like(grid, 0.9), torch.full_like(grid, 0.5)).log_prob(grid).exp()
    assert torch.trapezoid(density, grid[:, 0]).item() == pytest.approx(1.0, abs=1e-3)
    # entropy equals -E[log p] (Monte Carlo)
    assert dist.entropy().mean().item() == pytest.approx(-dist.log_prob(x).mean().item(), abs=0.02)


def test_normal_and_onehot_reparameterise():
    mean = torch.zeros(3, 2, requires_grad=True)
    Normal(mean, torch.ones(3, 2)).rsample().sum().backward()
    assert torch.equal(mean.grad, torch.ones(3, 2))
    logits = torch.zeros(5, 4, requires_grad=True)
    sample = OneHot(logits, 0.0).rsample()
    assert torch.equal(sample.detach().sum(-1), torch.ones(5)) and set(sample.detach().unique().tolist()) <= {
        0,
        1,
    }
    (sample * torch.arange(4.0)).sum().backward()
    assert logits.grad.abs().sum() > 0  # straight-through gradient


@pytest.mark.parametrize("style,size", [("dv2", 64), ("dv3", 64), ("dv3", 32)])
def test_conv_encoder_decoder_shapes(style, size):
    enc = ConvEncoder(3, size, 4, "elu", style)
    x = torch.zeros(2, 3, size, size)
    emb = enc(x)
    assert emb.shape == (2, enc.out_dim)
    dec = ConvDecoder(10, 3, size, 4, "elu", style)
    assert dec(torch.zeros(2, 10)).shape == (2, 3, size, size)


def test_dv2_decoder_first_layer_as_a_matrix_product_equals_the_transposed_conv():
    torch.manual_seed(0)
    dec = ConvDecoder(10, 3, 64, 4, "elu", "dv2")
    feat = torch.randn(6, 10)
    ours = dec(feat)
    ours.square().sum().backward()
    ours_grads = [p.grad.clone() for p in dec.parameters()]
    dec.zero_grad()
    reference = dec.net(dec.linear(feat).reshape(6, -1, 1, 1))  # torch's transposed conv on the 1x1 map
    reference.square().sum().backward()
    assert torch.allclose(ours, reference, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(ours_grads, [p.grad for p in dec.parameters()], strict=True):
        assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-6)


def _torch_tanh_normal(mean: torch.Tensor, std: torch.Tensor) -> torch.distributions.Distribution:
    normal = torch.distributions.Normal(mean, std)
    squashed = torch.distributions.TransformedDistribution(normal, [torch.distributions.TanhTransform()])
    return torch.distributions.Independent(squashed, 1)


def test_tanh_normal_log_prob_matches_torch_and_samples_stay_inside():
    torch.manual_seed(0)
    out_mean, out_std = 8 * torch.randn(64, 3), torch.randn(64, 3)
    mean, std = 5 * torch.tanh(out_mean / 5), torch.nn.functional.softplus(out_std) + 0.1  # PRO DistLayer
    ours, reference = TanhNormal(mean, std), _torch_tanh_normal(mean, std)
    y = reference.sample().clamp(-0.999, 0.999)  # away from where float32 atanh loses the digits
    assert torch.allclose(ours.log_prob(y), reference.log_prob(y), rtol=1e-4, atol=1e-4)
    moderate = TanhNormal(torch.full((20000, 2), 1.5), torch.full((20000, 2), 1.0))
    sample = moderate.rsample()
    assert sample.abs().max() < 1
    assert sample.mean().item() == pytest.approx(0.741, abs=0.01)  # E tanh(N(1.5, 1)) = 0.7408
    edge = TanhNormal(torch.zeros(1, 2), torch.ones(1, 2)).log_prob(torch.tensor([[1.0, -1.0]]))
    assert torch.isfinite(edge).all()  # PRO TanhBijector clips inside (-1, 1) before atanh


def test_tanh_normal_reparameterises_and_estimates_entropy_and_mode_from_samples():
    mean = torch.zeros(3, 2, requires_grad=True)
    TanhNormal(mean, torch.ones(3, 2)).rsample().sum().backward()
    assert (mean.grad > 0).all()  # d tanh(mean + std * eps) / d mean > 0
    torch.manual_seed(1)
    mean, std = torch.full((4000, 2), 0.8), torch.full((4000, 2), 0.6)
    dist = TanhNormal(mean, std)
    assert dist.samples == 100  # PRO SampleDist(samples=100)
    exact = -_torch_tanh_normal(mean[:1], std[:1]).log_prob(_torch_tanh_normal(mean, std).sample()).mean()
    entropy = dist.entropy()
    assert entropy.shape == (4000,) and entropy.mean().item() == pytest.approx(exact.item(), abs=0.01)
    assert entropy.std().item() > 0.01  # a 100-sample estimate per element, not the exact value
    mode = dist.mode()
    assert mode.shape == (4000, 2) and mode.abs().max() < 1
    # the most likely of 100 draws lies near the density's peak, above nearly every fresh draw's density
    assert (dist.log_prob(mode) > dist.log_prob(dist.rsample())).float().mean() > 0.9
