"""Building blocks shared by the Dreamer backbones: symlog, two-hot, MLPs, CNN encoder/decoder, action dists.

DreamerV2 (DV2 = danijar/dreamerv2 common/nets.py) uses ELU without normalisation and valid-padded convs;
DreamerV3 (DV3 = danijar/dreamerv3 @8fa35f8 nets.py) uses SiLU + LayerNorm and same-padded strided convs
down to a 4x4 resolution ("minres 4").
"""

from __future__ import annotations

import math

import torch
from torch import nn


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHot(nn.Module):
    """Two-hot categorical over bins in symlog space (DV3 configs.yaml: 255 bins, linspace(-20, 20))."""

    def __init__(self, bins: int = 255, low: float = -20.0, high: float = 20.0):
        super().__init__()
        self.register_buffer("bins", torch.linspace(low, high, bins), persistent=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(...,) values -> (..., bins) two-hot weights of symlog(x) on the bins."""
        y = symlog(x).clamp(self.bins[0], self.bins[-1])
        above = torch.bucketize(y, self.bins).clamp(1, len(self.bins) - 1)
        below = above - 1
        lo, hi = self.bins[below], self.bins[above]
        w_hi = (y - lo) / (hi - lo)
        out = torch.zeros(*y.shape, len(self.bins), device=y.device, dtype=y.dtype)
        out.scatter_(-1, below.unsqueeze(-1), (1 - w_hi).unsqueeze(-1))
        out.scatter_add_(-1, above.unsqueeze(-1), w_hi.unsqueeze(-1))
        return out

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Expected value: symexp of the probability-weighted bin (DV3 DiscDist.mean)."""
        return symexp((logits.float().softmax(-1) * self.bins).sum(-1))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the two-hot target, per element (negative log-likelihood)."""
        return -(self.encode(target.float()) * logits.float().log_softmax(-1)).sum(-1)


def activation(name: str) -> nn.Module:
    return {"elu": nn.ELU, "silu": nn.SiLU, "relu": nn.ReLU}[name]()


def mlp(
    inp: int, out: int, units: int, layers: int, act: str, norm: bool, outscale: float = 1.0
) -> nn.Sequential:
    """``layers`` hidden Linear(+LayerNorm)+act blocks, then a linear output (zero-init when outscale is 0).
    ``out=0`` leaves the head off (an encoder's output is its last hidden layer)."""
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(inp, units, bias=not norm)]
        mods += [nn.LayerNorm(units, eps=1e-3)] if norm else []  # DV3 nets.py Norm: eps 1e-3
        mods += [activation(act)]
        inp = units
    if out == 0:
        return nn.Sequential(*mods)
    head = nn.Linear(inp, out)
    if outscale == 0.0:  # DV3 configs.yaml: reward/critic outscale 0 -> predict 0 at init
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        head.keep_init = True  # init_weights_ leaves it at zero
    return nn.Sequential(*mods, head)


INITS = ("xavier", "glorot", "fan_avg", "torch")
_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


def init_block_(weight: torch.Tensor, style: str, fan_in: int, fan_out: int) -> None:
    """Initialise ``weight`` in place with explicit fans, so one block of a reference layer that we split
    (e.g. the RSSM's input Linear over [stoch, action]) gets the distribution of the whole layer.

    ``xavier``: uniform, bound sqrt(6 / (fan_in + fan_out)) (HD wmlib-torch core/torch_utils.py Module.get:
    xavier_uniform_, "to match tensorflow initialization"; DV2's Keras glorot_uniform). ``glorot``: the same
    distribution; the Dreamer backbones then also give it to the GRU, as Keras does (DV2's TF code, DreamerPro).
    ``fan_avg``: normal truncated at 2 std, std = sqrt(1 / fan_avg) / 0.8796 (DV3 @8fa35f8 jaxutils
    Initializer dist normal, fan avg; NM512 tools.weight_init)."""
    with torch.no_grad():
        if style in ("xavier", "glorot"):
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            weight.uniform_(-bound, bound)
        elif style == "fan_avg":
            std = math.sqrt(2.0 / (fan_in + fan_out)) / _TRUNC_STD
            nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)
        else:
            raise ValueError(f"init={style!r} is invalid; valid: {', '.join(INITS)}")


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear (out, in) or conv (out, in, k, k) weight. For a transposed conv
    (in, out, k, k) the two swap, which neither init style distinguishes (both use fan_in + fan_out)."""
    receptive = int(math.prod(weight.shape[2:]))
    return int(weight.shape[1]) * receptive, int(weight.shape[0]) * receptive


def init_weights_(root: nn.Module, style: str, skip: tuple[nn.Module, ...] = ()) -> None:
    """Every Linear/Conv weight under ``root`` by ``style`` and every bias to zero (as both references do);
    LayerNorms keep ones/zeros. ``torch`` keeps PyTorch's defaults. Modules marked ``keep_init`` (zero
    output heads) and those in ``skip`` are left alone."""
    if style == "torch":
        return
    for module in root.modules():
        if not isinstance(module, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            continue
        if getattr(module, "keep_init", False) or any(module is other for other in skip):
            continue
        init_block_(module.weight, style, *fans(module.weight))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def conv_layout(x: torch.Tensor) -> torch.Tensor:
    """NCHW ``x`` stored channels-last on a CPU: oneDNN's convolutions and the channel LayerNorm run on that
    layout without reordering. Measured (small preset, 64x64 pixels, one thread, process CPU time per update,
    alternating layouts in one process): DreamerPro 1.25x, HarmonyDream 1.08x, DreamerV3 1.04x faster. On
    CUDA the layout stays torch's default (not measured there). Outputs agree to float rounding (~1e-6)."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


