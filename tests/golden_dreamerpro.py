"""Our side of the DreamerPro golden check: a tiny agent, its weights, a batch, the noise, its numbers.

Used by tests/test_golden_dreamerpro.py (compares with tests/golden/dreamerpro.json) and by
tools/golden/make_dreamerpro.py (exports these weights, this batch and this noise to the reference,
fdeng18/dreamer-pro, TensorFlow 2, and records what it computes from them). The module imports only numpy and
torch at the top.

The case is PRO's dmc block (Gaussian latents, tanh-normal actor trained by backprop through the dynamics, no
discount head, Sinkhorn eps 0.0125) at a tiny size, fp32, one full update (optimizer steps included).

Determinism, and what is made equal on both sides:

* Weights: ``golden_weights_`` (tests/golden_dreamerv3.py) fills every tensor from a seeded generator; the EMA
  target encoder and projection get their own values (as PRO's separately initialised target does), so the
  Sinkhorn targets do not come from the online encoder.
* Augmentation: the random shift of each sequence is our random_shift's draw from a generator seeded with
  NOISE_SEED; ``noise`` draws the same first (``aug_delta``) for the reference.
* Latent samples: the Gaussian posterior (per time step) and prior (per imagination step) samples are
  mean + std * the shared standard-normal noise (``noise``). PRO's posterior step also samples a prior that
  nothing reads; the reference run takes its mode (no noise is consumed).
* Actor: each imagination step's tanh-normal sample is tanh(mean + std * noise) with the shared noise; the
  100 draws behind the entropy estimate (SampleDist) are shared too.
* Prototypes are not frozen (``proto_freeze`` 0), so their gradient and update are compared as well.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from golden_dreamerv3 import golden_weights_, grad_norm, patched

WEIGHT_SEED = 5
BATCH_SEED = 6
NOISE_SEED = 7
IMAGE_SIZE = 64  # DV2's encoder (4 valid stride-2 convs) needs 64x64
ACTIONS = 2
ENTROPY_SAMPLES = 100  # PRO dists.py SampleDist(samples=100)
# The tiny agent: our smoke preset for the dmc suite with these values.
TINY = {
    "batch_size": 2,  # two views of each: 4 rows in the model
    "batch_length": 6,
    "deter": 32,
    "hidden": 32,
    "stoch": 4,
    "units": 32,
    "layers": 2,
    "cnn_depth": 4,
    "imag_horizon": 4,  # PRO imag_horizon 5 (it counts the start state)
    "imag_starts": 0,  # imagine from every posterior state, as PRO does
    "proto_count": 8,
    "proto_dim": 8,
    "proto_freeze": 0,
    "kl_free": 0.0,  # the KL gets a gradient at init (PRO dmc free 1.0 would hide it)
    # no clipping: the recorded gradients are those both sides step with
    "model_clip": 1e6,
    "actor_clip": 1e6,
    "critic_clip": 1e6,
}
# Our module -> its parameters' names under the agent's modules (the reference maps the same groups).
MODULES = (
    "encoder",
    "rssm",
    "obs_proj",
    "feat_proj",
    "prototypes",
    "reward",
    "actor",
    "critic",
)
UPDATED = (*MODULES, "ema_encoder", "ema_obs_proj", "slow_critic")


def agent_config() -> dict[str, Any]:
    from agents import dreamerpro

    cfg = dreamerpro.default_config("dreamerpro", "smoke", "dmc")["agent"]
    cfg.update(TINY)
    return cfg


def make_batch(seed: int = BATCH_SEED) -> dict[str, np.ndarray]:
    """A replay-shaped batch. Row 0 starts an episode (is_first, zero action into it, as the replays store);
    row 1 is a chunk from the middle of an episode (no is_first, a real action into its first step). No
    terminals, no episode boundary inside a chunk (PRO's replay samples chunks within one episode)."""
    rng = np.random.default_rng(seed)
    b, t = TINY["batch_size"], TINY["batch_length"]
    is_first = np.zeros((b, t), np.float32)
    is_first[0, 0] = 1
    action = rng.uniform(-1, 1, (b, t, ACTIONS)).astype(np.float32)
    action[0, 0] = 0
    return {
        "image": rng.integers(0, 256, (b, t, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8),
        "action": action,
        "reward": rng.standard_normal((b, t)).astype(np.float32),
        "is_first": is_first,
        "is_terminal": np.zeros((b, t), np.float32),
    }


def noise() -> dict[str, np.ndarray]:
    """The shared random numbers. aug_delta (2B, 1, 2): each row's (dx, dy) shift in pixels, as our
    random_shift draws it; post (T, 2B, S) and imag (H + 1, N, S): latent noise per posterior and imagination
    step; action (H + 1, N, A) per imagination step; entropy (100, H + 1, N, A) the entropy estimate's draws.
    PRO imagines one step more than we use (its last action and state feed nothing)."""
    gen = torch.Generator().manual_seed(NOISE_SEED)
    rows, length, horizon = 2 * TINY["batch_size"], TINY["batch_length"], TINY["imag_horizon"]
    delta_max = agent_config()["aug_max_delta"]
    starts = rows * length
    return {
        "aug_delta": ((torch.rand(rows, 1, 2, generator=gen) * 2 - 1) * delta_max).numpy(),
        "post": torch.randn(length, rows, TINY["stoch"], generator=gen).numpy(),
        "imag": torch.randn(horizon + 1, starts, TINY["stoch"], generator=gen).numpy(),
        "action": torch.randn(horizon + 1, starts, ACTIONS, generator=gen).numpy(),
        "entropy": torch.randn(ENTROPY_SAMPLES, horizon + 1, starts, ACTIONS, generator=gen).numpy(),
    }


def build_agent() -> Any:
    """Our tiny DreamerPro on CPU in fp32 with the golden weights."""
    import gymnasium as gym

    from agents import dreamerpro

    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)})
    act_space = gym.spaces.Box(-1, 1, (ACTIONS,), np.float32)
    agent = dreamerpro.make("dreamerpro", obs_space, act_space, agent_config(), torch.device("cpu"))
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
        "actor": ac.actor,
        "critic": ac.critic,
        "ema_encoder": wm.ema_encoder,
        "ema_obs_proj": wm.ema_obs_proj,
        "slow_critic": ac.slow_critic,
    }
    return {name: list(module.parameters()) for name, module in modules.items()}


