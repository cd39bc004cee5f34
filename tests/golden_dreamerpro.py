"""Our side of the DreamerPro golden check: a tiny agent, its weights, a batch, the noise, its numbers.

Used by tests/test_golden_dreamerpro.py (compares with tests/golden/dreamerpro.json) and by
tools/golden/make_dreamerpro.py (exports these weights, this batch and this noise to the reference,
fdeng18/dreamer-pro, TensorFlow 2, and records what it computes from them). The module imports only numpy and
torch at the top.

Two cases at a tiny size, fp32, one full update each (optimizer steps included), one golden file each:

* ``dreamerpro``: PRO's dmc block (Gaussian latents, tanh-normal actor trained by backprop through the
  dynamics, no discount head, Sinkhorn eps 0.0125); our suite dmc.
* ``dreamerpro_defaults``: PRO's defaults block (categorical latents, actor_grad both with mix 0.1, a discount
  head, Sinkhorn eps 0.05); our suite "" (the smoke preset's tanh reward clipping, which PRO also offers).
  Its batch ends one episode with a terminal at the last step of a chunk, as PRO's replay can.

Determinism, and what is made equal on both sides:

* Weights: ``golden_weights_`` (tests/golden_dreamerv3.py) fills every tensor from a seeded generator; the EMA
  target encoder and projection get their own values (as PRO's separately initialised target does), so the
  Sinkhorn targets do not come from the online encoder.
* Augmentation: the random shift of each sequence is our random_shift's draw from a generator seeded with
  NOISE_SEED; ``noise`` draws the same first (``aug_delta``) for the reference.
* Latent samples: the Gaussian posterior (per time step) and prior (per imagination step) samples are
  mean + std * the shared standard-normal noise (``noise``); a categorical sample is the most likely class
  with the straight-through gradient both codes give a sample (one-hot + probs - sg(probs)). PRO's posterior
  step also samples a prior that nothing reads; the reference run takes its mode (no noise is consumed).
* Actor: each imagination step's tanh-normal sample is tanh(mean + std * noise) with the shared noise; the
  100 draws behind the entropy estimate (SampleDist) are shared too.
* Prototypes are not frozen (``proto_freeze`` 0), so their gradient and update are compared as well.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from golden_dreamerv3 import argmax_onehot_st, golden_weights_, grad_norm, patched

WEIGHT_SEED = 5
BATCH_SEED = 6
NOISE_SEED = 7
IMAGE_SIZE = 64  # DV2's encoder (4 valid stride-2 convs) needs 64x64
ACTIONS = 2
ENTROPY_SAMPLES = 100  # PRO dists.py SampleDist(samples=100)
# Golden file name -> our suite (the preset is smoke, with TINY).
CASES = {"dreamerpro": "dmc", "dreamerpro_defaults": ""}
# The tiny agent: our smoke preset with these values.
TINY = {
    "batch_size": 2,  # two views of each: 4 rows in the model
    "batch_length": 6,
    "deter": 32,
    "hidden": 32,
    "stoch": 4,
    "classes": 4,
    "units": 32,
    "layers": 2,
    "cnn_depth": 4,
    "imag_horizon": 4,  # PRO imag_horizon 5 (it counts the start state)
    "imag_starts": 0,  # no subsample of the imagination starts, as PRO
    "proto_count": 8,
    "proto_dim": 8,
    "proto_freeze": 0,
    "kl_free": 0.0,  # the KL gets a gradient at init (PRO dmc free 1.0 would hide it)
    # no clipping: the recorded gradients are those both sides step with
    "model_clip": 1e6,
    "actor_clip": 1e6,
    "critic_clip": 1e6,
}
# Modules whose gradient norm is compared (cont only where the case has a continue head); the update is
# compared for these and the EMA target and slow critic (``module_parameters``).
MODULES = ("encoder", "rssm", "obs_proj", "feat_proj", "prototypes", "reward", "cont", "actor", "critic")


def agent_config(case: str) -> dict[str, Any]:
    from agents import dreamerpro

    cfg = dreamerpro.default_config("dreamerpro", "smoke", CASES[case])["agent"]
    cfg.update(TINY)
    return cfg


def make_batch(case: str) -> dict[str, np.ndarray]:
    """A replay-shaped batch. Row 0 starts an episode (is_first, zero action into it, as the replays store);
    row 1 is a chunk from the middle of an episode (no is_first, a real action into its first step) that, in
    the defaults case, ends the episode with a terminal at its last step. No episode boundary inside a chunk
    (PRO's replay samples chunks within one episode)."""
    rng = np.random.default_rng(BATCH_SEED)
    b, t = TINY["batch_size"], TINY["batch_length"]
    is_first = np.zeros((b, t), np.float32)
    is_first[0, 0] = 1
    action = rng.uniform(-1, 1, (b, t, ACTIONS)).astype(np.float32)
    action[0, 0] = 0
    is_terminal = np.zeros((b, t), np.float32)
    if agent_config(case)["pred_cont"]:
        is_terminal[1, -1] = 1
    return {
        "image": rng.integers(0, 256, (b, t, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8),
        "action": action,
        "reward": (2 * rng.standard_normal((b, t))).astype(np.float32),  # beyond +-1: tanh clipping matters
        "is_first": is_first,
        "is_terminal": is_terminal,
    }


def noise(case: str) -> dict[str, np.ndarray]:
    """The shared random numbers. aug_delta (2B, 1, 2): each row's (dx, dy) shift in pixels, as our
    random_shift draws it; post (T, 2B, S) and imag (H + 1, N, S): Gaussian latent noise per posterior and
    imagination step (none for categorical latents); action (H + 1, N, A) per imagination step; entropy
    (100, H + 1, N, A) the entropy estimate's draws. PRO imagines one step more than we use (its last action
    and state feed nothing). N starts: every posterior state, without each sequence's last with a discount
    head (PRO agent.py:73-75)."""
    gen = torch.Generator().manual_seed(NOISE_SEED)
    rows, length, horizon = 2 * TINY["batch_size"], TINY["batch_length"], TINY["imag_horizon"]
    cfg = agent_config(case)
    starts = rows * (length - 1 if cfg["pred_cont"] else length)
    latents = 1 if cfg["latent"] == "gaussian" else 0
    return {
        "aug_delta": ((torch.rand(rows, 1, 2, generator=gen) * 2 - 1) * cfg["aug_max_delta"]).numpy(),
        "post": torch.randn(latents * length, rows, TINY["stoch"], generator=gen).numpy(),
        "imag": torch.randn(latents * (horizon + 1), starts, TINY["stoch"], generator=gen).numpy(),
        "action": torch.randn(horizon + 1, starts, ACTIONS, generator=gen).numpy(),
        "entropy": torch.randn(ENTROPY_SAMPLES, horizon + 1, starts, ACTIONS, generator=gen).numpy(),
    }


def build_agent(case: str) -> Any:
    """Our tiny DreamerPro on CPU in fp32 with the golden weights."""
    import gymnasium as gym

    from agents import dreamerpro

    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)})
    act_space = gym.spaces.Box(-1, 1, (ACTIONS,), np.float32)
    agent = dreamerpro.make("dreamerpro", obs_space, act_space, agent_config(case), torch.device("cpu"))
    golden_weights_(agent.modules, WEIGHT_SEED)
    return agent