class ChannelNorm(nn.Module):
    """LayerNorm over channels of an NCHW map (DV3 normalises the last axis of NHWC)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvEncoder(nn.Module):
    """Image (N, C, 64, 64) in [-0.5, 0.5] -> flat embedding.

    ``style="dv2"``: 4 valid convs, kernel 4, stride 2 (64->31->14->6->2), ELU (DV2 configs.yaml cnn_kernels).
    ``style="dv3"``: same-padded stride-2 convs + LayerNorm until 4x4 (DV3 ImageEncoderSimple, minres 4).
    """

    def __init__(self, channels: int, size: int, depth: int, act: str, style: str):
        super().__init__()
        mods: list[nn.Module] = []
        inp, res, mult = channels, size, 1
        while (style == "dv2" and mult <= 8) or (style == "dv3" and res > 4):
            out = depth * mult
            if style == "dv2":
                mods += [nn.Conv2d(inp, out, 4, 2), activation(act)]
                res = (res - 4) // 2 + 1
            else:
                mods += [nn.Conv2d(inp, out, 4, 2, 1, bias=False), ChannelNorm(out), activation(act)]
                res //= 2
            inp, mult = out, mult * 2
        self.net = nn.Sequential(*mods, nn.Flatten())
        self.out_dim = inp * res * res

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(conv_layout(x))


class ConvDecoder(nn.Module):
    """Latent feature -> image mean (N, C, size, size), same space as the encoder input.

    ``dv2``: Linear to 32*depth at 1x1, transposed convs kernels 5,5,6,6 stride 2 (1->5->13->30->64).
    ``dv3``: Linear to 4x4x(8*depth), same-padded stride-2 transposed convs + LayerNorm up to the size.
    """

    def __init__(self, feat: int, channels: int, size: int, depth: int, act: str, style: str):
        super().__init__()
        self.style = style
        if style == "dv2":
            self.start = (32 * depth, 1)
            kernels, chans = (5, 5, 6, 6), (4 * depth, 2 * depth, depth, channels)
        else:
            stages = int(math.log2(size // 4))
            self.start = (depth * 2 ** (stages - 1), 4)
            chans = tuple(depth * 2 ** (stages - 2 - i) for i in range(stages - 1)) + (channels,)
            kernels = (4,) * stages
        self.linear = nn.Linear(feat, self.start[0] * self.start[1] ** 2)
        mods: list[nn.Module] = []
        inp = self.start[0]
        for i, (k, out) in enumerate(zip(kernels, chans)):
            last = i == len(chans) - 1
            if style == "dv2":
                mods += [nn.ConvTranspose2d(inp, out, k, 2)]
            else:
                mods += [nn.ConvTranspose2d(inp, out, k, 2, 1, bias=last)]
                mods += [] if last else [ChannelNorm(out)]
            mods += [] if last else [activation(act)]
            inp = out
        self.net = nn.Sequential(*mods)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        x = self.linear(feat)
        if self.start[1] == 1:  # dv2: the first transposed conv sees a 1x1 map
            x = transposed_conv_of_point(x.reshape(-1, self.start[0]), self.net[0])
            return self.net[1:](conv_layout(x))
        return self.net(conv_layout(x.reshape(-1, self.start[0], self.start[1], self.start[1])))


def transposed_conv_of_point(x: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """``conv`` applied to ``x`` (N, C) seen as a 1x1 map, as one matrix product: each input pixel adds its
    kernel scaled by its value, so out[n, o, i, j] = sum_c x[n, c] W[c, o, i, j] + b[o], exactly. Measured
    on a CPU (one thread, forward and backward, alternating in one process): the small preset's DV2 decoder
    601 -> 397 ms, the paper's 3.58 -> 2.28 s; a small-preset HarmonyDream pixel update 1.2x faster."""
    channels, out, height, width = conv.weight.shape
    y = (x @ conv.weight.reshape(channels, out * height * width)).reshape(-1, out, height, width)
    return y if conv.bias is None else y + conv.bias.view(1, out, 1, 1)


