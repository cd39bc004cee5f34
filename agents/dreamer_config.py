"""DreamerV2/V3 configs: every knob with its default and source, presets (paper, small, smoke), validation.

Sources: DV2 = danijar/dreamerv2 configs.yaml; HD = thuml/HarmonyDream wmlib-torch/configs/dreamerv2.yaml
(the HarmonyDream paper's DreamerV2) and dreamerv3-jax/dreamerv3/configs.yaml (= danijar/dreamerv3 @8fa35f8,
the 2023 DreamerV3 = DV3).
"""

from __future__ import annotations

import copy
from typing import Any

from agents import balancers

BACKBONES = ("dreamerv2", "dreamerv3")
PRESETS = ("paper", "small", "smoke")

CHOICES: dict[str, tuple[Any, ...]] = {
    "precision": ("auto", "fp32", "bf16", "fp16"),
    "act": ("elu", "silu", "relu"),
    "initial": ("zeros", "learned"),
    "cnn": ("dv2", "dv3"),
    "image_loss": ("gauss", "mse"),
    "state_loss": ("gauss", "mse", "symlog_mse"),
    "reward_head": ("mse", "twohot"),
    "critic_head": ("mse", "twohot"),
    "clip_rewards": ("identity", "tanh"),
    "kl": ("balance", "free_bits"),
    "latent": ("discrete", "gaussian"),
    "actor_dist": ("normal", "trunc_normal", "tanh_normal"),
    "actor_grad_cont": ("backprop", "reinforce", "both"),
    "actor_grad_disc": ("backprop", "reinforce", "both"),
    "critic_target": ("fast", "slow"),
    "return_norm": ("none", "perc_ema"),
    "imag_cont": ("mean", "mode"),
    "init": ("xavier", "glorot", "fan_avg", "torch"),
    "returns": ("dv2", "dv3"),
    "dv2_actor": ("hd", "tf"),
    "weight_decay": ("l2", "decoupled"),
    "adam_eps": ("torch", "tf"),
    "eval_policy": ("mode", "sample"),
    "compile": ("off", "step", "scan"),
}
POSITIVE_INT = (
    "batch_size",
    "batch_length",
    "deter",
    "hidden",
    "stoch",
    "classes",
    "units",
    "layers",
    "cnn_depth",
    "bins",
    "imag_horizon",
    "slow_critic_every",
)
NON_NEGATIVE = (
    "unimix",
    "action_clip",
    "kl_free",
    "kl_dyn_scale",
    "kl_rep_scale",
    "model_wd",
    "actor_wd",
    "critic_wd",
    "actor_ent",
    "critic_slowreg",
    "actor_unimix",
    "imag_starts",
)
POSITIVE = (
    "model_lr",
    "model_eps",
    "model_clip",
    "actor_lr",
    "actor_eps",
    "actor_clip",
    "critic_lr",
    "critic_eps",
    "critic_clip",
    "actor_min_std",
    "actor_max_std",
    "return_norm_max",
    "latent_min_std",
)
UNIT_INTERVAL = (
    "kl_balance",
    "discount",
    "lambda",
    "slow_critic_fraction",
    "return_norm_decay",
    "actor_grad_mix",
)


