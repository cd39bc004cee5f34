"""DreamerPro: DreamerV2 without a decoder, learning its representation from prototypes.

PRO = fdeng18/dreamer-pro DreamerPro/dreamerv2/{configs.yaml, agent.py}, common/nets.py L143-221. Each batch is
seen as two views (one random +-3 px shift per sequence, the same at every step); the online encoder's
projection predicts the other view's Sinkhorn assignment of an EMA target encoder (swav), the RSSM state
predicts its own view's assignment (temp), and both projections are kept near unit norm (norm). Loss groups
for the balancer: ``obs`` = swav + temp + norm (weighted by ``obs_terms``; PRO has no grouping of its own),
``reward``, ``dyn`` (the KL) and ``cont`` when the continue head is on. Everything else is agents.dreamer.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents import dreamer, dreamer_config
from agents.nets import init_weights_
from agents.prototypes import Prototypes, ema_update, proto_losses, random_shift
from agents.rssm import State

PROTO_TERMS = ("swav", "temp", "norm")


def _proto_defaults(suite: str) -> dict[str, Any]:
    return {
        "proto_count": 2500,  # PRO rssm.num_prototypes 2500, proto 32, temperature 0.1
        "proto_dim": 32,
        "proto_temperature": 0.1,
        "sinkhorn_eps": 0.0125 if suite in ("dmc", "dmcr") else 0.05,  # PRO rssm.sinkhorn_eps (dmc 0.0125)
        "sinkhorn_iters": 3,  # PRO rssm.sinkhorn_iters 3
        "proto_freeze": 10_000,  # PRO freeze_prototypes_iters 10000
        "proto_warm_up": 1,  # PRO rssm.warm_up 1: the first step of each sequence has no proto loss
        "ema_fraction": 0.05,  # PRO ema_update_fraction 0.05, ema_update_every 1
        "ema_every": 1,
        "aug_max_delta": 3.0,  # PRO aug: {max_delta: 3.0, same_across_time: True, bilinear: True}
        "obs_terms": {
            "swav": 1.0,
            "temp": 1.0,
            "norm": 1.0,
        },  # PRO loss_scales swav/temp/norm 1.0 -> group obs
    }


PROTO_KEYS = tuple(_proto_defaults(""))


def _pro_model(config: dict[str, Any], suite: str) -> None:
    """PRO's latents and actor, in every preset (a smaller preset shrinks the same model). DMC/DMCR: the dmc
    block; Atari100K keeps DreamerV2's (PRO's atari block is a 200M-frame setup, not applied); elsewhere the
    defaults block. Every suite: PRO's actor-critic and optimizer code, danijar/dreamerv2's TF ones."""
    agent = config["agent"]
    # PRO tfutils.py Optimizer: var *= 1 - wd, and tf.optimizers.Adam's epsilon (before the bias correction)
    agent.update(dv2_actor="tf", weight_decay="decoupled", adam_eps="tf")
    agent["carry_state"] = False  # PRO train.py: agnt.train(next(train_dataset)), every update from zeros
    agent["init"] = "glorot"  # PRO Keras Dense/Conv2D glorot_uniform, its GRUCell's Dense included
    if suite in ("dmc", "dmcr"):
        # PRO dmc: rssm discrete False -> Gaussian latents (defaults stoch 32, std_act sigmoid2, min_std 0.1);
        # actor {dist: tanh_normal, min_std: 0.1} (defaults); actor_grad dynamics
        agent.update(latent="gaussian", latent_min_std=0.1, actor_dist="tanh_normal", actor_min_std=0.1)
        agent.update(actor_grad_cont="backprop", actor_grad_disc="backprop")
    elif suite != "atari100k":
        # PRO defaults: discrete latents 32 x 32, actor tanh_normal, actor_grad both with actor_grad_mix 0.1
        agent.update(actor_dist="tanh_normal", actor_min_std=0.1)
        agent.update(actor_grad_cont="both", actor_grad_disc="both", actor_grad_mix=0.1)


def _pro_paper(config: dict[str, Any], suite: str) -> None:
    """PRO configs.yaml where it differs from the DreamerV2 defaults (defaults section, then dmc)."""
    agent, run = config["agent"], config["run"]
    agent.update(batch_size=50, batch_length=51)  # PRO dataset {batch: 50, length: 51}
    agent.update(deter=400, hidden=400, stoch=32)  # PRO defaults rssm {hidden: 400, deter: 400, stoch: 32}
    agent.update(model_lr=3e-4, actor_lr=1e-4, critic_lr=1e-4)  # PRO defaults model/actor/critic_opt lr
    # PRO imag_horizon 15 counts the start state (its imagine keeps z_0..z_14): 14 steps here
    agent["imag_horizon"] = 14
    run["train_ratio"] = 50 * 51 / 5  # PRO train_every 5
    if suite in ("dmc", "dmcr"):  # PRO dmc: rssm 200, lr 3e-4 / 8e-5 / 8e-5, actor_ent 1e-4, kl free 1.0
        agent.update(deter=200, hidden=200, actor_lr=8e-5, critic_lr=8e-5, actor_ent=1e-4, kl_free=1.0)
        agent.update(pred_cont=False, clip_rewards="identity")  # PRO dmc pred_discount False
        run["prefill"] = 5000  # PRO dmc prefill 5000
    elif suite != "atari100k":
        # PRO defaults: actor_ent 1e-4, clip_rewards identity, pred_discount True, kl free 0, loss_scales 1.0,
        # prefill 1e4, replay_size 2e6
        agent.update(actor_ent=1e-4, clip_rewards="identity", pred_cont=True, kl_free=0.0)
        agent["balancer"]["weights"] = dict.fromkeys(agent["balancer"]["weights"], 1.0)
        run.update(prefill=10_000, replay_capacity=2_000_000)
    run["pretrain"] = 100 if suite in ("dmc", "dmcr") else 0  # PRO pretrain 0, dmc 100


def default_config(backbone: str, preset: str, suite: str) -> dict[str, Any]:
    """DreamerV2's config for the suite and preset, PRO's values in the paper preset, plus the proto knobs."""
    if backbone != "dreamerpro":
        raise ValueError(f"backbone={backbone!r} is invalid; valid choices: dreamerpro")
    config = dreamer_config.default_config("dreamerv2", preset, suite)
    config["agent"]["version"] = "dreamerpro"
    config["agent"].update(_proto_defaults(suite))
    _pro_model(config, suite)
    if preset == "paper":
        _pro_paper(config, suite)
    elif preset == "small":
        config["agent"].update(proto_count=500, proto_freeze=1000)  # fewer updates in a CPU run
    else:  # smoke
        config["agent"].update(proto_count=32, proto_dim=8, proto_freeze=2)
    if config["run"].get("replay_sampling") == "episodes":
        # PRO common/replay.py sample_episodes: within an episode, first step not marked (its RSSM has no
        # is_first); dataset.oversample_ends True (False on dmc) gives the last start `length` of the
        # episode's draws: ends = length - 1 here
        oversample = suite not in ("dmc", "dmcr")
        ends = config["agent"]["batch_length"] - 1 if oversample else 0
        config["run"].update(replay_mark_first=False, replay_ends=ends)
    return config


def _fail(key: str, value: Any, valid: str) -> None:
    raise ValueError(f"agent.{key}={value!r} is invalid; valid: {valid}")


def check_config(backbone: str, config: dict[str, Any]) -> None:
    """Raise ValueError (one line) on a bad DreamerPro config value."""
    for key in PROTO_KEYS:
        if key not in config:
            raise ValueError(f"agent.{key} is missing; valid: the keys of default_config")
    for key in ("proto_count", "proto_dim", "sinkhorn_iters", "ema_every"):
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            _fail(key, value, "a positive int")
    for key in ("proto_freeze", "proto_warm_up"):
        value = config[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            _fail(key, value, "an int >= 0")
    for key in ("proto_temperature", "sinkhorn_eps"):
        if not dreamer_config._is_number(config[key]) or config[key] <= 0:
            _fail(key, config[key], "a number > 0")
    if not dreamer_config._is_number(config["ema_fraction"]) or not 0 < config["ema_fraction"] <= 1:
        _fail("ema_fraction", config["ema_fraction"], "a number in (0, 1]")
    if not dreamer_config._is_number(config["aug_max_delta"]) or config["aug_max_delta"] < 0:
        _fail("aug_max_delta", config["aug_max_delta"], "a number >= 0 (pixels)")
    terms = config["obs_terms"]
    if not isinstance(terms, dict) or set(terms) != set(PROTO_TERMS):
        _fail("obs_terms", terms, f"a mapping with exactly the keys {', '.join(PROTO_TERMS)}")
    for name, scale in terms.items():
        if not dreamer_config._is_number(scale) or scale < 0:
            _fail(f"obs_terms.{name}", scale, "a number >= 0")
    if config["proto_warm_up"] >= config["batch_length"]:
        _fail("proto_warm_up", config["proto_warm_up"], f"< batch_length ({config['batch_length']})")
    base = {k: v for k, v in config.items() if k not in PROTO_KEYS}
    dreamer_config.check_config("dreamerv2", {**base, "version": "dreamerv2"})


class ProtoWorldModel(dreamer.WorldModel):
    """DreamerV2's world model with the decoder replaced by prototype heads and an EMA target encoder.

    ``loss`` expects a batch that holds every sequence twice (view 1 then view 2 along dim 0) and shifts each
    sequence by its own random offset (PRO agent.py preprocess: concat([v, v]) then random_translate)."""

    def __init__(self, obs_space: gym.spaces.Dict, actions: int, cfg: dict[str, Any]):
        super().__init__(gym.spaces.Dict({"image": obs_space["image"]}), actions, cfg)
        del self.cnn_decoder  # no reconstruction
        dim = cfg["proto_dim"]
        self.obs_proj = nn.Linear(self.cnn_encoder.out_dim, dim)  # PRO nets.py obs_proj / feat_proj Dense
        self.feat_proj = nn.Linear(self.rssm.feat_dim, dim)
        init_weights_(self.obs_proj, cfg["init"])
        init_weights_(self.feat_proj, cfg["init"])
        self.prototypes = Prototypes(cfg["proto_count"], dim, cfg["proto_freeze"])
        # PRO's target starts from its own init and copies the online weights after the first update
        # (after_update); starting as a copy changes only the first update's Sinkhorn targets
        self.ema_encoder = copy.deepcopy(self.cnn_encoder).requires_grad_(False)
        self.ema_obs_proj = copy.deepcopy(self.obs_proj).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # in checkpoints
        self.update_count = (
            0  # the same on the host: reading the buffer inside an update would wait for a GPU
        )
        self.register_load_state_dict_post_hook(_read_update_count)

    def encode(self, data: dict[str, torch.Tensor]) -> torch.Tensor:
        if "embed" in data:  # computed once in loss() and shared with the projection head
            return data["embed"]
        return super().encode(data)

    def obs_loss(self, feat: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.zeros(feat.shape[:2], device=feat.device)  # replaced by the prototype terms in loss()

    def loss(
        self, data: dict[str, torch.Tensor], state: State | None = None
    ) -> tuple[State, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        cfg = self.cfg
        views = dict(data, image=random_shift(data["image"], cfg["aug_max_delta"]))
        views["embed"] = super().encode(views)
        post, losses, metrics = super().loss(views, state)
        self.prototypes.normalize()  # PRO proto_loss reassigns the l2-normalised prototypes each update
        frozen = self.prototypes.frozen(self.update_count)
        vectors = self.prototypes.vectors
        if frozen:  # PRO agent.py:119-121 zeroes their gradient: Adam still counts the step and decay applies
            vectors = vectors.detach() + 0 * vectors
        with torch.no_grad():
            image = views["image"]
            ema_embed = self.ema_encoder(image.flatten(0, 1)).reshape(*image.shape[:2], -1)
            ema_proj = F.normalize(self.ema_obs_proj(ema_embed).float(), dim=-1)
        terms = proto_losses(
            self.obs_proj(views["embed"]).float(),
            self.feat_proj(self.rssm.feat(post)).float(),
            ema_proj,
            vectors,
            cfg["proto_temperature"],
            cfg["sinkhorn_eps"],
            cfg["sinkhorn_iters"],
            cfg["proto_warm_up"],
        )
        losses["obs"] = sum(cfg["obs_terms"][name] * terms[name] for name in PROTO_TERMS)
        metrics.update({f"loss/{name}": value.detach() for name, value in terms.items()})
        metrics["prototypes_frozen"] = torch.tensor(float(frozen), device=ema_proj.device)
        return post, losses, metrics

    @torch.no_grad()
    def after_update(self) -> None:
        """Move the EMA target towards the online encoder and projection (PRO agent.py ema_update)."""
        if self.update_count % self.cfg["ema_every"] == 0:
            # PRO agent.py:207-214 ema_update: mix 1.0 at _updates 0 (a copy of the stepped online weights)
            fraction = 1.0 if self.update_count == 0 else self.cfg["ema_fraction"]
            ema_update(self.ema_encoder, self.cnn_encoder, fraction)
            ema_update(self.ema_obs_proj, self.obs_proj, fraction)
        self.updates += 1
        self.update_count += 1


def _read_update_count(module: ProtoWorldModel, incompatible_keys: Any) -> None:
    module.update_count = int(module.updates)


class DreamerPro(dreamer.Dreamer):
    """The Agent: DreamerV2's training and acting with ProtoWorldModel in place of the world model (through
    the backbone's ``world_model_class``, so the balancer's own lr and ``agent.compile`` apply as for any
    Dreamer)."""

    world_model_class = ProtoWorldModel

    def __init__(
        self, obs_space: gym.spaces.Dict, act_space: gym.Space, cfg: dict[str, Any], device: torch.device
    ):
        super().__init__(obs_space, act_space, cfg, device)
        self.obs_keys = ["image"]

    def train(self, batch: dict[str, np.ndarray | torch.Tensor]) -> dict[str, float]:
        # PRO agent.py preprocess: every sequence twice (two views); imagination starts from both. Doubled on
        # the device: half the bytes to copy, and a pinned batch stays an asynchronous copy
        doubled = {}
        for key, value in batch.items():
            value = torch.as_tensor(value).to(self.device, non_blocking=True)
            doubled[key] = torch.cat([value, value])
        metrics = super().train(doubled)
        self.wm.after_update()
        return metrics


def check_observations(backbone: str, keys: list[str], config: dict[str, Any]) -> None:
    """DreamerPro learns from images only (its representation is built on augmented views)."""
    if "image" not in keys:
        raise ValueError(
            f"observation keys {sorted(keys)} are invalid for dreamerpro; valid: image (try env.obs=image)"
        )


sequence_length = dreamer.sequence_length


def make(
    backbone: str, obs_space: gym.spaces.Dict, act_space: gym.Space, config: dict[str, Any], device: Any
) -> DreamerPro:
    """Build a DreamerPro agent; ValueError on a bad config or an observation space without 64x64 images."""
    if backbone != "dreamerpro":
        raise ValueError(f"backbone={backbone!r} is invalid; valid choices: dreamerpro")
    check_config(backbone, config)
    check_observations(backbone, list(obs_space.spaces), config)
    shape = tuple(obs_space["image"].shape)
    if config["cnn"] == "dv2" and shape[:2] != (64, 64):
        raise ValueError(f"image size {shape[0]}x{shape[1]} is invalid for cnn='dv2'; valid: 64x64")
    if not isinstance(act_space, gym.spaces.Discrete | gym.spaces.Box):
        raise ValueError(f"action space {act_space} is invalid; valid: Box or Discrete")
    return DreamerPro(obs_space, act_space, config, device)
