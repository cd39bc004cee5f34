"""DreamerV2 and DreamerV3: world model + actor-critic in imagination, one module for both backbones.

The version lives in the config (``agent.version``); every difference between V2 and V3 is a knob there
(see ``agents.dreamer_config``). Loss groups for the balancer: ``obs`` (decoder), ``reward``, ``dyn`` (the KL
after balancing/free bits; for V3 (0.5 dyn + 0.1 rep) / 0.6) and ``cont`` when the continue head is on.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents import balancers
from agents.dreamer_config import balancer_config, check_config, default_config, loss_groups
from agents.nets import (
    ConvDecoder,
    ConvEncoder,
    Normal,
    OneHot,
    TanhNormal,
    TruncNormal,
    TwoHot,
    init_block_,
    init_weights_,
    mlp,
    one_hot,
    symlog,
)
from agents.rssm import RSSM, State, dv2_kl_loss, dv3_kl_loss, latent_entropy, latent_kl_terms

__all__ = ["default_config", "check_config", "make", "Dreamer", "WorldModel", "ActorCritic", "lambda_return"]

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def lambda_return(reward: torch.Tensor, value: torch.Tensor, disc: torch.Tensor, lam: float) -> torch.Tensor:
    """TD(lambda) returns over an imagined trajectory (DV3 agent.py lambda_return).

    reward (H, N): reward on entering state t+1; value (H+1, N): values of states 0..H; disc (H, N): discount
    times continue flag of state t+1. ret_t = r_t + d_t ((1 - lam) v_{t+1} + lam ret_{t+1}), ret_H = v_H.
    """
    rets = [value[-1]]
    interm = reward + disc * value[1:] * (1 - lam)
    for t in reversed(range(len(reward))):
        rets.append(interm[t] + disc[t] * lam * rets[-1])
    return torch.stack(rets[1:][::-1])


class ReturnNorm(nn.Module):
    """DV3 retnorm perc_ema: EMA of the 5th/95th return percentiles; scale = max(1/max, high - low)."""

    def __init__(self, decay: float, limit: float, low: float, high: float):
        super().__init__()
        self.decay, self.limit = decay, limit
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        # on the model's device, so an update copies nothing from the host
        self.register_buffer("quantiles", torch.tensor([low / 100, high / 100]), persistent=False)

    @torch.no_grad()
    def update(self, ret: torch.Tensor) -> torch.Tensor:
        flat = ret.detach().float().flatten()
        q = torch.quantile(flat, self.quantiles)
        self.low.lerp_(q[0], 1 - self.decay)
        self.high.lerp_(q[1], 1 - self.decay)
        return torch.clamp_min(self.high - self.low, 1 / self.limit)


class WorldModel(nn.Module):
    """Encoder, RSSM, decoder and reward/continue heads. ``loss`` returns the balancer's group losses.

    A subclass (e.g. DreamerPro) replaces the reconstruction term by overriding ``obs_loss``."""

    def __init__(self, obs_space: gym.spaces.Dict, actions: int, cfg: dict[str, Any]):
        super().__init__()
        self.cfg = cfg
        act, norm, units, layers = cfg["act"], cfg["norm"], cfg["units"], cfg["layers"]
        self.image_shape = tuple(obs_space["image"].shape) if "image" in obs_space.spaces else None
        self.state_dim = int(np.prod(obs_space["state"].shape)) if "state" in obs_space.spaces else 0
        embed = 0
        if self.image_shape:
            height, width, channels = self.image_shape
            self.cnn_encoder = ConvEncoder(channels, height, cfg["cnn_depth"], act, cfg["cnn"])
            embed += self.cnn_encoder.out_dim
        if self.state_dim:
            self.mlp_encoder = mlp(self.state_dim, 0, units, layers, act, norm)
            embed += units
        self.rssm = RSSM(embed, actions, cfg)
        feat = self.rssm.feat_dim
        if self.image_shape:
            self.cnn_decoder = ConvDecoder(feat, channels, height, cfg["cnn_depth"], act, cfg["cnn"])
        if self.state_dim:
            self.mlp_decoder = mlp(feat, self.state_dim, units, layers, act, norm)
        self.twohot = TwoHot(cfg["bins"])
        reward_out, outscale = (cfg["bins"], 0.0) if cfg["reward_head"] == "twohot" else (1, 1.0)
        self.reward_head = mlp(feat, reward_out, units, layers, act, norm, outscale)
        self.cont_head = mlp(feat, 1, units, layers, act, norm) if cfg["pred_cont"] else None
        self._initialise(cfg["init"])

    def _initialise(self, style: str) -> None:
        if style == "torch":
            return
        # HD builds its GRU cell directly rather than through Module.get, so there it keeps torch's init;
        # Keras (glorot) initialises the GRU's Dense like any other
        init_weights_(self, style, skip=(self.rssm.cell.linear,) if style == "xavier" else ())
        for parts in self.rssm.split_linears():
            fan_in = sum(part.in_features for part in parts)
            for part in parts:
                init_block_(part.weight, style, fan_in, part.out_features)

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every loss group reaches (encoder + RSSM): what Nash-MTL balances over."""
        encoders = [m for m in (getattr(self, "cnn_encoder", None), getattr(self, "mlp_encoder", None)) if m]
        return [p for m in [*encoders, self.rssm] for p in m.parameters()]

    def encode(self, data: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        if self.image_shape:
            image = data["image"]
            parts.append(self.cnn_encoder(image.flatten(0, 1)).reshape(*image.shape[:2], -1))
        if self.state_dim:
            state = symlog(data["state"]) if self.cfg["symlog_inputs"] else data["state"]
            parts.append(self.mlp_encoder(state))
        return torch.cat(parts, -1)

    def reward(self, feat: torch.Tensor) -> torch.Tensor:
        out = self.reward_head(feat)
        return self.twohot.decode(out) if self.cfg["reward_head"] == "twohot" else out[..., 0].float()

    def discount(self, feat: torch.Tensor) -> torch.Tensor:
        """The discount of each imagined state: gamma without a continue head. HD's DV2 head is trained on
        gamma * (1 - terminal) and its mean is the discount; DV3's predicts continuation (mode or mean, as
        configured), times gamma."""
        gamma = self.cfg["discount"]
        if self.cont_head is None:
            return torch.full(feat.shape[:-1], gamma, device=feat.device)
        prob = torch.sigmoid(self.cont_head(feat)[..., 0].float())
        if self.cfg["returns"] == "dv2":
            return prob
        return gamma * ((prob > 0.5).float() if self.cfg["imag_cont"] == "mode" else prob)

    def obs_loss(self, feat: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """Reconstruction loss per (B, T): image and state terms summed over their dimensions."""
        loss = torch.zeros(feat.shape[:2], device=feat.device)
        if self.image_shape:
            target = data["image"]
            mean = self.cnn_decoder(feat.flatten(0, 1)).reshape(target.shape)
            err = (mean.float() - target).square().sum((-3, -2, -1))
            loss = loss + (0.5 * err if self.cfg["image_loss"] == "gauss" else err)
        if self.state_dim:
            target = symlog(data["state"]) if self.cfg["state_loss"] == "symlog_mse" else data["state"]
            err = (self.mlp_decoder(feat).float() - target).square().sum(-1)
            loss = loss + (0.5 * err if self.cfg["state_loss"] == "gauss" else err)
        return loss

    def head_losses(self, feat: torch.Tensor, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """obs, reward and (optionally) cont group losses given posterior features (B, T, F)."""
        losses = {"obs": self.obs_loss(feat, data).mean()}
        reward = data["reward"]
        reward = torch.tanh(reward) if self.cfg["clip_rewards"] == "tanh" else reward
        out = self.reward_head(feat)
        if self.cfg["reward_head"] == "twohot":
            losses["reward"] = self.twohot.loss(out, reward).mean()
        else:
            losses["reward"] = (0.5 * (out[..., 0].float() - reward).square()).mean()
        if self.cont_head is not None:
            target = 1 - data["is_terminal"]
            if self.cfg["returns"] == "dv2":  # HD preprocess: discount = gamma * (1 - is_terminal)
                target = self.cfg["discount"] * target
            logits = self.cont_head(feat)[..., 0].float()
            losses["cont"] = F.binary_cross_entropy_with_logits(logits, target)
        return losses

    def loss(
        self, data: dict[str, torch.Tensor], state: State | None = None
    ) -> tuple[State, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(posterior, group losses, extra metrics) for a batch of sequences on the device, starting from
        ``state`` (the initial state if None; reset where is_first)."""
        embed = self.encode(data)
        post, prior = self.rssm.observe(embed, data["action"], data["is_first"], state)
        losses = self.head_losses(self.rssm.feat(post), data)
        dyn, rep = latent_kl_terms(post, prior)
        cfg = self.cfg
        metrics = {"kl": rep.mean().detach()}
        if cfg["kl"] == "balance":
            losses["dyn"] = dv2_kl_loss(dyn, rep, cfg["kl_balance"], cfg["kl_free"], cfg["kl_free_avg"])
        else:
            losses["dyn"], metrics["loss/kl_dyn"], metrics["loss/kl_rep"] = dv3_kl_loss(
                dyn, rep, cfg["kl_dyn_scale"], cfg["kl_rep_scale"], cfg["kl_free"]
            )
        metrics["prior_entropy"] = latent_entropy(prior).detach()
        metrics["post_entropy"] = latent_entropy(post).detach()
        return post, losses, metrics


class ActorCritic(nn.Module):
    """Actor and critic trained on imagined trajectories of the world model."""

    def __init__(self, feat: int, actions: int, discrete: bool, cfg: dict[str, Any]):
        super().__init__()
        self.cfg, self.discrete = cfg, discrete
        act, norm, units, layers = cfg["act"], cfg["norm"], cfg["units"], cfg["layers"]
        self.actor = mlp(feat, actions if discrete else 2 * actions, units, layers, act, norm)
        critic_out, outscale = (cfg["bins"], 0.0) if cfg["critic_head"] == "twohot" else (1, 1.0)
        self.critic = mlp(feat, critic_out, units, layers, act, norm, outscale)
        self._initialise(cfg["init"])
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.twohot = TwoHot(cfg["bins"])
        self.retnorm = ReturnNorm(
            cfg["return_norm_decay"], cfg["return_norm_max"], cfg["return_norm_low"], cfg["return_norm_high"]
        )
        self.updates = 0  # a Python int: reading a device counter would sync every update

    def _initialise(self, style: str) -> None:
        if style == "torch":
            return
        init_weights_(self, style)
        if not self.discrete:  # the references' mean and std are two output layers: init each by its fans
            head = self.actor[-1]
            half = head.out_features // 2
            for rows in (head.weight[:half], head.weight[half:]):
                init_block_(rows, style, head.in_features, half)

    def dist(self, out: torch.Tensor) -> Normal | TruncNormal | TanhNormal | OneHot:
        """The action distribution from actor outputs (DV2 dists trunc_normal; PRO tanh_normal; DV3
        normal/onehot)."""
        cfg = self.cfg
        if self.discrete:
            return OneHot(out, cfg["actor_unimix"])
        mean, std = out.float().chunk(2, -1)
        lo, hi = cfg["actor_min_std"], cfg["actor_max_std"]
        if (
            cfg["actor_dist"] == "trunc_normal"
        ):  # DV2 nets.py DistLayer, init_std 0: 2 sigmoid(x / 2) + min_std
            return TruncNormal(torch.tanh(mean), 2 * torch.sigmoid(std / 2) + lo)
        if cfg["actor_dist"] == "tanh_normal":  # PRO nets.py DistLayer, init_std 0
            return TanhNormal(5 * torch.tanh(mean / 5), F.softplus(std) + lo)
        return Normal(torch.tanh(mean), (hi - lo) * torch.sigmoid(std + 2) + lo)  # DV3 nets.py MLP dist

    def value(self, net: nn.Module, feat: torch.Tensor) -> torch.Tensor:
        return self._decode(net(feat))

    def imagine(self, wm: WorldModel, start: State) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Roll the prior forward ``imag_horizon`` steps with the actor. Returns feats (H+1, N, F) with
        gradients through the dynamics, the actor outputs (H, N, O) and the actions taken (H, N, A)."""
        state = start
        feats, outs, actions = [wm.rssm.feat(start)], [], []
        for _ in range(self.cfg["imag_horizon"]):
            out = self.actor(feats[-1].detach())  # DV3: the policy sees sg(state)
            action = self.dist(out).rsample()
            state = wm.rssm.img_step(state, action)
            feats.append(wm.rssm.feat(state))
            outs.append(out)
            actions.append(action)
        return torch.stack(feats), torch.stack(outs), torch.stack(actions)

    def losses(
        self, wm: WorldModel, start: State, start_cont: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(actor loss, critic loss, metrics) from imagination starting at ``start`` (N, ...)."""
        feats, outs, actions = self.imagine(wm, start)
        critic_out = self.critic(feats)  # gradients reach the actor (via feats) and the critic
        fast = self._decode(critic_out)
        value = self.value(self.slow_critic, feats) if self.cfg["critic_target"] == "slow" else fast
        if self.cfg["returns"] == "dv2":
            actor_loss, ret, weight, scale, entropy, reward = self._actor_dv2(
                wm, feats, outs, actions, value, fast, start_cont
            )
        else:
            actor_loss, ret, weight, scale, entropy, reward = self._actor_dv3(
                wm, feats, outs, actions, value, start_cont
            )
        critic_loss = self._critic_loss(critic_out, fast, feats, ret.detach(), weight)
        metrics = {
            "entropy": entropy.mean().detach(),
            "return": ret.mean().detach(),
            "return_scale": scale.detach(),
            "imag_reward": reward.mean().detach(),
            "value": fast.mean().detach(),
        }
        return actor_loss, critic_loss, metrics

    @property
    def actor_grad(self) -> str:
        """How the actor learns here: backprop through the dynamics, reinforce, or both mixed."""
        return self.cfg["actor_grad_disc"] if self.discrete else self.cfg["actor_grad_cont"]

    def _decode(self, critic_out: torch.Tensor) -> torch.Tensor:
        return (
            self.twohot.decode(critic_out)
            if self.cfg["critic_head"] == "twohot"
            else critic_out[..., 0].float()
        )

    def _actor_dv2(self, wm, feats, outs, actions, value, fast, start_cont):
        """HD agents/actor_critic.py (DV2): states z_0..z_H with reward r(z_t) and discount d(z_t) (d_0 from
        the data), returns t_t = r_t + d_t ((1 - lam) v_t+1 + lam t_t+1) for t < H. The action taken at z_t
        leads into z_t+1, so the actor at z_0..z_H-2 is trained towards t_1..t_H-1 (baseline v(z_t) under
        reinforce), weighted by cumprod(1, d_0, d_1, ...); the critic at z_0..z_H-1 towards t_0..t_H-1.

        ``dv2_actor: tf`` (danijar/dreamerv2's TensorFlow agent.py ActorCritic, which DreamerPro forks): the
        actor at z_0..z_H-1 towards t_0..t_H-1, the reinforce baseline from the online critic, the entropy
        bonus kept out of the critic's targets (TF tensors are immutable), and d_0 from the discount head."""
        cfg = self.cfg
        reward = wm.reward(feats)
        tf = cfg["dv2_actor"] == "tf"
        if tf:  # PRO dreamerv2/agent.py:174-177 WorldModel.imagine: the start's discount from the head too
            disc = wm.discount(feats)
        else:
            disc = torch.cat([cfg["discount"] * start_cont[None], wm.discount(feats[1:])])
        weight = torch.cumprod(torch.cat([torch.ones_like(disc[:1]), disc[:-1]]), 0).detach()
        ret = lambda_return(reward[:-1], value, disc[:-1], cfg["lambda"])
        steps = len(ret) if tf else len(ret) - 1  # the actor trains at z_0..z_steps-1
        target, baseline = (ret, fast[:steps]) if tf else (ret[1:], value[:steps])
        dist = self.dist(outs[:steps])
        backprop = self.actor_grad == "backprop"
        if backprop:
            objective = target
        else:
            # tf: PRO agent.py:260,264 log_prob(action) of the imagined sample, not stopped: the reinforce term's
            # gradient also flows through the reparameterised action; HD detaches it
            taken = actions[:steps] if tf else actions[:steps].detach()
            objective = dist.log_prob(taken) * (target - baseline).detach()
            if self.actor_grad == "both":
                # DV2 agent.py actor_grad both: mix * dynamics + (1 - mix) * reinforce
                objective = cfg["actor_grad_mix"] * target + (1 - cfg["actor_grad_mix"]) * objective
        entropy = dist.entropy()
        actor_loss = -(weight[:steps] * (objective + cfg["actor_ent"] * entropy)).mean()
        if backprop and not tf:
            # HD actor_loss: `objective = target[1:]` is a view of the returns and `objective += ent_scale * ent`
            # adds the bonus in place, so HD's critic regresses t_1..t_H-1 + actor_ent * H(pi(z_0..z_H-2))
            ret = torch.cat([ret[:1], ret[1:] + cfg["actor_ent"] * entropy.detach()])
        return actor_loss, ret, weight, ret.new_ones(()), entropy, reward

    def _actor_dv3(self, wm, feats, outs, actions, value, start_cont):
        """DV3 agent.py ImagActorCritic/VFunction.score: reward r(z_t+1), returns from the critic, the
        advantage (ret - v) / scale with the baseline v not stopped (the 2023 code), weights cumprod(d)/gamma."""
        cfg = self.cfg
        reward = wm.reward(feats[1:])
        disc = torch.cat([cfg["discount"] * start_cont[None], wm.discount(feats[1:])])
        weight = (torch.cumprod(disc, 0) / cfg["discount"]).detach()  # DV3 agent.py traj["weight"]
        ret = lambda_return(reward, value, disc[1:], cfg["lambda"])
        scale = self.retnorm.update(ret) if cfg["return_norm"] == "perc_ema" else ret.new_ones(())
        adv = (ret - value[:-1]) / scale
        dist = self.dist(outs)
        if self.actor_grad == "backprop":
            actor_loss = -adv
        else:
            actor_loss = -dist.log_prob(actions.detach()) * adv.detach()
        entropy = dist.entropy()
        actor_loss = (weight[:-1] * (actor_loss - cfg["actor_ent"] * entropy)).mean()
        return actor_loss, ret, weight, scale, entropy, reward

    def _critic_loss(self, critic_out, fast, feats, target, weight):
        """Critic at the states that have a return, towards it (plus DV3's slow-critic regulariser)."""
        cfg = self.cfg
        steps = len(target)
        with torch.no_grad():
            slow = self.value(self.slow_critic, feats[:steps]) if cfg["critic_slowreg"] > 0 else None
        if cfg["critic_head"] == "twohot":
            loss = self.twohot.loss(critic_out[:steps], target)
            if slow is not None:
                loss = loss + cfg["critic_slowreg"] * self.twohot.loss(critic_out[:steps], slow)
        else:
            loss = 0.5 * (fast[:steps] - target).square()
            if slow is not None:
                loss = loss + cfg["critic_slowreg"] * 0.5 * (fast[:steps] - slow).square()
        return (weight[:steps] * loss).mean()

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        """DV2: hard copy every 100 updates; DV3: EMA with fraction 0.02 every update. The first update
        copies outright in both (DV3 jaxutils.py SlowUpdater need_init; DV2 agent.py mix 1.0 at update 0)."""
        if self.updates % self.cfg["slow_critic_every"] == 0:
            torch._foreach_lerp_(
                list(self.slow_critic.parameters()),
                list(self.critic.parameters()),
                1.0 if self.updates == 0 else self.cfg["slow_critic_fraction"],
            )
        self.updates += 1


class Dreamer:
    """The Agent (agents/base.py): world model, balancer, actor-critic and their optimizers.

    Subclasses (DreamerPro) swap the world model by setting ``world_model_class``."""

    world_model_class: type[WorldModel] = WorldModel
    prioritized = None  # uniform replay

    def __init__(
        self, obs_space: gym.spaces.Dict, act_space: gym.Space, cfg: dict[str, Any], device: torch.device
    ):
        self.cfg, self.device = cfg, torch.device(device)
        self.batch_size, self.batch_length = cfg["batch_size"], cfg["batch_length"]
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        self.actions = int(act_space.n) if self.discrete else int(np.prod(act_space.shape))
        self.obs_keys = [k for k in ("image", "state") if k in obs_space.spaces]
        self.wm = self.world_model_class(obs_space, self.actions, cfg)
        self.ac = ActorCritic(self.wm.rssm.feat_dim, self.actions, self.discrete, cfg)
        self.groups = loss_groups(cfg)
        self.balancer = balancers.make(self.groups, balancer_config(cfg))
        self.modules = nn.ModuleDict({"wm": self.wm, "ac": self.ac, "balancer": self.balancer}).to(
            self.device
        )
        self.clip_with_model = bool(cfg["balancer"].get("clip_with_model", True))
        self.carry: State | None = None  # the last posterior state of the previous update (carry_state)
        balancer_group = balancers.param_groups(self.balancer, cfg["balancer"], cfg["model_lr"])
        self.model_opt = _adam([{"params": list(self.wm.parameters())}, *balancer_group], cfg, "model")
        self.actor_opt = _adam(self.ac.actor.parameters(), cfg, "actor")
        self.critic_opt = _adam(self.ac.critic.parameters(), cfg, "critic")
        precision = cfg["precision"]
        if precision == "auto":  # the references' fp16 mixed precision where it exists: on CUDA
            precision = "fp16" if self.device.type == "cuda" else "fp32"
        self.dtype = _DTYPES[precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        self.cuda_graphs = cfg["cuda_graphs"]
        if cfg["compile"] == "step":  # the per-step functions dominate; compiling them fuses small ops
            self.wm.rssm.obs_step = torch.compile(self.wm.rssm.obs_step)
            self.wm.rssm.img_step = torch.compile(self.wm.rssm.img_step)
        elif cfg["compile"] == "scan":  # the two launch-bound loops, each captured whole (static shapes)
            mode = "reduce-overhead" if self.cuda_graphs else None
            self.wm.rssm.scan = torch.compile(self.wm.rssm.scan, mode=mode)
            self.ac.imagine = torch.compile(self.ac.imagine, mode=mode)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def to_device(self, batch: dict[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
        """Numpy batch -> device tensors; images go as uint8 and are normalised on the device."""
        data = {}
        for key, value in batch.items():
            if key in ("image", "state", "action", "reward", "is_first", "is_terminal"):
                # a pinned tensor (bench's batch prefetch) copies without blocking the host
                data[key] = torch.as_tensor(value).to(self.device, non_blocking=True)
        if "image" in data:  # (..., H, W, C) uint8 -> (..., C, H, W) in [-0.5, 0.5] (DV2/DV3 preprocess)
            data["image"] = data["image"].movedim(-1, -3).float() / 255.0 - 0.5
        for key in ("state", "action", "reward"):
            if key in data:
                data[key] = data[key].float()
        for key in ("is_first", "is_terminal"):
            if key in data:
                data[key] = data[key].float()
        return data

    def _step(
        self, opt: torch.optim.Optimizer, loss: torch.Tensor, params: list, clip: float, **kw
    ) -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward(inputs=params, **kw)
        self.scaler.unscale_(opt)
        norm = nn.utils.clip_grad_norm_(params, clip, foreach=True)
        self.scaler.step(opt)
        return norm

    def train(self, batch: dict[str, np.ndarray | torch.Tensor]) -> dict[str, float]:
        scalars = self.train_scalars(batch)
        values = torch.stack([v.detach().float().reshape(()) for v in scalars.values()]).tolist()  # one sync
        return dict(zip(scalars, values))

    def train_scalars(self, batch: dict[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
        """One update; its metrics stay on the device: nothing in here waits for the device (with
        precision fp16 the loss scaler's overflow check does; bf16 and fp32 need no scaler)."""
        cfg = self.cfg
        if self.cuda_graphs:  # a new iteration: the graphs may overwrite the previous update's outputs
            torch.compiler.cudagraph_mark_step_begin()
        data = self.to_device(batch)
        with self._autocast():
            carry = self.carry if self.carry and len(self.carry["deter"]) == len(data["is_first"]) else None
            post, losses, metrics = self.wm.loss(data, carry)
            shared = self.wm.shared_parameters() if self.balancer.needs_shared_params else None
            total, weights = self.balancer(losses, shared)
        wm_params = list(self.wm.parameters())
        bal_params = list(self.balancer.parameters())
        self.model_opt.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.model_opt)
        self.balancer.after_backward(shared)
        if self.clip_with_model:  # HD: the harmony scalars sit inside the world-model clipping
            model_norm = nn.utils.clip_grad_norm_(wm_params + bal_params, cfg["model_clip"], foreach=True)
        else:
            model_norm = nn.utils.clip_grad_norm_(wm_params, cfg["model_clip"], foreach=True)
            if bal_params:
                nn.utils.clip_grad_norm_(bal_params, cfg["model_clip"], foreach=True)
        self.scaler.step(self.model_opt)
        if cfg["carry_state"]:
            # a copy: with cuda_graphs, post lives in graph memory that the next update overwrites
            self.carry = {k: post[k][:, -1].detach().clone() for k in ("deter", "stoch")}

        start = {k: v.detach() for k, v in post.items() if k in ("deter", "stoch")}
        start_cont = 1 - data["is_terminal"]
        if cfg["returns"] == "dv2" and cfg["dv2_actor"] == "tf" and cfg["pred_cont"]:
            # PRO dreamerv2/agent.py:73-75 Agent.train (danijar/dreamerv2's alike): "Last step could be
            # terminal", so each sequence's last posterior state starts no imagination
            start = {k: v[:, :-1] for k, v in start.items()}
            start_cont = start_cont[:, :-1]
        start = {k: v.flatten(0, 1) for k, v in start.items()}
        start_cont = start_cont.flatten()
        if 0 < cfg["imag_starts"] < len(start_cont):
            idx = torch.randperm(len(start_cont), device=self.device)[: cfg["imag_starts"]]
            start = {k: v[idx] for k, v in start.items()}
            start_cont = start_cont[idx]
        self.wm.requires_grad_(False)  # imagination backprops into the actor only
        with self._autocast():
            actor_loss, critic_loss, ac_metrics = self.ac.losses(self.wm, start, start_cont)
        actor_params = list(self.ac.actor.parameters())
        critic_params = list(self.ac.critic.parameters())
        actor_norm = self._step(
            self.actor_opt, actor_loss, actor_params, cfg["actor_clip"], retain_graph=True
        )
        critic_norm = self._step(self.critic_opt, critic_loss, critic_params, cfg["critic_clip"])
        self.wm.requires_grad_(True)
        self.ac.update_slow_critic()
        self.scaler.update()

        scalars = {f"loss/{g}": losses[g] for g in self.groups}
        scalars.update({f"weight/{g}": weights[g] for g in self.groups})
        scalars.update(metrics)
        scalars.update(ac_metrics)
        scalars.update(
            {
                "loss/total": total,
                "loss/actor": actor_loss,
                "loss/critic": critic_loss,
                "grad_norm/model": model_norm,
                "grad_norm/actor": actor_norm,
                "grad_norm/critic": critic_norm,
            }
        )
        return scalars

    @torch.no_grad()
    def policy(self, obs: dict[str, np.ndarray], state: Any, mode: str) -> tuple[np.ndarray, Any]:
        n = len(next(iter(obs.values())))
        data = self.to_device({k: np.asarray(obs[k])[:, None] for k in self.obs_keys})
        if state is None:
            latent, prev_action = None, torch.zeros(n, self.actions, device=self.device)
            is_first = torch.ones(n, device=self.device)
        else:
            latent, prev_action = state
            is_first = torch.as_tensor(
                np.asarray(obs.get("is_first", np.zeros(n))), device=self.device
            ).float()
        with self._autocast():
            embed = self.wm.encode(data)[:, 0]
            latent = self.wm.rssm.step(latent, prev_action, embed, is_first)
            dist = self.ac.dist(self.ac.actor(self.wm.rssm.feat(latent)))
        sample = mode == "train" or self.cfg["eval_policy"] == "sample"
        action = dist.rsample() if sample else dist.mode()
        # A straight-through sample is 1 + p - p, which rounds to 1 - 1 ulp for some p: act an exact one-hot
        action = one_hot(action.argmax(-1), action.float()) if self.discrete else action.float().clamp(-1, 1)
        latent = {k: v for k, v in latent.items() if k in ("deter", "stoch")}
        return action.cpu().numpy(), (latent, action)

    def after_update(self, batch: dict[str, np.ndarray], metrics: dict[str, float]) -> None:
        return None  # no priorities to report

    def state_dict(self) -> dict[str, Any]:
        return {
            "modules": self.modules.state_dict(),
            "model_opt": self.model_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "scaler": self.scaler.state_dict(),
            "updates": self.ac.updates,
            "carry": self.carry,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.modules.load_state_dict(state["modules"])
        self.model_opt.load_state_dict(state["model_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.scaler.load_state_dict(state["scaler"])
        self.ac.updates = int(state["updates"])
        carry = state.get("carry")  # absent from checkpoints written before carry_state
        self.carry = None if carry is None else {k: v.to(self.device) for k, v in carry.items()}


def _adam(params: Any, cfg: dict[str, Any], name: str) -> torch.optim.Optimizer:
    """Adam with L2 weight decay added to the gradient after clipping, as HD wmlib-torch core/torch_utils.py
    Optimizer applies it (optim.Adam(weight_decay=wd)); DV3 uses no weight decay. ``weight_decay:
    decoupled`` scales every weight by 1 - wd before each step instead, as danijar/dreamerv2's TF Optimizer
    (and DreamerPro's) does: AdamW with decay wd / lr (a param group at another lr decays by its lr * wd / lr)."""
    lr, eps, wd = cfg[f"{name}_lr"], cfg[f"{name}_eps"], cfg[f"{name}_wd"]
    if cfg["weight_decay"] == "decoupled":
        opt = torch.optim.AdamW(params, lr=lr, eps=eps, weight_decay=wd / lr, foreach=True)
    else:
        opt = torch.optim.Adam(params, lr=lr, eps=eps, weight_decay=wd, foreach=True)
    if cfg["adam_eps"] == "tf":
        opt.register_step_pre_hook(_tf_epsilon([group["eps"] for group in opt.param_groups]))
    return opt


def _tf_epsilon(base: list[float]) -> Any:
    """A step pre-hook giving torch's Adam TF's epsilon. Keras Adam (TF 2.4 optimizer_v2/adam.py, ApplyAdam)
    steps lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps), torch lr / (1 - b1^t) m / (sqrt(v) /
    sqrt(1 - b2^t) + eps): the same with eps / sqrt(1 - b2^t) in torch, t the step about to be taken.

    t is read from the optimizer's state (so a checkpoint resumes it): torch counts one step per parameter
    with a gradient, TF one iteration per apply for the whole optimizer; the largest step in the group is
    TF's count (a parameter without a gradient at some steps keeps torch's own bias correction; DreamerPro's
    frozen prototypes get a zero gradient, so they count every step, as in TF). A step the fp16 GradScaler skips calls no step(): torch's t stays, m and v too. TF
    2.4's LossScaleOptimizer also skips the apply but counts the iteration (loss_scale_optimizer.py
    do_not_apply_fn), so after k skipped steps its t, in the bias correction and here, is k ahead of ours
    (3e-4 of the step size per skipped step at t = 1000); which steps are skipped differs anyway, as its loss
    scale starts at 2^15 and torch's at 2^16."""

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group, eps in zip(opt.param_groups, base):
            # Adam keeps the step on the host (not capturable, not fused): reading it waits for no device
            done = max((int(opt.state[p]["step"]) for p in group["params"] if p in opt.state), default=0)
            group["eps"] = eps / (1 - group["betas"][1] ** (done + 1)) ** 0.5

    return hook


def check_observations(backbone: str, keys: list[str], config: dict[str, Any]) -> None:
    """ValueError (one line) when an env with these observation keys gives the agent nothing to read."""
    if not any(k in keys for k in ("image", "state")):
        raise ValueError(
            f"observation keys {sorted(keys)} are invalid for {backbone}; valid: image and/or state"
        )


def sequence_length(config: dict[str, Any]) -> int:
    return int(config["batch_length"])


def make(
    backbone: str, obs_space: gym.spaces.Dict, act_space: gym.Space, config: dict[str, Any], device: Any
) -> Dreamer:
    """Build a DreamerV2/V3 agent; ValueError on a bad config or unsupported spaces."""
    check_config(backbone, config)
    check_observations(backbone, list(obs_space.spaces), config)
    if "image" in obs_space.spaces:
        height, width, _ = obs_space["image"].shape
        valid = height == width and (
            height == 64 if config["cnn"] == "dv2" else height >= 8 and height & (height - 1) == 0
        )
        if not valid:
            raise ValueError(
                f"image size {height}x{width} is invalid for cnn={config['cnn']!r}; valid: 64x64 (dv2), square powers of 2 >= 8 (dv3)"
            )
    if not isinstance(act_space, gym.spaces.Discrete | gym.spaces.Box):
        raise ValueError(f"action space {act_space} is invalid; valid: Box or Discrete")
    return Dreamer(obs_space, act_space, config, device)