def _dreamerv2(suite: str) -> dict[str, Any]:
    agent = {
        "version": "dreamerv2",
        # HD/DV2/PRO `precision: 16`, DV3 2023 `jax.precision: float16`: fp16 mixed precision on a GPU ("auto"
        # = fp16 on CUDA, fp32 on a CPU, where fp16 is slow); small and smoke stay fp32 everywhere
        "precision": "auto",
        # GPU speed knobs, off by default: compiled code draws other random numbers than eager PyTorch (the
        # same distributions), so a run with them on is a different sample of the same experiment.
        # compile: off | step (the per-step RSSM functions) | scan (the whole RSSM scan and the imagination
        # rollout, each one graph); cuda_graphs (with compile: scan) replays those graphs as CUDA graphs
        # (torch.compile mode reduce-overhead): one launch per loop instead of one per small op
        "compile": "off",
        "cuda_graphs": False,
        "batch_size": 16,  # HD dataset: {batch: 16, length: 50}
        "batch_length": 50,
        "act": "elu",  # HD rssm/encoder act elu, norm none
        "norm": False,
        "init": "xavier",  # HD core/torch_utils.py Module.get: xavier-uniform weights, zero biases
        "gru_norm": True,  # HD nets/dynamics/rssm.py: GRUCell(hidden, deter, norm=True), DV2 nets.py likewise
        "gru_bias": True,  # HD GRUCell: Linear(bias=norm is not None), a bias beside the LayerNorm
        # HD agents/actor_critic.py: V(s_t) = r(s_t) + d(s_t) V(s_t+1); the actor's targets start one step later
        "returns": "dv2",
        "dv2_actor": "hd",  # tf: danijar/dreamerv2's TF ActorCritic (actor at z_t towards t_t), DreamerPro's
        "eval_policy": "mode",  # HD agents/base.py get_action: eval takes the actor's mode
        # HD examples/train_dreamerv2.py CarryOverState(agnt.train): each update starts from the previous
        # update's last posterior state (reset where is_first), as DV2's train.py does
        "carry_state": True,
        "deter": 1024,  # HD rssm: deter 1024, hidden 1024 (DV2's own DMC preset uses 200)
        "hidden": 1024,
        "stoch": 32,  # HD rssm: stoch 32, discrete 32
        "classes": 32,
        "latent": "discrete",  # DV2 rssm.discrete 32; gaussian: discrete False, stoch Gaussians
        "latent_min_std": 0.1,  # DV2 rssm {std_act: sigmoid2, min_std: 0.1} (gaussian latents only)
        "unimix": 0.0,  # HD rssm.unimix 0.0
        "initial": "zeros",
        "action_clip": 0.0,
        "cnn": "dv2",  # HD encoder kernels [4,4,4,4], decoder [5,5,6,6]
        "cnn_depth": 48,  # HD encoder/decoder cnn_depth 48
        "units": 400,  # HD mlp_layers [400]*4, reward/discount/actor/critic heads 4x400
        "layers": 4,
        "symlog_inputs": False,
        "image_loss": "gauss",  # HD decoder cnn_dist mse: 1/2 (x - mu)^2 summed over pixels
        "state_loss": "gauss",
        "reward_head": "mse",  # HD reward_head dist mse
        "critic_head": "mse",  # HD critic dist mse
        "bins": 255,
        "pred_cont": True,  # HD pred_discount True (False on DMC/DMCR/Meta-world)
        "clip_rewards": "tanh",  # HD clip_rewards tanh (identity on DMC/DMCR/Meta-world)
        "kl": "balance",  # HD kl: {free: 0.0, balance: 0.8, free_avg: True}
        "kl_balance": 0.8,
        "kl_free": 0.0,
        "kl_free_avg": True,
        "kl_dyn_scale": 0.5,
        "kl_rep_scale": 0.1,
        "model_lr": 1e-4,  # HD model_opt: {lr: 1e-4, eps: 1e-5, clip: 100, wd: 1e-6}
        "model_eps": 1e-5,
        "model_clip": 100.0,
        "model_wd": 1e-6,
        "actor_lr": 8e-5,  # HD actor_opt: {lr: 8e-5, eps: 1e-5, clip: 100, wd: 1e-6}
        "actor_eps": 1e-5,
        "actor_clip": 100.0,
        "actor_wd": 1e-6,
        "critic_lr": 2e-4,  # HD critic_opt: {lr: 2e-4, eps: 1e-5, clip: 100, wd: 1e-6}
        "critic_eps": 1e-5,
        "critic_clip": 100.0,
        "critic_wd": 1e-6,
        "weight_decay": "l2",  # HD Adam(weight_decay); decoupled: DV2 TF Optimizer var *= 1 - wd
        # torch: Adam adds eps to the bias-corrected sqrt(v) (HD torch.optim.Adam); tf: to sqrt(v) before the
        # bias correction, as Keras Adam in DV2's (and PRO's) TF Optimizer: eps / sqrt(1 - beta2^t) here
        "adam_eps": "torch",
        "actor_dist": "trunc_normal",  # HD actor dist auto -> trunc_normal (continuous), onehot (discrete)
        "actor_min_std": 0.1,  # HD actor min_std 0.1
        "actor_max_std": 1.0,
        "actor_unimix": 0.0,
        "actor_grad_cont": "backprop",  # HD actor_grad auto: dynamics (continuous), reinforce (discrete)
        "actor_grad_disc": "reinforce",
        "actor_grad_mix": 0.1,  # DV2 actor_grad_mix 0.1: the backprop share under actor_grad both
        "actor_ent": 2e-3,  # HD actor_ent 2e-3 (1e-4 on DMC/DMCR/Meta-world)
        "critic_target": "slow",  # HD slow_target True: lambda-returns from the slow critic
        "slow_critic_every": 100,  # HD slow_target_update 100, fraction 1.0
        "slow_critic_fraction": 1.0,
        "critic_slowreg": 0.0,  # HD loss_scales.slowreg 0.0
        "return_norm": "none",  # HD reward_norm momentum 1.0, scale 1.0: identity
        "return_norm_decay": 0.99,
        "return_norm_max": 1.0,
        "return_norm_low": 5.0,
        "return_norm_high": 95.0,
        "discount": 0.99,  # HD discount 0.99, discount_lambda 0.95, imag_horizon 15
        "lambda": 0.95,
        "imag_horizon": 15,
        "imag_starts": 0,  # 0: imagine from every posterior state (B*T starts)
        "imag_cont": "mean",  # DV2 imagines with the discount head's mean
    }
    weights = {"obs": 1.0, "reward": 1.0, "dyn": 1.0, "cont": 1.0}  # HD loss_scales all 1.0 (kl 1.0)
    # HD train_every 5; pretrain 1 (defaults) or 100 (dmc_vision, dmc_remastered, metaworld)
    run = {"train_ratio": 16 * 50 / 5, "prefill": 10000, "pretrain": 1, "replay_capacity": 2_000_000}
    if suite in ("dmc", "dmcr", "metaworld", "gym"):
        # HD dmc_vision / dmc_remastered / metaworld: identity rewards, no discount head, lr and entropy
        agent.update(clip_rewards="identity", pred_cont=False, actor_ent=1e-4, critic_lr=8e-5)
        agent["model_lr"] = 3e-4
        run["pretrain"] = 100
    if suite == "gym":
        agent["pred_cont"] = True  # gym tasks terminate (CartPole): keep the continue head
    else:
        # HD wmlib/core/replay.py (replay {ongoing: False, minlen: 50, maxlen: 50}): a sequence lies within
        # one complete episode and starts marked is_first; prioritize_ends True with ends_priority 50, False on
        # dmc_vision/dmc_remastered. Gym has no HD config, and CartPole's early episodes are shorter than a
        # sequence: it keeps the stream replay.
        run.update(replay_sampling="episodes", replay_mark_first=True)
        run["replay_ends"] = 0 if suite in ("dmc", "dmcr") else 50
    if suite in ("dmc", "dmcr", "gym"):
        agent["kl_free"] = 1.0  # HD dmc_*: kl.free 1.0
        run["prefill"] = 1000  # HD dmc_*: prefill 1000
    if suite == "dmc":
        agent.update(deter=200, hidden=200)  # HD/DV2 dmc_vision: rssm {hidden: 200, deter: 200}
    if suite in ("metaworld", "rlbench"):
        agent.update(batch_size=50, batch_length=50)  # HD metaworld/rlbench dataset 50x50
        run.update(train_ratio=50 * 50 / 5, replay_capacity=1_000_000)
    if suite == "metaworld":
        run["prefill"] = 5000  # HD metaworld prefill 5000
    if suite == "rlbench":
        agent["kl_free"] = 1.0  # HD rlbench: kl.free 1.0, loss_scales.kl 0.1
        weights["dyn"] = 0.1
    agent["balancer"] = balancers.default_config(weights)
    return {"agent": agent, "run": run}


