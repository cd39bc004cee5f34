"""Our side of the DreamerV3 golden check: a tiny agent, its weights, a batch, the noise, its numbers.

Used by tests/test_golden_dreamerv3.py (compares with tests/golden/dreamerv3.json) and by
tools/golden/make_dreamerv3.py (exports these weights and this batch to the reference, NM512/dreamerv3-torch,
and records what it computes from them). The module imports only numpy and torch at the top: the reference's
environment reads its constants without our package.

Determinism, and what is made equal on both sides:

* Weights: not either side's initialiser (init is a knob we change, and the zero-initialised reward/critic
  outputs would make every value 0): ``golden_weights_`` fills each tensor from a seeded generator.
* Sampling: the latent one-hot samples take the most likely class, keeping the straight-through gradient of
  a sample that both codes have (one-hot + probs - sg(probs)); the actor's Gaussian samples use the same
  standard-normal noise (``actor_noise``), step by step. NM512 draws a prior sample in every posterior step
  that it never uses, so one shared random stream would not line up.
* No optimizer step: both sides backpropagate and stop, so imagination runs on the world model the losses saw
  (after one Adam step a parameter moves by ~lr * sign(gradient), which hinges on rounding).
* The return-normalisation EMAs start from ``EMA_START`` (not zeros): the scale is then above its clamp at 1.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

WEIGHT_SEED = 3
BATCH_SEED = 4
IMAGE_SIZE = 16
ACTIONS = 2
# The tiny agent: our smoke preset with these values (every other knob is the DreamerV3 default).
TINY = {
    "batch_size": 3,
    "batch_length": 6,
    "deter": 32,
    "hidden": 32,
    "stoch": 4,
    "classes": 4,
    "units": 32,
    "layers": 2,
    "cnn_depth": 4,
    "imag_horizon": 5,
    "imag_starts": 0,  # imagine from every posterior state, as NM512 does
    # no clipping: the recorded gradient norms are those before any clip on both sides
    "model_clip": 1e6,
    "actor_clip": 1e6,
    "critic_clip": 1e6,
}
EMA_START = (-3.0, 2.0)  # the 5th/95th return percentile EMAs before the update
MODULES = ("encoder", "rssm", "decoder", "reward", "cont", "actor", "critic")


def make_batch(seed: int = BATCH_SEED) -> dict[str, np.ndarray]:
    """A replay-shaped batch: every sequence starts with is_first; sequence 1 ends an episode at step 2
    (is_terminal) and starts the next at step 3 (is_first): the reset and the continue loss get exercised."""
    rng = np.random.default_rng(seed)
    b, t = TINY["batch_size"], TINY["batch_length"]
    is_first = np.zeros((b, t), np.float32)
    is_first[:, 0] = 1
    is_first[1, 3] = 1
    is_terminal = np.zeros((b, t), np.float32)
    is_terminal[1, 2] = 1
    return {
        "image": rng.integers(0, 256, (b, t, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (b, t, ACTIONS)).astype(np.float32),
        "reward": (3 * rng.standard_normal((b, t))).astype(np.float32),  # beyond +-1: symlog matters
        "is_first": is_first,
        "is_terminal": is_terminal,
    }


def actor_noise(seed: int = BATCH_SEED) -> np.ndarray:
    """Standard-normal noise (H + 1, N, A) for the actor's samples: imagination step h uses noise[h]. We take
    H actions; NM512 (like DV3) also samples one at the last state, which feeds nothing."""
    rng = np.random.default_rng(seed + 1000)
    starts = TINY["batch_size"] * TINY["batch_length"]
    return rng.standard_normal((TINY["imag_horizon"] + 1, starts, ACTIONS)).astype(np.float32)


def build_agent() -> Any:
    """Our tiny DreamerV3 on CPU in fp32 with the golden weights."""
    import gymnasium as gym

    from agents import dreamer

    cfg = dreamer.default_config("dreamerv3", "smoke", "")["agent"]
    cfg.update(TINY)
    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)})
    act_space = gym.spaces.Box(-1, 1, (ACTIONS,), np.float32)
    agent = dreamer.make("dreamerv3", obs_space, act_space, cfg, torch.device("cpu"))
    golden_weights_(agent.modules, WEIGHT_SEED)
    agent.ac.retnorm.low.fill_(EMA_START[0])
    agent.ac.retnorm.high.fill_(EMA_START[1])
    return agent


@torch.no_grad()
def golden_weights_(root: nn.Module, seed: int) -> None:
    """Fill every parameter from one seeded generator, module by module in definition order: Linear/conv
    weights normal with std 1/sqrt(fan in), biases N(0, 0.1^2), LayerNorm gains 1 + N(0, 0.1^2) and biases
    N(0, 0.1^2); any other parameter (the learned initial state) N(0, 0.5^2). The slow critic gets its own
    values, so the slow-critic regulariser sees a critic other than the trained one."""
    gen = torch.Generator().manual_seed(seed)

    def normal(shape: torch.Size, std: float) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * std

    for module in root.modules():
        if isinstance(module, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            weight = module.weight
            taps = math.prod(weight.shape[2:])
            fan_in = weight.shape[1] * taps
            if isinstance(module, nn.ConvTranspose2d):  # (in, out, k, k); stride 2 reaches 1/4 of the taps
                fan_in = weight.shape[0] * taps // 4
            weight.copy_(normal(weight.shape, 1 / math.sqrt(fan_in)))
            if module.bias is not None:
                module.bias.copy_(normal(module.bias.shape, 0.1))
        elif isinstance(module, nn.LayerNorm):
            module.weight.copy_(1 + normal(module.weight.shape, 0.1))
            module.bias.copy_(normal(module.bias.shape, 0.1))
        else:
            for param in module.parameters(recurse=False):
                param.copy_(normal(param.shape, 0.5))


def our_modules(agent: Any) -> dict[str, nn.Module]:
    wm, ac = agent.wm, agent.ac
    return {
        "encoder": wm.cnn_encoder,
        "rssm": wm.rssm,
        "decoder": wm.cnn_decoder,
        "reward": wm.reward_head,
        "cont": wm.cont_head,
        "actor": ac.actor,
        "critic": ac.critic,
    }


@contextlib.contextmanager
def patched(*patches: tuple[Any, str, Any]) -> Iterator[None]:
    """Set attributes for the duration of a block: (object, name, value) each, restored afterwards."""
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in reversed(saved):
            setattr(obj, name, value)


def argmax_onehot_st(probs: torch.Tensor) -> torch.Tensor:
    """The most likely class with the straight-through gradient of a sample (see the module docstring)."""
    hard = torch.zeros_like(probs).scatter_(-1, probs.argmax(-1, keepdim=True), 1.0)
    return hard + probs - probs.detach()


def grad_norm(params: Any) -> float:
    grads = [p.grad.detach().flatten() for p in params if p.grad is not None]
    return torch.cat(grads).norm().item() if grads else 0.0


def measure_ours(agent: Any, batch: dict[str, np.ndarray], noise: np.ndarray) -> dict[str, Any]:
    """One ``Dreamer.train`` on ``batch`` with the sampling made deterministic and the optimizer steps off;
    the golden quantities under the names tests/golden/dreamerv3.json uses. Nothing else of ours is replaced:
    wrappers only record the posterior, the prior and the lambda-returns."""
    from agents import dreamer, nets, rssm

    captured: dict[str, Any] = {}
    steps = iter(torch.as_tensor(noise))
    observe, lambda_return = agent.wm.rssm.observe, dreamer.lambda_return

    def observe_capture(*args, **kwargs):
        captured["post"], captured["prior"] = observe(*args, **kwargs)
        return captured["post"], captured["prior"]

    def lambda_return_capture(*args, **kwargs):
        captured["ret"] = lambda_return(*args, **kwargs)
        return captured["ret"]

    def normal_rsample(self: nets.Normal) -> torch.Tensor:
        return self.mean + self.std * next(steps)

    def no_step(*args, **kwargs) -> None:
        return None

    optimizers = (agent.model_opt, agent.actor_opt, agent.critic_opt)
    with patched(
        (agent.wm.rssm, "observe", observe_capture),
        (dreamer, "lambda_return", lambda_return_capture),
        (rssm, "onehot_st", argmax_onehot_st),
        (nets.Normal, "rsample", normal_rsample),
        *((opt, "step", no_step) for opt in optimizers),
    ):
        scalars = agent.train(batch)
    post, prior = captured["post"], captured["prior"]
    values: dict[str, Any] = {
        "loss/image": scalars["loss/obs"],
        "loss/reward": scalars["loss/reward"],
        "loss/cont": scalars["loss/cont"],
        "loss/dyn": scalars["loss/kl_dyn"],
        "loss/rep": scalars["loss/kl_rep"],
        "loss/model": scalars["loss/total"],
        "kl": scalars["kl"],
        "post_entropy": scalars["post_entropy"],
        "prior_entropy": scalars["prior_entropy"],
        "post_deter": post["deter"].tolist(),
        "post_probs": post["logits"].exp().tolist(),
        "prior_probs": prior["logits"].exp().tolist(),
        "lambda_return": captured["ret"].tolist(),
        "return_scale": scalars["return_scale"],
        "return_ema": [agent.ac.retnorm.low.item(), agent.ac.retnorm.high.item()],
        "imag_reward": scalars["imag_reward"],
        "value": scalars["value"],
        "actor_entropy": scalars["entropy"],
        "loss/actor": scalars["loss/actor"],
        "loss/critic": scalars["loss/critic"],
    }
    for name, module in our_modules(agent).items():
        values[f"grad_norm/{name}"] = grad_norm(module.parameters())
    return values