def module_parameters(agent: Any) -> dict[str, list[torch.nn.Parameter]]:
    wm, ac = agent.wm, agent.ac
    modules = {
        "encoder": wm.cnn_encoder,
        "rssm": wm.rssm,
        "obs_proj": wm.obs_proj,
        "feat_proj": wm.feat_proj,
        "prototypes": wm.prototypes,
        "reward": wm.reward_head,
        "cont": wm.cont_head,
        "actor": ac.actor,
        "critic": ac.critic,
        "ema_encoder": wm.ema_encoder,
        "ema_obs_proj": wm.ema_obs_proj,
        "slow_critic": ac.slow_critic,
    }
    return {name: list(module.parameters()) for name, module in modules.items() if module is not None}


def measure_ours(agent: Any, batch: dict[str, np.ndarray], shared: dict[str, np.ndarray]) -> dict[str, Any]:
    """One ``DreamerPro.train`` on ``batch`` with the shared noise; the golden quantities under the names
    tests/golden/dreamerpro.json uses. Wrappers only feed the noise and record intermediate tensors."""
    from agents import dreamer, dreamerpro, nets, prototypes, rssm

    captured: dict[str, Any] = {"targets": []}
    steps = TINY["imag_horizon"]  # the reference's last imagination step feeds nothing: not drawn here
    latent = iter([*torch.as_tensor(shared["post"]), *torch.as_tensor(shared["imag"])[:steps]])
    actions = iter(torch.as_tensor(shared["action"])[:steps])
    entropy_noise = torch.as_tensor(shared["entropy"])[:, :steps]

    def shift(images: torch.Tensor, max_delta: float) -> torch.Tensor:
        """random_shift drawing from a generator seeded as ``noise`` was: its first draw, aug_delta."""
        return prototypes.random_shift(images, max_delta, torch.Generator().manual_seed(NOISE_SEED))

    def sample(stats: dict[str, torch.Tensor]) -> torch.Tensor:
        draw = next(latent)
        assert draw.shape == stats["mean"].shape, (draw.shape, stats["mean"].shape)
        return stats["mean"] + stats["std"] * draw

    def tanh_rsample(self: nets.TanhNormal, count: int | None = None) -> torch.Tensor:
        draw = next(actions) if count is None else entropy_noise
        assert draw.shape == ((count,) if count else ()) + self.mean.shape, draw.shape
        return torch.tanh(self.mean + self.std * draw)

    observe, lambda_return, targets = agent.wm.rssm.observe, dreamer.lambda_return, prototypes._targets

    def observe_capture(*args, **kwargs):
        captured["post"], captured["prior"] = observe(*args, **kwargs)
        return captured["post"], captured["prior"]

    def lambda_return_capture(*args, **kwargs):
        captured["ret"] = lambda_return(*args, **kwargs)
        return captured["ret"]

    def targets_capture(*args, **kwargs):
        captured["targets"].append(targets(*args, **kwargs))
        return captured["targets"][-1]

    params = module_parameters(agent)
    before = {name: [p.detach().clone() for p in group] for name, group in params.items()}
    with patched(
        (dreamerpro, "random_shift", shift),
        (agent.wm.rssm, "_sample", sample if agent.wm.rssm.gaussian else agent.wm.rssm._sample),
        (rssm, "onehot_st", argmax_onehot_st),
        (agent.wm.rssm, "observe", observe_capture),
        (nets.TanhNormal, "_rsample", tanh_rsample),
        (dreamer, "lambda_return", lambda_return_capture),
        (prototypes, "_targets", targets_capture),
    ):
        scalars = agent.train(batch)
    if next(latent, None) is not None or next(actions, None) is not None:
        raise AssertionError("noise left unused: the update drew fewer samples than noise() holds")
    post, prior = captured["post"], captured["prior"]
    if agent.wm.rssm.gaussian:
        stats = {
            f"{name}_{key}": state[key]
            for name, state in (("post", post), ("prior", prior))
            for key in ("mean", "std")
        }
    else:
        stats = {f"{name}_probs": state["logits"].exp() for name, state in (("post", post), ("prior", prior))}
    values: dict[str, Any] = {
        "loss/swav": scalars["loss/swav"],
        "loss/temp": scalars["loss/temp"],
        "loss/norm": scalars["loss/norm"],
        "loss/reward": scalars["loss/reward"],
        "loss/kl": scalars["loss/dyn"],
        "loss/model": scalars["loss/total"],
        "kl": scalars["kl"],
        "post_entropy": scalars["post_entropy"],
        "prior_entropy": scalars["prior_entropy"],
        "post_deter": post["deter"].tolist(),
        **{key: value.tolist() for key, value in stats.items()},
        "sinkhorn_targets": torch.cat(captured["targets"], 1).tolist(),
        "lambda_return": captured["ret"].tolist(),
        "actor_entropy": scalars["entropy"],
        "loss/actor": scalars["loss/actor"],
        "loss/critic": scalars["loss/critic"],
    }
    if "loss/cont" in scalars:
        values["loss/cont"] = scalars["loss/cont"]
    for name in MODULES:
        if name in params:
            values[f"grad_norm/{name}"] = grad_norm(params[name])
    for name in params:
        moved = [(p.detach() - b).flatten() for p, b in zip(params[name], before[name])]
        values[f"update_norm/{name}"] = torch.cat(moved).norm().item()
    return values