def _dreamerv3(suite: str) -> dict[str, Any]:
    agent = _dreamerv2("")["agent"]  # every key, then the DV3 values
    agent.update(
        {
            "version": "dreamerv3-2023",
            "batch_size": 16,  # DV3 batch_size 16, batch_length 64
            "batch_length": 64,
            "act": "silu",  # DV3 act silu, norm layer
            "norm": True,
            "init": "fan_avg",  # DV3 jaxutils Initializer: truncated normal, fan_avg (NM512 tools.weight_init)
            "gru_bias": False,  # DV3 nets.py RSSM._gru: Linear with norm, no bias
            "returns": "dv3",  # DV3 agent.py VFunction.score: r(s_t+1), the critic baseline not stopped
            "eval_policy": "sample",  # DV3 agent.py policy: eval samples the actor, as train does
            # DV3 @8fa35f8 embodied/run/train.py carries the last posterior from one update into the next
            # (NM512's dreamerv3-torch starts every batch from the initial state: carry_state=false)
            "carry_state": True,
            "deter": 512,  # DV3 size S (dmc_vision/atari100k): deter 512, units 512, cnn_depth 32, layers 2
            "hidden": 512,
            "unimix": 0.01,  # DV3 rssm.unimix 0.01
            "initial": "learned",  # DV3 rssm.initial learned
            "action_clip": 1.0,  # DV3 rssm.action_clip 1.0
            "cnn": "dv3",  # DV3 cnn resnet, cnn_blocks 0, resize stride, minres 4
            "cnn_depth": 32,
            "units": 512,
            "layers": 2,
            "symlog_inputs": True,  # DV3 encoder.symlog_inputs True
            "image_loss": "mse",  # DV3 decoder image_dist mse (sum of squares), vector_dist symlog_mse
            "state_loss": "symlog_mse",
            "reward_head": "twohot",  # DV3 reward_head/critic dist symlog_disc, bins 255
            "critic_head": "twohot",
            "pred_cont": True,  # DV3 grad_heads [decoder, reward, cont]
            "clip_rewards": "identity",
            "kl": "free_bits",  # DV3 dyn_loss/rep_loss free 1.0; loss_scales dyn 0.5, rep 0.1
            "kl_free": 1.0,
            "model_lr": 1e-4,  # DV3 model_opt: {lr: 1e-4, eps: 1e-8, clip: 1000, wd: 0}
            "model_eps": 1e-8,
            "model_clip": 1000.0,
            "model_wd": 0.0,
            "actor_lr": 3e-5,  # DV3 actor_opt/critic_opt: {lr: 3e-5, eps: 1e-5, clip: 100, wd: 0}
            "actor_wd": 0.0,
            "critic_lr": 3e-5,
            "critic_wd": 0.0,
            "actor_dist": "normal",  # DV3 actor_dist_cont normal, minstd 0.1, maxstd 1.0, unimix 0.01
            "actor_unimix": 0.01,
            "actor_grad_cont": "backprop",  # DV3 actor_grad_cont backprop, actor_grad_disc reinforce
            "actor_grad_disc": "reinforce",
            "actor_ent": 3e-4,  # DV3 actent 3e-4
            "critic_target": "fast",  # DV3 returns from the critic itself; the slow critic regularises
            "slow_critic_every": 1,  # DV3 slow_critic_update 1, slow_critic_fraction 0.02
            "slow_critic_fraction": 0.02,
            "critic_slowreg": 1.0,  # DV3 loss_scales.slowreg 1.0, critic_slowreg logprob
            "return_norm": "perc_ema",  # DV3 retnorm: {impl: perc_ema, decay: 0.99, max: 1.0, 5, 95}
            "discount": 1 - 1 / 333,  # DV3 horizon 333
            "imag_cont": "mode",  # DV3 imagines with the cont head's mode
        }
    )
    weights = {"obs": 1.0, "reward": 1.0, "dyn": 0.6, "cont": 1.0}  # DV3: dyn 0.5 + rep 0.1 share one weight
    # DV3 dmc_vision/dmc_proprio train_ratio 512, atari100k 1024; train_fill 0 (we prefill a few episodes)
    run = {
        "train_ratio": 512.0,
        "prefill": 1000,
        "pretrain": 0,
        "replay_capacity": 1_000_000,
    }  # DV3 replay_size 1e6
    # DV3 configs.yaml (2023): envs.amount 4, atari100k envs.amount 1; its train ratio counts the policy
    # steps of all envs, as run.train_ratio does
    run["envs"] = 4
    if suite == "atari100k":
        run.update(train_ratio=1024.0, envs=1)
    if suite == "metaworld":
        # HD dreamerv3-jax metaworld: size M-like, batch 50x50, train_ratio 500, fill 5000, no cont head
        agent.update(
            deter=1024, hidden=640, cnn_depth=48, units=640, layers=3, batch_size=50, batch_length=50
        )
        agent["pred_cont"] = False
        run.update(train_ratio=500.0, prefill=5000)
    agent["balancer"] = balancers.default_config(weights)
    return {"agent": agent, "run": run}