def measure_ours(agent: Any, batch: dict[str, np.ndarray], shared: dict[str, np.ndarray]) -> dict[str, Any]:
    """One ``DreamerPro.train`` on ``batch`` with the shared noise; the golden quantities under the names
    tests/golden/dreamerpro.json uses. Wrappers only feed the noise and record intermediate tensors."""
    from agents import dreamer, dreamerpro, nets, prototypes

    captured: dict[str, Any] = {"targets": []}
    latent = iter([*torch.as_tensor(shared["post"]), *torch.as_tensor(shared["imag"])])
    actions = iter(torch.as_tensor(shared["action"]))
    steps = TINY["imag_horizon"]
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
        (agent.wm.rssm, "_sample", sample),
        (agent.wm.rssm, "observe", observe_capture),
        (nets.TanhNormal, "_rsample", tanh_rsample),
        (dreamer, "lambda_return", lambda_return_capture),
        (prototypes, "_targets", targets_capture),
    ):
        scalars = agent.train(batch)
    post, prior = captured["post"], captured["prior"]
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
        "post_mean": post["mean"].tolist(),
        "post_std": post["std"].tolist(),
        "prior_mean": prior["mean"].tolist(),
        "prior_std": prior["std"].tolist(),
        "sinkhorn_targets": torch.cat(captured["targets"], 1).tolist(),
        "lambda_return": captured["ret"].tolist(),
        "actor_entropy": scalars["entropy"],
        "loss/actor": scalars["loss/actor"],
        "loss/critic": scalars["loss/critic"],
    }
    for name in MODULES:
        values[f"grad_norm/{name}"] = grad_norm(params[name])
    for name in UPDATED:
        moved = [(p.detach() - b).flatten() for p, b in zip(params[name], before[name])]
        values[f"update_norm/{name}"] = torch.cat(moved).norm().item()
    return values
