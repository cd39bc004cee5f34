"""Our side of the DreamerV2 / HarmonyDream golden check: a tiny agent, its weights, a batch, its numbers.

Used by tests/test_golden.py (compares with tests/golden/{dreamerv2,harmonydream}.json) and by
tools/golden/make_dreamerv2.py (exports these weights and this batch to the reference, thuml/HarmonyDream
wmlib-torch, which records what it computes from them).

Determinism: the weights come from ``agents.make`` after ``torch.manual_seed(weights_seed)``; the batch from
``np.random.default_rng(batch_seed)``; the sampling inside one update (posterior and prior one-hot samples,
truncated-normal actions) from torch's global generator after ``torch.manual_seed(noise_seed)``. Our update
draws, in order: per observed step one uniform tensor (B, S, K) for the posterior sample; per imagined step
one (N, A) for the action then one (N, S, K) for the prior sample. The generator script feeds the reference
the same uniforms in the same order (see there). Inside the update nothing of ours is replaced: we only
observe (gradient hooks, a wrapper recording the posterior and the lambda-returns).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

import agents
from agents import dreamer

IMAGE_SHAPE = (64, 64, 3)  # the DV2 CNN (kernels 4,4,4,4 down, 5,5,6,6 up) supports 64x64 only
ACTIONS = 2
# HD configs/dreamerv2.yaml dmc_vision (our "dmc" suite defaults), shrunk.
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
    "imag_starts": 0,
    # HD dmc_vision uses kl.free 1.0; at these weights the KL is ~0.17 nats, so 1.0 would clamp both KL terms
    # and zero every KL gradient, leaving the balancing untested. 0.1 keeps the free-nats max but inactive.
    "kl_free": 0.1,
}
# Nonzero harmony s_i (sigma_i = exp(s_i)) so the effective weights exp(-s_i) are not trivially 1.
HARMONY_LOG_SIGMA = {"reward": 0.3, "obs": -0.5, "dyn": 0.7}
SEEDS = {"weights": 0, "batch": 1, "noise": 2}
# golden file name -> the agent (HarmonyDream on DMC: the DreamerV2 backbone with the harmony balancer)
CASES = {"dreamerv2": "dreamerv2", "harmonydream": "dreamerv2+harmony"}

# Our module -> the name the values use; the same names for the reference's modules in the generator.
MODULES = {
    "encoder": "wm.cnn_encoder",
    "rssm": "wm.rssm",
    "decoder": "wm.cnn_decoder",
    "reward": "wm.reward_head",
    "actor": "ac.actor",
    "critic": "ac.critic",
}


def agent_config(case: str) -> dict[str, Any]:
    config = agents.default_config(CASES[case], "paper", "dmc")["agent"]
    config.update(TINY)
    return config


def spaces() -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)})
    return obs_space, gym.spaces.Box(-1, 1, (ACTIONS,), np.float32)


def build_agent(case: str, weights_seed: int = SEEDS["weights"]) -> dreamer.Dreamer:
    torch.manual_seed(weights_seed)
    agent = agents.make(CASES[case], *spaces(), agent_config(case), torch.device("cpu"))
    if case == "harmonydream":
        with torch.no_grad():
            for group, value in HARMONY_LOG_SIGMA.items():
                agent.balancer.log_sigma[group].fill_(value)
    return agent


def make_batch(batch_seed: int = SEEDS["batch"]) -> dict[str, np.ndarray]:
    """A replay-shaped batch: random pixels, actions in [-1, 1], N(0, 1) rewards, no terminals, an episode
    start at t=0 of every row and one mid-sequence reset (row 1, t=3) to exercise the state reset."""
    rng = np.random.default_rng(batch_seed)
    batch, length = TINY["batch_size"], TINY["batch_length"]
    is_first = np.zeros((batch, length), np.float32)
    is_first[:, 0] = 1.0
    is_first[1, 3] = 1.0
    return {
        "image": rng.integers(0, 256, (batch, length, *IMAGE_SHAPE), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (batch, length, ACTIONS)).astype(np.float32),
        "reward": rng.standard_normal((batch, length)).astype(np.float32),
        "is_first": is_first,
        "is_terminal": np.zeros((batch, length), np.float32),
    }


def parameter_shapes(agent: dreamer.Dreamer) -> dict[str, list[int]]:
    return {name: list(p.shape) for name, p in agent.modules.named_parameters()}


def weight_sums(agent: dreamer.Dreamer) -> dict[str, float]:
    """Sum of |w| per parameter: proves the test rebuilt the weights the golden values came from."""
    return {name: float(p.detach().abs().double().sum()) for name, p in agent.modules.named_parameters()}


def _norm(grads: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([g.double().norm() for g in grads])))


def compute(agent: dreamer.Dreamer, batch: dict[str, np.ndarray], noise_seed: int = SEEDS["noise"]) -> dict:
    """One ``agent.train(batch)`` (world model, then actor and critic); the golden quantities it computed.

    Gradient norms are those of the backward pass, before clipping and the optimizer step."""
    named = dict(agent.modules.named_parameters())
    grads: dict[str, torch.Tensor] = {}
    hooks = [
        param.register_post_accumulate_grad_hook(
            lambda p, n=name: grads.__setitem__(n, p.grad.detach().clone())
        )
        for name, param in named.items()
        if param.requires_grad
    ]
    seen: dict[str, torch.Tensor] = {}
    wm_loss = agent.wm.loss

    def recording_loss(data):
        post, losses, metrics = wm_loss(data)
        seen["post_deter"] = post["deter"].detach()
        return post, losses, metrics

    original_return = dreamer.lambda_return

    def recording_return(*args, **kwargs):
        ret = original_return(*args, **kwargs)
        seen["return"] = ret.detach()
        return ret

    agent.wm.loss = recording_loss
    dreamer.lambda_return = recording_return
    try:
        torch.manual_seed(noise_seed)
        metrics = agent.train(batch)
    finally:
        dreamer.lambda_return = original_return
        del agent.wm.loss
        for hook in hooks:
            hook.remove()
    ret = seen["return"]
    values = {
        "loss_obs": metrics["loss/obs"],
        "loss_reward": metrics["loss/reward"],
        "loss_dyn": metrics["loss/dyn"],
        "loss_model": metrics["loss/total"],
        "kl": metrics["kl"],
        "post_entropy": metrics["post_entropy"],
        "prior_entropy": metrics["prior_entropy"],
        "post_deter_mean": float(seen["post_deter"].mean()),
        "post_deter_std": float(seen["post_deter"].std()),
        "return_mean": float(ret.mean()),
        "return_std": float(ret.std()),
        "return_start0": ret[:, 0].tolist(),  # the imagined returns of the first start state, every step
        "actor_loss": metrics["loss/actor"],
        "actor_entropy": metrics["entropy"],
        "critic_loss": metrics["loss/critic"],
    }
    for key, prefix in MODULES.items():
        values[f"grad_norm_{key}"] = _norm([g for n, g in grads.items() if n.startswith(prefix + ".")])
    if hasattr(agent.balancer, "log_sigma"):
        for group in HARMONY_LOG_SIGMA:
            values[f"grad_harmony_s_{group}"] = float(grads[f"balancer.log_sigma.{group}"])
    return values