def _small(config: dict[str, Any], suite: str) -> None:
    """A model that learns easy tasks on a CPU in minutes. Measured (1 thread, DV3, state obs): the update is
    bound by many small sequential ops, and imagination from all 16x32 starts costs twice the world model, so
    fewer starts and a low train ratio cut the cost per env step (~0.4 s/update vs ~3.5 s reference)."""
    config["agent"].update(
        precision="fp32",
        batch_size=16,
        batch_length=32,
        deter=256,
        hidden=256,
        stoch=16,
        classes=16,
        units=256,
        layers=2,
        cnn_depth=8,
        imag_starts=128,
        model_lr=3e-4,
        actor_lr=1e-4,
        critic_lr=1e-4,
    )
    # Pixels: more updates, not a wider model, is what the runs point to (one seed each). Measured on dmc
    # cartpole_balance (seed 0, best mean eval in 100K frames): HarmonyDream 404 at train ratio 16, 495 at 64,
    # 611 at its own 160 (HD dmc_vision: batch 16x50 every 5 policy steps); DreamerV3 285 at 32 (by 80K), 756 at 160.
    # Convolutions dominate a pixel update, so half the channels pay for the updates: cnn_depth 8 takes 0.68 s
    # per HD update on one core against 1.05 s at 16, with no worse returns at equal updates (40K frames: 410
    # vs 379).
    train_ratio = 64.0 if suite == "gym" else 160.0
    if suite == "gym" and config["agent"]["critic_target"] == "slow":
        # DV2's MSE critic behind a target copied every 100 updates fits Pendulum's values (~ -600) far too
        # slowly in ~2.5K updates. Measured (Pendulum-v1, seed 0, eval at 10K steps): -1245 with the paper's
        # values, -848 with critic_lr 1e-3 and a copy every 20 updates.
        config["agent"].update(critic_lr=1e-3, slow_critic_every=20)
        # HD's own train ratio (dmc: batch 16x50 every 5 steps) and imagination from every posterior state, as
        # HD imagines: ~3x the compute per env step of ratio 64 with 128 starts, and what the DV2 family needs
        # to learn Pendulum early. Measured (mean eval >= -400 first at, seeds 0 / 1): HarmonyDream 10K / 4K
        # steps against 12K / 18K, DreamerV2 4K / 4K against 16K / 10K, UW 10K / 4K against 18K / 12K, DWA
        # 4K / 4K against 16K / 16K, Nash-MTL 4K / 4K against 8K / 12K.
        config["agent"]["imag_starts"] = 0
        train_ratio = config["run"]["train_ratio"]
    config["run"].update(train_ratio=train_ratio, prefill=1000, replay_capacity=200_000)
    # Learned balancer weights (HD sigma, UW variance) move by about lr per update under Adam: the paper's
    # runs make ~100K updates at 3e-4, this one ~2.5K. Measured (Pendulum-v1, seed 0, 20K steps, HD at 3e-4):
    # weight/obs only 1.34 at the end against ~5 at the equilibrium of the losses it saw.
    config["agent"]["balancer"]["lr"] = 1e-2


