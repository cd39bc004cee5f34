"""DreamerPro's prototypical representation learning as pure functions and one small module.

PRO = fdeng18/dreamer-pro: DreamerPro/common/nets.py L143-221 (sinkhorn, proto_loss), common/other.py
random_translate, dreamerv2/agent.py (two augmented views, EMA target encoder, frozen prototypes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from agents.nets import conv_layout


def sinkhorn(scores: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    """Soft equipartitioned assignment of N samples to K prototypes (PRO nets.py sinkhorn).

    scores (K, N) -> Q (K, N) with every column summing to 1 (an assignment per sample) and every row to
    about N/K (prototypes used equally), computed in log space.
    """
    prototypes, samples = scores.shape
    log_q = torch.log_softmax(scores.flatten() / eps, 0).reshape(prototypes, samples)
    for _ in range(iters):
        log_q = log_q - torch.logsumexp(log_q, 1, keepdim=True) - math.log(prototypes)
        log_q = log_q - torch.logsumexp(log_q, 0, keepdim=True) - math.log(samples)
    return torch.exp(log_q + math.log(samples))


def random_shift(
    images: torch.Tensor, max_delta: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Translate each sequence by one uniform sub-pixel shift in [-max_delta, max_delta]^2, the same at every
    time step, with bilinear interpolation and edge replication (PRO other.py random_translate: bilinear,
    fill_mode nearest, same_across_time). images (B, T, C, H, W) float."""
    batch, length, channels, height, width = images.shape
    delta = (torch.rand(batch, 1, 2, generator=generator) * 2 - 1) * max_delta  # (dx, dy) in pixels
    delta = delta.expand(batch, length, 2).reshape(batch * length, 2).to(images)
    # output(x) = input(x - delta); align_corners=True maps pixel centres i to -1 + 2i/(size-1). The sampling
    # grid of a pure translation is that base grid plus one offset per image: built by addition, it equals
    # F.affine_grid's (an identity matrix times the base grid is exact) at a fifth of its CPU cost, whose
    # batched 3x2 matrix products took ~10% of a small-preset DreamerPro update
    offset_x = (-2 * delta[:, 0] / (width - 1)).view(-1, 1, 1)
    offset_y = (-2 * delta[:, 1] / (height - 1)).view(-1, 1, 1)
    xs = torch.linspace(-1, 1, width, device=images.device, dtype=images.dtype)
    ys = torch.linspace(-1, 1, height, device=images.device, dtype=images.dtype)
    grid_x, grid_y = xs.view(1, 1, width) + offset_x, ys.view(1, height, 1) + offset_y
    grid = torch.stack(torch.broadcast_tensors(grid_x, grid_y), -1)
    flat = images.reshape(batch * length, channels, height, width)
    shifted = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=True)
    # in the encoders' layout once here, not in both the online and the EMA encoder
    return conv_layout(shifted).reshape(images.shape)


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, fraction: float) -> None:
    """target <- fraction * source + (1 - fraction) * target, parameters and buffers (PRO agent.py ema_update)."""
    for dst, src in zip(target.parameters(), source.parameters()):
        dst.lerp_(src, fraction)
    for dst, src in zip(target.buffers(), source.buffers()):
        dst.copy_(src)


def _assignment_logits(proj: torch.Tensor, prototypes: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, T, D) unit projections -> (K, B, T) log-probabilities over prototypes."""
    return torch.log_softmax(torch.einsum("kd,btd->kbt", prototypes, proj) / temperature, 0)


def _targets(proj: torch.Tensor, prototypes: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    """(B, T, D) EMA projections of one view -> (K, B, T) Sinkhorn assignments, no gradient."""
    scores = torch.einsum("kd,btd->kbt", prototypes, proj)
    prototypes_count, batch, length = scores.shape
    return sinkhorn(scores.reshape(prototypes_count, -1), eps, iters).reshape(scores.shape).detach()


def proto_losses(
    obs_proj: torch.Tensor,
    feat_proj: torch.Tensor,
    ema_proj: torch.Tensor,
    prototypes: torch.Tensor,
    temperature: float,
    sinkhorn_eps: float,
    sinkhorn_iters: int,
    warm_up: int,
) -> dict[str, torch.Tensor]:
    """DreamerPro's losses (PRO nets.py proto_loss). Batches hold view 1 then view 2 along dim 0.

    obs_proj (2B, T, D) raw projections of the online embeddings, feat_proj (2B, T, D) raw projections of the
    posterior RSSM features, ema_proj (2B, T, D) unit projections of the EMA encoder, prototypes (K, D) unit.
    The first ``warm_up`` steps of each sequence are left out. Returns swav (each view predicts the other's
    Sinkhorn assignment), temp (the RSSM state predicts its own view's assignment) and norm ((|z| - 1)^2 of
    both raw projections).
    """
    obs_unit, feat_unit = F.normalize(obs_proj, dim=-1), F.normalize(feat_proj, dim=-1)
    obs_logits = _assignment_logits(obs_unit, prototypes, temperature)[:, :, warm_up:]
    feat_logits = _assignment_logits(feat_unit, prototypes, temperature)[:, :, warm_up:]
    ema_1, ema_2 = ema_proj[:, warm_up:].chunk(2, 0)
    targets_1 = _targets(ema_1, prototypes, sinkhorn_eps, sinkhorn_iters)
    targets_2 = _targets(ema_2, prototypes, sinkhorn_eps, sinkhorn_iters)
    logits_1, logits_2 = obs_logits.chunk(2, 1)
    swav = -0.5 * (targets_2 * logits_1).sum(0).mean() - 0.5 * (targets_1 * logits_2).sum(0).mean()
    temp = -(torch.cat([targets_1, targets_2], 1) * feat_logits).sum(0).mean()
    norm = ((obs_proj.norm(dim=-1) - 1) ** 2).mean() + ((feat_proj.norm(dim=-1) - 1) ** 2).mean()
    return {"swav": swav, "temp": temp, "norm": norm}


class Prototypes(nn.Module):
    """The prototype vectors (K, D), N(0, 1) init, kept unit-norm; frozen for the first ``freeze`` updates
    (PRO agent.py zeroes their gradient while updates < freeze_prototypes_iters)."""

    def __init__(self, count: int, dim: int, freeze: int):
        super().__init__()
        self.vectors = nn.Parameter(torch.randn(count, dim))
        self.freeze = freeze
        self.normalize()

    @torch.no_grad()
    def normalize(self) -> None:
        """Project back onto the unit sphere (PRO proto_loss reassigns the l2-normalised prototypes)."""
        self.vectors.copy_(F.normalize(self.vectors, dim=-1))

    def frozen(self, updates: int) -> bool:
        return updates < self.freeze