def one_hot(idx: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One-hot of ``idx`` shaped and typed like ``like`` (F.one_hot checks index bounds: a device sync)."""
    return torch.zeros_like(like).scatter_(-1, idx.unsqueeze(-1), 1.0)


def onehot_st(probs: torch.Tensor) -> torch.Tensor:
    """Straight-through one-hot sample of categorical ``probs`` (..., K) using torch's global RNG.

    Gumbel-max rather than torch.multinomial: the same distribution, no validity check (a device sync),
    and a NaN propagates into the losses, where the harness names it, instead of raising in the sampler."""
    gumbel = -torch.log(-torch.log(torch.rand_like(probs, dtype=torch.float32).clamp_(1e-20, 1.0)))
    idx = (probs.detach().float().log() + gumbel).argmax(-1)
    hard = one_hot(idx, probs)
    return hard + probs - probs.detach()


def unimix_logits(logits: torch.Tensor, unimix: float) -> torch.Tensor:
    """Log-probs of (1 - unimix) * softmax + unimix uniform (DV3 configs.yaml: unimix 0.01)."""
    logp = logits.float().log_softmax(-1)
    if unimix <= 0:
        return logp
    probs = (1 - unimix) * logp.exp() + unimix / logits.shape[-1]
    return probs.log()


_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI_E = 0.5 * math.log(2 * math.pi * math.e)


class TruncNormal:
    """Normal truncated to [-1, 1], reparameterised by the inverse CDF (DV2 dists.TruncNormalDist).

    Samples are clipped 1e-6 inside the bounds with a straight-through gradient, as DV2 does.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, low: float = -1.0, high: float = 1.0):
        self.mean, self.std = mean, std
        self.alpha, self.beta = (low - mean) / std, (high - mean) / std
        self.cdf_a, self.cdf_b = _ndtr(self.alpha), _ndtr(self.beta)
        self.z = (self.cdf_b - self.cdf_a).clamp_min(1e-6)
        self.low, self.high = low, high

    def rsample(self) -> torch.Tensor:
        u = torch.rand_like(self.mean)
        p = (self.cdf_a + u * self.z).clamp(1e-6, 1 - 1e-6)
        x = self.mean + self.std * torch.special.ndtri(p)
        clipped = x.clamp(self.low + 1e-6, self.high - 1e-6)
        return x + (clipped - x).detach()

    def mode(self) -> torch.Tensor:
        return self.mean.clamp(self.low, self.high)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        xi = (x - self.mean) / self.std
        return (-0.5 * xi**2 - torch.log(self.std * self.z) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> torch.Tensor:
        phi_a = torch.exp(-0.5 * self.alpha**2) / math.sqrt(2 * math.pi)
        phi_b = torch.exp(-0.5 * self.beta**2) / math.sqrt(2 * math.pi)
        ent = (
            _LOG_SQRT_2PI_E
            + torch.log(self.std * self.z)
            + (self.alpha * phi_a - self.beta * phi_b) / (2 * self.z)
        )
        return ent.sum(-1)


def _ndtr(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / _SQRT2))


