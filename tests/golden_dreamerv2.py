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
ACTIONS = 2  # continuous: a Box in [-1, 1]
DISCRETE_ACTIONS = 3  # discrete: one-hot actions, as the replay stores them
# Shrunk sizes for every case.
TINY = {
    "precision": "fp32",  # the reference ran in fp32 on the CPU
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
}
# Nonzero harmony s_i (sigma_i = exp(s_i)) so the effective weights exp(-s_i) are not trivially 1.
HARMONY_LOG_SIGMA = {"reward": 0.3, "obs": -0.5, "dyn": 0.7}
SEEDS = {"weights": 0, "batch": 1, "noise": 2}
UPDATES = 2  # the second starts from the first's weights, optimizer moments, slow critic and last state
# golden file name -> (agent, suite, discrete actions). "dmc" follows HD configs/dreamerv2.yaml dmc_vision (no discount head,
# identity rewards, kl.free 1.0, actor_ent 1e-4); "" follows its defaults (discount head, tanh rewards,
# kl.free 0, actor_ent 2e-3). HarmonyDream on DMC is the DreamerV2 backbone with the harmony balancer.
CASES = {
    "dreamerv2": ("dreamerv2", "dmc", False),
    "harmonydream": ("dreamerv2+harmony", "dmc", False),
    "dreamerv2_discount_head": ("dreamerv2", "", False),
    # HD's defaults with discrete actions (as on Atari): one-hot actor trained by reinforce
    "dreamerv2_discrete": ("dreamerv2", "", True),
}
CASE_SETTINGS = {
    # At these weights the KL is ~0.17 nats: dmc_vision's kl.free 1.0 would clamp both KL terms and zero every
    # KL gradient, leaving the balancing untested. 0.1 keeps the free-nats max, inactive.
    "dmc": {"kl_free": 0.1},
    "": {},
}

# Our module -> the name the values use; the same names for the reference's modules in the generator.
MODULES = {
    "encoder": "wm.cnn_encoder",
    "rssm": "wm.rssm",
    "decoder": "wm.cnn_decoder",
    "reward": "wm.reward_head",
    "cont": "wm.cont_head",
    "actor": "ac.actor",
    "critic": "ac.critic",
}


def case_batches(case: str, batch_seed: int = SEEDS["batch"]) -> list[dict[str, np.ndarray]]:
    """The case's batches: terminals only where the agent has a continue (discount) head."""
    return make_batches(batch_seed, terminals=agent_config(case)["pred_cont"], discrete=CASES[case][2])


def agent_config(case: str) -> dict[str, Any]:
    name, suite, _ = CASES[case]
    config = agents.default_config(name, "paper", suite)["agent"]
    config.update(TINY, **CASE_SETTINGS[suite])
    return config


def spaces(discrete: bool) -> tuple[gym.spaces.Dict, gym.spaces.Space]:
    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, IMAGE_SHAPE, np.uint8)})
    if discrete:
        return obs_space, gym.spaces.Discrete(DISCRETE_ACTIONS)
    return obs_space, gym.spaces.Box(-1, 1, (ACTIONS,), np.float32)


def build_agent(case: str, weights_seed: int = SEEDS["weights"]) -> dreamer.Dreamer:
    torch.manual_seed(weights_seed)
    name, _, discrete = CASES[case]
    agent = agents.make(name, *spaces(discrete), agent_config(case), torch.device("cpu"))
    if hasattr(agent.balancer, "log_sigma"):
        with torch.no_grad():
            for group, value in HARMONY_LOG_SIGMA.items():
                agent.balancer.log_sigma[group].fill_(value)
    return agent


