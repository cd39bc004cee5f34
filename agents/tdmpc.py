"""TD-MPC v1 (Hansen et al. 2022): a task-oriented latent dynamics model (TOLD) trained by latent
consistency, reward and TD-value losses, acting by MPPI planning over the model with a learned policy prior.

Facts from nicklashansen/tdmpc (TDMPC below): cfgs/default.yaml, cfgs/pixels.yaml, src/algorithm/tdmpc.py,
src/algorithm/helper.py. Deviations from the reference, each on purpose:
- prioritized replay as TDMPC's (alpha 0.6, beta 0.4, priority = rho-discounted |TD error| of both Qs),
  over the harness's one stream of steps, drawing starts with replacement (TDMPC: without, once full);
- 64x64 frames instead of 84x84 (the harness renders 64x64); the stack of three (TDMPC's FrameStack wrapper)
  is rebuilt here, from replayed sequences k - 1 steps longer and from a frame buffer in the policy state,
  because the harness stores single frames; the CNN keeps TDMPC's kernels 7/5/3/3 with stride 2 and a
  shift augmentation of int(size / 21) pixels;
- sequences may cross episode boundaries: losses are masked from the first ``is_first`` inside a sequence
  on, and ``is_terminal`` stops bootstrapping (TDMPC's DMC episodes never terminate);
- the planner runs a batch of environments at once, warm-starts across a growing horizon, and clips the
  executed action to [-1, 1] (TDMPC leaves clipping to the env);
- the horizon and std schedules count the steps the agent itself acted, so they begin after the harness's
  random prefill (TDMPC counts its seed steps too: its schedules are 5K of 25K steps along at the start).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents import balancers

GROUPS = ("consistency", "reward", "value")
PRESETS = ("smoke", "small", "paper")


# ----------------------------------------------------------------------------------------------- config
def default_config(backbone: str, preset: str, suite: str) -> dict[str, Any]:
    """Every TD-MPC knob for a preset; pixels everywhere except the ``gym`` state suite."""
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is invalid; valid choices: {', '.join(PRESETS)}")
    pixels = suite != "gym"
    agent: dict[str, Any] = {
        "obs_key": "image" if pixels else "state",  # which observation the encoder reads
        # TDMPC default.yaml: latent_dim 50, enc_dim 256, mlp_dim 512; pixels.yaml: num_channels 32
        "latent_dim": 50,
        "enc_dim": 256,
        "mlp_dim": 512,
        "cnn_channels": 32,
        "aug_pad": 3,  # TDMPC helper.py RandomShiftsAug: pad int(img_size / 21) -> 3 at 64x64 (4 at 84)
        "frame_stack": 3 if pixels else 1,  # TDMPC pixels.yaml frame_stack 3; states are not stacked
        # TDMPC default.yaml: horizon 5, rho 0.5, discount 0.99, tau 0.01, update_freq 2, grad_clip_norm 10
        "horizon": 5,
        "rho": 0.5,
        "discount": 0.99,
        "tau": 0.01,
        "target_every": 2,
        "grad_clip": 10.0,
        "loss_clamp": 1e4,  # TDMPC tdmpc.py: each sample's loss clamped at 1e4
        # TDMPC default.yaml: batch 512, lr 1e-3 (state); pixels.yaml: batch 256, lr 3e-4
        "batch_size": 256 if pixels else 512,
        "lr": 3e-4 if pixels else 1e-3,
        # TDMPC default.yaml: per_alpha 0.6, per_beta 0.4 (prioritized replay is always on there)
        "per": True,
        "per_alpha": 0.6,
        "per_beta": 0.4,
        # TDMPC default.yaml planning: iterations 6, num_samples 512, num_elites 64, mixture_coef 0.05
        # (25 policy trajectories), temperature 0.5, momentum 0.1, min_std 0.05; tdmpc.py: initial std 2
        "plan_iterations": 6,
        "plan_samples": 512,
        "plan_elites": 64,
        "plan_policy_fraction": 0.05,
        "plan_temperature": 0.5,
        "plan_momentum": 0.1,
        "plan_init_std": 2.0,
        # TDMPC default.yaml: std_schedule linear(0.5, min_std, 25000), horizon_schedule
        # linear(1, horizon, 25000) in agent steps; min_std is also the policy's noise in targets/planning
        "std_start": 0.5,
        "min_std": 0.05,
        "schedule_steps": 25000,
        "policy_noise_clip": 0.3,  # TDMPC tdmpc.py TOLD.pi: TruncatedNormal(...).sample(clip=0.3)
        "balancer": _balancer_config(),
    }
    run = {"prefill": 5000, "replay_capacity": 1_000_000}  # TDMPC: seed_steps 5000, max_buffer_size 1e6
    if preset == "small":  # sized for a 2-core CPU: Pendulum-v1 20K steps well under an hour
        agent.update(
            latent_dim=50, enc_dim=128, mlp_dim=128, cnn_channels=16, batch_size=64 if pixels else 128
        )
        agent.update(plan_iterations=4, plan_samples=128, plan_elites=16, plan_policy_fraction=0.1)
        agent.update(schedule_steps=5000)  # the schedules end within a 20K-step budget (TDMPC: 25K of 100K+)
        run.update(prefill=1000, replay_capacity=100_000)
    elif preset == "smoke":
        agent.update(latent_dim=8, enc_dim=16, mlp_dim=16, cnn_channels=4, batch_size=4, horizon=2)
        agent.update(plan_iterations=2, plan_samples=16, plan_elites=4, plan_policy_fraction=0.25)
        agent.update(schedule_steps=100)
        run.update(prefill=50, replay_capacity=2000)
    # one update per agent step (TDMPC train.py): the harness replays batch x sequence_length steps per update
    run["train_ratio"] = float(agent["batch_size"] * sequence_length(agent))
    # TDMPC train.py: at step == seed_steps it makes seed_steps updates at once (smoke: a token burst)
    run["pretrain"] = 2 if preset == "smoke" else run["prefill"]
    return {"agent": agent, "run": run}


def sequence_length(config: dict[str, Any]) -> int:
    """Replayed steps per sample: horizon + 1 for the losses, plus k - 1 earlier ones to stack the first."""
    return config["horizon"] + config["frame_stack"]


def _balancer_config() -> dict[str, Any]:
    config = balancers.default_config({"consistency": 2.0, "reward": 0.5, "value": 0.1})
    config["harmonize"] = list(GROUPS)  # all three TD-MPC groups when a harmony balancer is chosen
    return config


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)


def _positive_int(v: Any) -> bool:
    return _is_int(v) and v > 0


def _positive(v: Any) -> bool:
    return _is_num(v) and v > 0


def _unit(v: Any) -> bool:  # (0, 1]
    return _is_num(v) and 0 < v <= 1


def _fraction(v: Any) -> bool:  # [0, 1)
    return _is_num(v) and 0 <= v < 1


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "obs_key": (lambda v: v in ("state", "image"), "state, image"),
    "latent_dim": (_positive_int, "a positive int"),
    "enc_dim": (_positive_int, "a positive int"),
    "mlp_dim": (_positive_int, "a positive int"),
    "cnn_channels": (_positive_int, "a positive int"),
    "aug_pad": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "frame_stack": (_positive_int, "a positive int"),
    "horizon": (_positive_int, "a positive int"),
    "rho": (_unit, "a number in (0, 1]"),
    "discount": (_unit, "a number in (0, 1]"),
    "tau": (_unit, "a number in (0, 1]"),
    "target_every": (_positive_int, "a positive int"),
    "grad_clip": (_positive, "a positive number"),
    "loss_clamp": (_positive, "a positive number"),
    "batch_size": (_positive_int, "a positive int"),
    "lr": (_positive, "a positive number"),
    "per": (lambda v: isinstance(v, bool), "true, false"),
    "per_alpha": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "per_beta": (lambda v: _is_num(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "plan_iterations": (_positive_int, "a positive int"),
    "plan_samples": (_positive_int, "a positive int"),
    "plan_elites": (_positive_int, "a positive int"),
    "plan_policy_fraction": (_fraction, "a number in [0, 1)"),
    "plan_temperature": (_positive, "a positive number"),
    "plan_momentum": (_fraction, "a number in [0, 1)"),
    "plan_init_std": (_positive, "a positive number"),
    "std_start": (_positive, "a positive number"),
    "min_std": (_positive, "a positive number"),
    "schedule_steps": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "policy_noise_clip": (_positive, "a positive number"),
    "balancer": (lambda v: isinstance(v, dict), "a balancer section"),
}


def check_config(backbone: str, config: dict[str, Any]) -> None:
    """ValueError (one line naming the key, the value and what is valid) for any bad agent knob."""
    if backbone != "tdmpc":
        raise ValueError(f"backbone={backbone!r} is invalid; valid choices: tdmpc")
    unknown = sorted(set(config) - set(_RULES))
    if unknown:
        raise ValueError(f"agent.{unknown[0]} is not a TD-MPC knob; valid: {', '.join(_RULES)}")
    for key, (valid, choices) in _RULES.items():
        if key not in config:
            raise ValueError(f"agent.{key} is missing; valid: {choices}")
        if not valid(config[key]):
            raise ValueError(f"agent.{key}={config[key]!r} is invalid; valid: {choices}")
    candidates = config["plan_samples"] + _policy_trajectories(config)
    if config["plan_elites"] > candidates:
        raise ValueError(
            f"agent.plan_elites={config['plan_elites']} is invalid; valid: at most plan_samples plus "
            f"policy trajectories ({candidates})"
        )
    if config["min_std"] > config["std_start"]:
        raise ValueError(f"agent.min_std={config['min_std']} is invalid; valid: at most std_start")
    balancers.validate(GROUPS, config["balancer"])


def _policy_trajectories(config: dict[str, Any]) -> int:
    return int(config["plan_policy_fraction"] * config["plan_samples"])  # TDMPC: int(mixture * samples)


def linear_schedule(start: float, end: float, duration: int, step: int) -> float:
    """TDMPC helper.py linear_schedule: start -> end over ``duration`` steps, then constant."""
    mix = 1.0 if duration == 0 else min(max(step / duration, 0.0), 1.0)
    return (1.0 - mix) * start + mix * end


# ----------------------------------------------------------------------------------------------- model
def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inp, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, out)
    )


def _q_net(inp: int, hidden: int) -> nn.Sequential:  # TDMPC helper.py q(): LayerNorm + tanh first layer
    return nn.Sequential(
        nn.Linear(inp, hidden),
        nn.LayerNorm(hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.ELU(),
        nn.Linear(hidden, 1),
    )


class PixelEncoder(nn.Module):
    """TDMPC's CNN (kernels 7/5/3/3, stride 2, ReLU) on uint8 (..., H, W, C) images (C: the stacked frames'
    channels), scaled to [0, 1]."""

    def __init__(self, shape: Sequence[int], channels: int, latent: int):
        super().__init__()
        height, width, colors = shape
        self.convs = nn.Sequential(
            nn.Conv2d(colors, channels, 7, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 5, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU(),
        )  # fmt: skip
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, colors, height, width)).numel()
        if flat == 0:
            raise ValueError(f"image size {height}x{width} is invalid; valid: at least 37x37 for this CNN")
        self.out = nn.Linear(flat, latent)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        lead = image.shape[:-3]
        x = image.reshape(-1, *image.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
        return self.out(self.convs(x).flatten(1)).reshape(*lead, -1)


class TOLD(nn.Module):
    """Encoder h, latent dynamics d, reward R, twin Q and policy pi (TDMPC tdmpc.py TOLD)."""

    def __init__(self, obs_shape: Sequence[int], act_dim: int, config: dict[str, Any]):
        super().__init__()
        latent, hidden = config["latent_dim"], config["mlp_dim"]
        if config["obs_key"] == "image":
            self.encoder: nn.Module = PixelEncoder(obs_shape, config["cnn_channels"], latent)
        else:
            self.encoder = nn.Sequential(
                nn.Linear(obs_shape[0], config["enc_dim"]), nn.ELU(), nn.Linear(config["enc_dim"], latent)
            )
        self.dynamics = _mlp(latent + act_dim, hidden, latent)
        self.reward = _mlp(latent + act_dim, hidden, 1)
        self.pi_net = _mlp(latent, hidden, act_dim)
        self.q1, self.q2 = _q_net(latent + act_dim, hidden), _q_net(latent + act_dim, hidden)
        self.noise_clip = config["policy_noise_clip"]
        self.apply(_orthogonal_init)
        for head in (self.reward, self.q1, self.q2):  # TDMPC: reward and Q start at exactly zero
            nn.init.zeros_(head[-1].weight)
            nn.init.zeros_(head[-1].bias)

    def h(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs)

    def next(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([z, a], dim=-1)
        return self.dynamics(x), self.reward(x).squeeze(-1)

    def pi(self, z: torch.Tensor, std: float = 0.0) -> torch.Tensor:
        """tanh policy mean plus clipped Gaussian noise, kept inside (-1, 1) with a straight-through clamp."""
        mu = torch.tanh(self.pi_net(z))
        if std <= 0:
            return mu
        noise = (torch.randn_like(mu) * std).clamp(-self.noise_clip, self.noise_clip)
        action = mu + noise
        eps = 1e-6  # TDMPC TruncatedNormal: clamp to [-1 + eps, 1 - eps], gradient of the unclamped sample
        return action - action.detach() + action.detach().clamp(-1 + eps, 1 - eps)

    def Q(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: N802
        x = torch.cat([z, a], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


def _orthogonal_init(module: nn.Module) -> None:  # TDMPC helper.py orthogonal_init
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        nn.init.orthogonal_(module.weight, nn.init.calculate_gain("relu"))
        nn.init.zeros_(module.bias)


def stack_frames(frames: torch.Tensor, is_first: torch.Tensor, k: int) -> torch.Tensor:
    """Time-major observations (L, B, ..., C) -> stacks of the last k (L - k + 1, B, ..., k * C), oldest
    first along the last axis (TDMPC FrameStack: np.concatenate over the deque). Inside a stack, the
    steps before an episode start repeat its first observation, as the wrapper fills its deque on reset."""
    if k == 1:
        return frames
    length = frames.shape[0]
    steps = torch.arange(length, device=frames.device)[:, None].expand(is_first.shape)
    # start[t]: the latest episode start at or before t in the sequence (-1: none seen)
    start = torch.where(is_first.bool(), steps, torch.full_like(steps, -1)).cummax(dim=0).values
    ends = torch.arange(k - 1, length, device=frames.device)  # the newest step of each stack
    offsets = torch.arange(-(k - 1), 1, device=frames.device)  # oldest first
    index = torch.maximum(ends[:, None, None] + offsets[None, :, None], start[ends][:, None, :])
    batch = torch.arange(frames.shape[1], device=frames.device)[None, None, :]
    stacked = frames[index, batch]  # (L - k + 1, k, B, ..., C)
    return stacked.movedim(1, -2).flatten(-2)


def random_shift(images: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ-style shift of each (..., H, W, C) frame by up to ``pad`` pixels with replicate padding, as whole
    pixels (what TDMPC's grid_sample with whole-pixel shifts computes); clamped indices do the padding."""
    if pad == 0:
        return images
    height, width, colors = images.shape[-3:]
    flat = images.reshape(-1, height * width, colors)
    n, device = flat.shape[0], flat.device
    shift = torch.randint(0, 2 * pad + 1, (n, 2), device=device) - pad
    rows = (torch.arange(height, device=device) + shift[:, :1]).clamp(0, height - 1)
    cols = (torch.arange(width, device=device) + shift[:, 1:]).clamp(0, width - 1)
    index = (rows[:, :, None] * width + cols[:, None, :]).reshape(n, -1, 1).expand(-1, -1, colors)
    return flat.gather(1, index).reshape(images.shape)