class Normal:
    """Diagonal Gaussian over the action vector (DV3 actor_dist_cont: normal, mean tanh, bounded std)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.mean, self.std = mean, std

    def rsample(self) -> torch.Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return (-0.5 * ((x - self.mean) / self.std) ** 2 - self.std.log() - 0.5 * math.log(2 * math.pi)).sum(
            -1
        )

    def entropy(self) -> torch.Tensor:
        return (_LOG_SQRT_2PI_E + self.std.log()).sum(-1)


SAMPLE_DIST_SAMPLES = 100  # PRO/DV2 dists.py SampleDist(samples=100)
_TANH_CLIP = 0.99999997  # PRO dists.py TanhBijector._inverse (0.99999994 in float32)
_LOG2 = math.log(2.0)


class TanhNormal:
    """A Normal(mean, std) pushed through tanh, over the action vector (PRO = fdeng18/dreamer-pro, DV2:
    nets.py DistLayer tanh_normal, dists.py TanhBijector and SampleDist). The caller squashes the parameters
    as PRO does (mean = 5 tanh(out / 5), std = softplus(out) + min_std).

    ``log_prob`` inverts with atanh after clipping inside (-1, 1) and subtracts tanh's log-Jacobian
    2 (log 2 - x - softplus(-2x)). Mode and entropy have no closed form, so (SampleDist) they come from
    ``samples`` reparameterised draws scored by ``log_prob``: entropy = -mean log-prob (its gradient flows
    through the draws), mode = the draw with the highest log-prob, chosen per batch element (PRO gathers the
    argmax of batch element 0 for every element; they agree for its single acting environment)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, samples: int = SAMPLE_DIST_SAMPLES):
        self.mean, self.std, self.samples = mean, std, samples

    def _rsample(self, count: int | None = None) -> torch.Tensor:
        shape = self.mean.shape if count is None else (count, *self.mean.shape)
        noise = torch.randn(shape, device=self.mean.device, dtype=self.mean.dtype)
        return torch.tanh(self.mean + self.std * noise)

    def rsample(self) -> torch.Tensor:
        return self._rsample()

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        x = torch.atanh(torch.where(y.abs() <= 1, y.clamp(-_TANH_CLIP, _TANH_CLIP), y))
        normal = -0.5 * ((x - self.mean) / self.std) ** 2 - self.std.log() - 0.5 * math.log(2 * math.pi)
        log_det = 2.0 * (_LOG2 - x - nn.functional.softplus(-2.0 * x))
        return (normal - log_det).sum(-1)

    def mode(self) -> torch.Tensor:
        draws = self._rsample(self.samples)
        best = self.log_prob(draws).argmax(0)
        return draws.gather(0, best[None, ..., None].expand(1, *draws.shape[1:]))[0]

    def entropy(self) -> torch.Tensor:
        return -self.log_prob(self._rsample(self.samples)).mean(0)


class OneHot:
    """Categorical over discrete actions with straight-through one-hot samples."""

    def __init__(self, logits: torch.Tensor, unimix: float):
        self.logp = unimix_logits(logits, unimix)
        self.probs = self.logp.exp()

    def rsample(self) -> torch.Tensor:
        return onehot_st(self.probs)

    def mode(self) -> torch.Tensor:
        return one_hot(self.probs.argmax(-1), self.probs)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.logp).sum(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logp).sum(-1)