def _smoke(config: dict[str, Any]) -> None:
    """Tiny: proves the plumbing in seconds."""
    config["agent"].update(
        precision="fp32",
        batch_size=4,
        batch_length=8,
        deter=32,
        hidden=32,
        stoch=4,
        classes=4,
        units=32,
        layers=1,
        cnn_depth=4,
        imag_horizon=5,
        imag_starts=16,
    )
    config["run"].update(
        train_ratio=32.0, prefill=64, pretrain=min(config["run"]["pretrain"], 2), replay_capacity=10_000
    )


def default_config(backbone: str, preset: str, suite: str) -> dict[str, Any]:
    """``{"agent": {...}, "run": {...}}`` for a backbone, preset and suite (unknown suites get the defaults)."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone={backbone!r} is invalid; valid choices: {', '.join(BACKBONES)}")
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is invalid; valid choices: {', '.join(PRESETS)}")
    config = _dreamerv2(suite) if backbone == "dreamerv2" else _dreamerv3(suite)
    if preset == "small":
        _small(config, suite)
    elif preset == "smoke":
        _smoke(config)
    return copy.deepcopy(config)


def _fail(key: str, value: Any, valid: str) -> None:
    raise ValueError(f"agent.{key}={value!r} is invalid; valid: {valid}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_config(backbone: str, config: dict[str, Any]) -> None:
    """Raise ValueError (one line) on a bad agent config value."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone={backbone!r} is invalid; valid choices: {', '.join(BACKBONES)}")
    expected = default_config(backbone, "smoke", "")["agent"]
    for key in expected:
        if key not in config:
            raise ValueError(f"agent.{key} is missing; valid: the keys of default_config")
    for key in config:
        if key not in expected:
            raise ValueError(f"agent.{key} is unknown; valid keys: {', '.join(sorted(expected))}")
    for key, choices in CHOICES.items():
        if config[key] not in choices:
            _fail(key, config[key], ", ".join(map(str, choices)))
    for key in POSITIVE_INT:
        if not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] <= 0:
            _fail(key, config[key], "a positive int")
    for key in NON_NEGATIVE:
        if not _is_number(config[key]) or config[key] < 0:
            _fail(key, config[key], "a number >= 0")
    for key in POSITIVE:
        if not _is_number(config[key]) or config[key] <= 0:
            _fail(key, config[key], "a number > 0")
    for key in UNIT_INTERVAL:
        if not _is_number(config[key]) or not 0 <= config[key] <= 1:
            _fail(key, config[key], "a number in [0, 1]")
    if config["cuda_graphs"] and config["compile"] != "scan":
        _fail("cuda_graphs", config["cuda_graphs"], "false, or true with agent.compile=scan")
    for key in (
        "cuda_graphs",
        "norm",
        "symlog_inputs",
        "pred_cont",
        "kl_free_avg",
        "gru_norm",
        "gru_bias",
        "carry_state",
    ):
        if not isinstance(config[key], bool):
            _fail(key, config[key], "true or false")
    if not isinstance(config["imag_starts"], int):
        _fail("imag_starts", config["imag_starts"], "an int >= 0 (0 = every posterior state)")
    if config["actor_min_std"] > config["actor_max_std"]:
        _fail("actor_min_std", config["actor_min_std"], f"<= actor_max_std ({config['actor_max_std']})")
    if config["latent"] == "gaussian" and config["unimix"] != 0:
        _fail("unimix", config["unimix"], "0 with latent=gaussian (unimix mixes categorical latents)")
    if "both" in (config["actor_grad_cont"], config["actor_grad_disc"]) and config["returns"] != "dv2":
        _fail("returns", config["returns"], "dv2 with actor_grad both (DV2's mix of backprop and reinforce)")
    if not 0 <= config["return_norm_low"] < config["return_norm_high"] <= 100:
        _fail("return_norm_low", config["return_norm_low"], "0 <= low < high <= 100 (percentiles)")
    balancers.validate(loss_groups(config), balancer_config(config))


def loss_groups(config: dict[str, Any]) -> list[str]:
    """The world model's loss groups as the balancer sees them (cont only with a continue head)."""
    return ["obs", "reward", "dyn", *(["cont"] if config["pred_cont"] else [])]


def balancer_config(config: dict[str, Any]) -> dict[str, Any]:
    """The balancer section with weights restricted to the groups that exist (cont may be switched off)."""
    section = dict(config["balancer"])
    groups = loss_groups(config)
    section["weights"] = {g: w for g, w in section.get("weights", {}).items() if g in groups}
    return section