def make_batches(
    batch_seed: int = SEEDS["batch"], terminals: bool = True, discrete: bool = False
) -> list[dict[str, np.ndarray]]:
    """Replay-shaped batches, one per update: random pixels, actions (in [-1, 1] or one-hot), N(0, 1) rewards.

    Row 0 starts an episode at t=0, row 1 starts one at t=3 (ending the previous one with a terminal at t=2
    when ``terminals``), row 2 starts mid-episode: in the first update from the initial state with the
    replayed action, later from the state the previous update ended in (carry_state). Terminals only with
    a discount head: without one the reference ignores is_terminal, ours gives a terminal start no weight
    (a known difference, named in the golden files; our suites without a continue head never set it)."""
    rng = np.random.default_rng(batch_seed)
    batch, length = TINY["batch_size"], TINY["batch_length"]
    batches = []
    for _ in range(UPDATES):
        is_first = np.zeros((batch, length), np.float32)
        is_terminal = np.zeros((batch, length), np.float32)
        is_first[0, 0] = 1.0
        is_terminal[1, 2], is_first[1, 3] = float(terminals), 1.0
        batches.append(
            {
                "image": rng.integers(0, 256, (batch, length, *IMAGE_SHAPE), dtype=np.uint8),
                "action": (
                    np.eye(DISCRETE_ACTIONS, dtype=np.float32)[
                        rng.integers(0, DISCRETE_ACTIONS, (batch, length))
                    ]
                    if discrete
                    else rng.uniform(-1, 1, (batch, length, ACTIONS)).astype(np.float32)
                ),
                "reward": rng.standard_normal((batch, length)).astype(np.float32),
                "is_first": is_first,
                "is_terminal": is_terminal,
            }
        )
    return batches


def parameter_shapes(agent: dreamer.Dreamer) -> dict[str, list[int]]:
    return {name: list(p.shape) for name, p in agent.modules.named_parameters()}


def weight_sums(agent: dreamer.Dreamer) -> dict[str, float]:
    """Sum of |w| per parameter: proves the test rebuilt the weights the golden values came from."""
    return {name: float(p.detach().abs().double().sum()) for name, p in agent.modules.named_parameters()}


def _norm(grads: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([g.double().norm() for g in grads])))


def compute(
    agent: dreamer.Dreamer, batches: list[dict[str, np.ndarray]], noise_seed: int = SEEDS["noise"]
) -> dict:
    """``agent.train(batch)`` for each batch (world model, then actor and critic, then the optimizer steps);
    the golden quantities of each update ``u``, named ``u<u>/<quantity>``.

    Gradient norms are those of the backward pass, before clipping and the optimizer step; update norms are
    ||w_after - w_before|| per module over the whole update (optimizers and the slow critic's copy)."""
    torch.manual_seed(noise_seed)  # one stream for all updates, as the reference gets it
    values = {}
    for index, batch in enumerate(batches, 1):
        values.update({f"u{index}/{k}": v for k, v in _one_update(agent, batch).items()})
    values.update(_acting(agent, batches[0]))
    return values


def _acting(agent: dreamer.Dreamer, batch: dict[str, np.ndarray]) -> dict:
    """Actions of the trained agent on the batch's first two frames: two "train" steps (posterior and action
    sampled, the state carried) and one "eval" step from scratch (the actor's mode)."""
    rows = len(batch["image"])
    first = {"image": batch["image"][:, 0], "is_first": np.ones(rows, np.float32)}
    second = {"image": batch["image"][:, 1], "is_first": np.zeros(rows, np.float32)}
    action1, state = agent.policy(first, None, "train")
    action2, _ = agent.policy(second, state, "train")
    action_eval, _ = agent.policy(first, None, "eval")
    return {
        "act/train_step1": action1.tolist(),
        "act/train_step2": action2.tolist(),
        "act/eval": action_eval.tolist(),
    }


def _one_update(agent: dreamer.Dreamer, batch: dict[str, np.ndarray]) -> dict:
    named = dict(agent.modules.named_parameters())
    before = {name: param.detach().clone() for name, param in named.items()}
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

    def recording_loss(*args, **kwargs):
        post, losses, metrics = wm_loss(*args, **kwargs)
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
        **({"loss_cont": metrics["loss/cont"]} if "loss/cont" in metrics else {}),
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
    modules = {
        k: prefix + "." for k, prefix in MODULES.items() if any(n.startswith(prefix + ".") for n in named)
    }
    for key, prefix in modules.items():
        values[f"grad_norm_{key}"] = _norm([g for n, g in grads.items() if n.startswith(prefix)])
    for key, prefix in {**modules, "slow_critic": "ac.slow_critic."}.items():
        values[f"update_norm_{key}"] = _norm(
            [named[n].detach() - w for n, w in before.items() if n.startswith(prefix)]
        )
    if hasattr(agent.balancer, "log_sigma"):
        for group in HARMONY_LOG_SIGMA:
            values[f"grad_harmony_s_{group}"] = float(grads[f"balancer.log_sigma.{group}"])
            values[f"harmony_s_{group}"] = float(agent.balancer.log_sigma[group].detach())
    return values