# ----------------------------------------------------------------------------------------------- losses
def told_losses(
    model: TOLD, target: TOLD, obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
    is_first: torch.Tensor, is_terminal: torch.Tensor, config: dict[str, Any],
    weight: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:  # fmt: skip
    """Raw TOLD losses over one batch of time-major sequences (T, B, ...), T = horizon + 1.

    Transition t -> t+1 uses action[t+1] and reward[t+1]. Each group is a rho^t-discounted sum over the
    horizon of a per-sample loss, masked from the first episode boundary inside the sequence on, clamped
    per sample (TDMPC: 1e4) and averaged over the batch, weighted by the replay's importance ``weight``
    (B,) if given. Returns (losses, detached latents z_0..z_H for the policy, mask of valid latents
    (H+1, B), each sample's new replay priority (B,): the rho-discounted |TD error| of both Qs).
    """
    horizon = obs.shape[0] - 1
    # valid[t]: transitions 0..t stay inside the episode of step 0
    valid = torch.cumprod(1.0 - is_first[1:].float(), dim=0)
    bootstrap = 1.0 - is_terminal[1:].float()
    with torch.no_grad():
        next_z_online = model.h(obs[1:])
        next_z_target = target.h(obs[1:])
        # TDMPC _td_target: online encoder and policy, target Q, noisy policy action (min_std)
        next_q = torch.min(*target.Q(next_z_online, model.pi(next_z_online, config["min_std"])))
        td_target = reward[1:] + config["discount"] * bootstrap * next_q
    z = model.h(obs[0])
    latents = [z.detach()]
    consistency = reward_loss = value = priority = 0.0
    for t in range(horizon):
        q1, q2 = model.Q(z, action[t + 1])
        z, reward_pred = model.next(z, action[t + 1])
        latents.append(z.detach())
        scale = config["rho"] ** t * valid[t]
        consistency = consistency + scale * (z - next_z_target[t]).pow(2).mean(-1)
        reward_loss = reward_loss + scale * (reward_pred - reward[t + 1]).pow(2)
        value = value + scale * ((q1 - td_target[t]).pow(2) + (q2 - td_target[t]).pow(2))
        priority = priority + scale * ((q1 - td_target[t]).abs() + (q2 - td_target[t]).abs()).detach()
    clamp = config["loss_clamp"]
    weight = torch.ones_like(valid[0]) if weight is None else weight
    losses = {
        "consistency": (consistency.clamp(max=clamp) * weight).mean(),
        "reward": (reward_loss.clamp(max=clamp) * weight).mean(),
        "value": (value.clamp(max=clamp) * weight).mean(),
    }
    latent_mask = torch.cat([torch.ones_like(valid[:1]), valid], dim=0)
    return losses, latents, latent_mask, priority.clamp(max=clamp)


def policy_loss(
    model: TOLD, latents: Sequence[torch.Tensor], mask: torch.Tensor, config: dict[str, Any]
) -> torch.Tensor:
    """TDMPC update_pi: -min(Q1, Q2)(z_t, pi(z_t)) discounted by rho^t over the detached latents."""
    loss = 0.0
    for t, z in enumerate(latents):
        q = torch.min(*model.Q(z, model.pi(z, config["min_std"])))
        loss = loss + config["rho"] ** t * (-q * mask[t]).mean()
    return loss


# ----------------------------------------------------------------------------------------------- planning
class LatentModel(Protocol):
    def next(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def Q(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...  # noqa: N802
    def pi(self, z: torch.Tensor, std: float = 0.0) -> torch.Tensor: ...


def estimate_value(
    model: LatentModel, z: torch.Tensor, actions: torch.Tensor, discount: float, min_std: float
) -> torch.Tensor:
    """Discounted model return of action sequences (..., H, A) from latents (..., L), plus the terminal
    min-Q value of the noisy policy (TDMPC estimate_value)."""
    ret, scale = 0.0, 1.0
    for t in range(actions.shape[-2]):
        z, reward = model.next(z, actions[..., t, :])
        ret = ret + scale * reward
        scale *= discount
    return ret + scale * torch.min(*model.Q(z, model.pi(z, min_std)))


@torch.no_grad()
def plan_actions(
    model: LatentModel, z: torch.Tensor, warm_mean: torch.Tensor | None, horizon: int, std_floor: float,
    explore: bool, config: dict[str, Any],
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """MPPI over ``horizon`` steps for each of N latents z (N, L) with policy trajectories, momentum and an
    std floor (TDMPC plan). ``warm_mean`` (N, H', A) is the previous plan's mean (shifted one step) or
    None. Returns (actions (N, A) in [-1, 1], this plan's mean (N, H, A))."""
    n = z.shape[0]
    act_dim = model.pi(z[:1]).shape[-1]
    samples, elites = config["plan_samples"], config["plan_elites"]
    num_pi = _policy_trajectories(config)
    min_std, discount = config["min_std"], config["discount"]
    if num_pi > 0:
        pi_actions = z.new_empty(n, num_pi, horizon, act_dim)
        zp = z[:, None].expand(n, num_pi, z.shape[-1])
        for t in range(horizon):
            pi_actions[:, :, t] = model.pi(zp, min_std)
            zp, _ = model.next(zp, pi_actions[:, :, t])
    zs = z[:, None].expand(n, samples + num_pi, z.shape[-1])
    mean = z.new_zeros(n, horizon, act_dim)
    std = z.new_full((n, horizon, act_dim), config["plan_init_std"])
    if warm_mean is not None:
        keep = min(horizon - 1, warm_mean.shape[1] - 1)
        mean[:, :keep] = warm_mean[:, 1 : keep + 1]
    for _ in range(config["plan_iterations"]):
        noise = torch.randn(n, samples, horizon, act_dim, device=z.device)
        actions = (mean[:, None] + std[:, None] * noise).clamp(-1, 1)
        if num_pi > 0:
            actions = torch.cat([actions, pi_actions], dim=1)
        value = estimate_value(model, zs, actions, discount, min_std).nan_to_num(0.0)
        elite_value, idx = torch.topk(value, elites, dim=1)
        elite_actions = torch.gather(actions, 1, idx[:, :, None, None].expand(n, elites, horizon, act_dim))
        score = torch.exp(
            config["plan_temperature"] * (elite_value - elite_value.max(1, keepdim=True).values)
        )
        score = score / score.sum(1, keepdim=True)
        weights = score[:, :, None, None]
        new_mean = (weights * elite_actions).sum(1)
        new_std = ((weights * (elite_actions - new_mean[:, None]).pow(2)).sum(1)).sqrt().clamp(std_floor, 2.0)
        mean = config["plan_momentum"] * mean + (1 - config["plan_momentum"]) * new_mean
        std = new_std
    # TDMPC: execute the first action of one elite drawn by score; explore with the final std
    choice = torch.multinomial(score, 1)[:, 0]
    action = elite_actions[torch.arange(n, device=z.device), choice, 0]
    if explore:
        action = action + std[:, 0] * torch.randn_like(action)
    return action.clamp(-1, 1), mean


# ----------------------------------------------------------------------------------------------- agent
class TDMPC:
    """The harness Agent: TOLD + EMA target, model and policy optimizers, a loss balancer, the planner."""

    def __init__(
        self, obs_space: gym.spaces.Dict, act_space: gym.spaces.Box, config: dict[str, Any], device: Any
    ):
        self.config = config
        self.device = torch.device(device)
        self.obs_key = config["obs_key"]
        self.batch_size = config["batch_size"]
        self.stack = config["frame_stack"]
        self.batch_length = sequence_length(config)
        self.act_dim = int(act_space.shape[0])
        *lead, channels = obs_space[self.obs_key].shape
        self.model = TOLD((*lead, channels * self.stack), self.act_dim, config).to(self.device)
        self.target = copy.deepcopy(self.model).requires_grad_(False)
        self.balancer = balancers.make(GROUPS, config["balancer"]).to(self.device)
        pi_params = set(self.model.pi_net.parameters())
        self.model_params = [p for p in self.model.parameters() if p not in pi_params]
        self.shared_params = [*self.model.encoder.parameters(), *self.model.dynamics.parameters()]
        self.clip_params = self.model_params + (
            list(self.balancer.parameters()) if config["balancer"]["clip_with_model"] else []
        )
        # TDMPC: one Adam for the model (balancer parameters join it), one for the policy, same lr
        balancer_group = balancers.param_groups(self.balancer, config["balancer"], config["lr"])
        self.optimizer = torch.optim.Adam([{"params": self.model_params}, *balancer_group], lr=config["lr"])
        self.pi_optimizer = torch.optim.Adam(self.model.pi_net.parameters(), lr=config["lr"])
        self.step = 0  # agent steps acted in train mode: drives the horizon and std schedules
        self.updates = 0
        self.prioritized = (config["per_alpha"], config["per_beta"]) if config["per"] else None
        self.priorities = np.zeros(0, np.float32)  # of the last batch's sequences, for the replay

    # --- acting
    def horizon(self) -> int:
        """TDMPC horizon_schedule linear(1, horizon, 25000), truncated to an int."""
        h = self.config["horizon"]
        return int(min(h, linear_schedule(1, h, self.config["schedule_steps"], self.step)))

    def std_floor(self) -> float:
        """TDMPC std_schedule linear(0.5, min_std, 25000): the lower bound of the planner's std."""
        c = self.config
        return linear_schedule(c["std_start"], c["min_std"], c["schedule_steps"], self.step)

    def policy(self, obs: dict[str, np.ndarray], state: Any, mode: str) -> tuple[np.ndarray, Any]:
        """One planning call for a batch of environments at the current schedules. The state carries the
        last plan's mean (warm start) and the last k observations (the frame stack)."""
        if mode not in ("train", "eval"):
            raise ValueError(f"mode={mode!r} is invalid; valid choices: train, eval")
        x = torch.as_tensor(np.ascontiguousarray(obs[self.obs_key]), device=self.device)
        x = x if self.obs_key == "image" else x.float()
        fresh = x[:, None].expand(x.shape[0], self.stack, *x.shape[1:])  # a reset fills the stack with x
        if state is None:
            warm, frames = None, fresh.clone()
        else:
            warm, frames = state["mean"], torch.cat([state["frames"][:, 1:], x[:, None]], dim=1)
            if "is_first" in obs:
                first = torch.as_tensor(np.ascontiguousarray(obs["is_first"]), device=self.device).bool()
                warm = torch.where(first[:, None, None], torch.zeros_like(warm), warm)
                frames = torch.where(first.reshape(-1, *[1] * (frames.ndim - 1)), fresh, frames)
        with torch.no_grad():
            z = self.model.h(frames.movedim(1, -2).flatten(-2))
            action, mean = plan_actions(
                self.model, z, warm, self.horizon(), self.std_floor(), mode == "train", self.config
            )
        if mode == "train":
            self.step += action.shape[0]
        return action.float().cpu().numpy(), {"mean": mean, "frames": frames}

    # --- learning
    def _tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        def time_major(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(x), device=self.device).transpose(0, 1)

        is_first = time_major(batch["is_first"])
        obs = stack_frames(time_major(batch[self.obs_key]), is_first, self.stack)
        obs = random_shift(obs, self.config["aug_pad"]) if self.obs_key == "image" else obs.float()
        skip = self.stack - 1  # the earlier steps only fill the first stack
        weight = batch.get("weight") if self.prioritized else None
        return {
            "obs": obs,
            "action": time_major(batch["action"])[skip:].float(),
            "reward": time_major(batch["reward"])[skip:].float(),
            "is_first": is_first[skip:],
            "is_terminal": time_major(batch["is_terminal"])[skip:],
            "weight": None if weight is None else torch.as_tensor(weight, device=self.device).float(),
        }

    def train(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        c = self.config
        data = self._tensors(batch)
        losses, latents, mask, priority = told_losses(self.model, self.target, **data, config=c)
        shared = self.shared_params if self.balancer.needs_shared_params else None
        total, weights = self.balancer(losses, shared)
        self.optimizer.zero_grad(set_to_none=True)
        # TDMPC scales the model gradient by 1 / horizon (a hook on the weighted loss)
        (total / (data["obs"].shape[0] - 1)).backward()
        self.balancer.after_backward(shared)
        grad_norm = nn.utils.clip_grad_norm_(self.clip_params, c["grad_clip"])
        self.optimizer.step()

        pi_loss = policy_loss(self.model, latents, mask, c)
        pi_params = list(self.model.pi_net.parameters())
        self.pi_optimizer.zero_grad(set_to_none=True)
        pi_loss.backward(inputs=pi_params)  # Q and encoder get no gradient from the policy loss
        nn.utils.clip_grad_norm_(pi_params, c["grad_clip"])
        self.pi_optimizer.step()

        if self.updates % c["target_every"] == 0:
            with torch.no_grad():
                for p, p_target in zip(self.model.parameters(), self.target.parameters()):
                    p_target.lerp_(p, c["tau"])
        self.updates += 1
        names = [f"loss/{g}" for g in GROUPS] + [f"weight/{g}" for g in GROUPS] + ["loss/pi", "loss/total"]
        names += ["grad_norm"]
        values = [losses[g] for g in GROUPS] + [weights[g] for g in GROUPS] + [pi_loss, total, grad_norm]
        metrics = dict(zip(names, torch.stack([v.detach().float().reshape(()) for v in values]).tolist()))
        self.priorities = priority.float().cpu().numpy()
        metrics.update(horizon=float(self.horizon()), std_floor=self.std_floor())
        return metrics

    def after_update(self, batch: dict[str, np.ndarray], metrics: dict[str, float]) -> np.ndarray | None:
        """The priorities of the batch's sequences from the last ``train`` (TDMPC: rho-discounted |TD error|)."""
        return self.priorities if self.prioritized else None

    # --- checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "target": self.target.state_dict(),
            "balancer": self.balancer.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "pi_optimizer": self.pi_optimizer.state_dict(),
            "step": self.step,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.target.load_state_dict(state["target"])
        self.balancer.load_state_dict(state["balancer"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.pi_optimizer.load_state_dict(state["pi_optimizer"])
        self.step, self.updates = int(state["step"]), int(state["updates"])


def check_observations(backbone: str, keys: list[str], config: dict[str, Any]) -> None:
    """TD-MPC encodes one observation, agent.obs_key; the env must provide it."""
    if config["obs_key"] not in keys:
        raise ValueError(
            f"agent.obs_key={config['obs_key']!r} is invalid for this env; valid: {', '.join(keys)}"
        )


def make(
    backbone: str,
    obs_space: gym.spaces.Dict,
    act_space: gym.spaces.Space,
    config: dict[str, Any],
    device: Any,
) -> TDMPC:
    """A TD-MPC agent for these spaces; ValueError for a bad config, a discrete action space or a missing
    observation key."""
    check_config(backbone, config)
    if not isinstance(act_space, gym.spaces.Box):
        raise ValueError(f"action space {act_space} is invalid for tdmpc; valid: continuous Box actions")
    check_observations(backbone, list(obs_space.spaces), config)
    return TDMPC(obs_space, act_space, config, device)
