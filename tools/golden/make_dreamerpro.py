"""Golden values for DreamerPro, recorded from fdeng18/dreamer-pro (TensorFlow 2).

fdeng18/dreamer-pro (https://github.com/fdeng18/dreamer-pro), directory DreamerPro: the paper's code, a fork
of danijar/dreamerv2's TF2 agent with prototypes. Our tiny agent (tests/golden_dreamerpro.py) gets
deterministic weights, a replay-shaped batch and shared noise; the weights are copied into PRO's WorldModel
and ActorCritic (the mapping is ``reference_weights``), both run one full update (DreamerPro's Agent.train:
world model step, EMA update, imagination, actor and critic steps), and what PRO computes is written to
tests/golden/<case>.json (the cases are in tests/golden_dreamerpro.py) for tests/test_golden_dreamerpro.py.

Two steps, because the reference needs TensorFlow and the repository's environment has torch:

1. In the repository's environment, export our weights, batch and noise (and our numbers, for the record)::

       python tools/golden/make_dreamerpro.py --export /tmp/dreamerpro_ours

2. In a throwaway environment with TensorFlow (CPU) and a checkout of the reference (record its commit)::

       python3.11 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.15.1 \\
           tensorflow-probability==0.23.0 tensorflow-addons==0.23.0 "numpy<2" pyyaml
       git clone https://github.com/fdeng18/dreamer-pro /tmp/dreamerpro-ref
       /tmp/tfvenv/bin/python tools/golden/make_dreamerpro.py --reference /tmp/dreamerpro-ref \\
           --ours /tmp/dreamerpro_ours

The reference pins TF 2.4 / TFP 0.12 / TFA 0.13 (requirements.txt), which have no Python 3.11 wheels. The run
uses TF 2.15 with these shims (no change to what is computed):

* ``tensorflow.keras.mixed_precision.experimental`` (nets.py imports it; removed in TF 2.11) is
  tf.keras.mixed_precision, whose global_policy() is the float32 policy here (no mixed precision);
* ``tf.optimizers.Adam`` is tf.keras.optimizers.legacy.Adam, TF 2.4's optimizer (same update rule);
* the ``elements`` package (agent.py uses elements.Until for exploration only) is a stub;
* the ``common`` package loads other, tfutils, dists and nets only (envs, replay and driver import gym,
  opencv and video readers that the update does not use);
* functions run eagerly (as PRO's ``jit: False``), so the noise is fed in call order.

How the randomness is made equal is in tests/golden_dreamerpro.py. On this side: the augmentation's
``samplers.uniform`` returns the shared shifts (tfa.image.translate is PRO's own), MultivariateNormalDiag.sample
returns mean + std * the shared noise, SampleDist's sample and entropy use the shared noise through PRO's
TanhBijector (so its log-prob keeps TFP's cached pre-tanh value, as PRO's does), and the prior sample inside
PRO's obs_step takes the mode (it feeds nothing).

What the reference run changes in PRO (the golden file's "reference_patches" lists it): one difference between
PRO and ours, with no effect on what is learned:

* ``normal constant``: PRO's reward and critic losses are negative Normal(., 1) log-likelihoods
  (nets.py DistLayer mse; agent.py WorldModel.loss, ActorCritic.critic_loss), which include 0.5 log(2 pi)
  per element; ours is 1/2 squared error. Same gradients; the recorded reward, model and critic losses have the
  constant (times the mean weight, for the critic) subtracted.

Not patched, as ours follows PRO there: TF's Adam epsilon, added to sqrt(v) before the bias correction (our
``adam_eps: tf``); with a discount head, no imagination start at each sequence's last posterior state
(agent.py:73-75) and the start's discount from the head (agent.py:174; both under ``dv2_actor: tf``).
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
from compare import (  # tools/golden/compare.py, beside this script
    parse_args,
    print_comparison,
    reference_commit,
    write_golden_file,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
GOLDEN = ROOT / "tests" / "golden"
REFERENCE_URL = "https://github.com/fdeng18/dreamer-pro"
REGENERATE = (
    "python tools/golden/make_dreamerpro.py --export /tmp/dreamerpro_ours && "
    "/tmp/tfvenv/bin/python tools/golden/make_dreamerpro.py --reference /tmp/dreamerpro-ref "
    "--ours /tmp/dreamerpro_ours"
)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# Not recorded with the settings: they change how fast the update runs, not what it computes (eager fp32 here).
SPEED_KNOBS = ("compile", "cuda_graphs")
# Settings PRO has no knob for: ours must have its fixed behaviour.
FIXED = {
    "act": "elu",
    "norm": False,
    "initial": "zeros",
    "unimix": 0.0,
    "action_clip": 0.0,
    "gru_norm": True,
    "gru_bias": True,
    "cnn": "dv2",
    "reward_head": "mse",
    "critic_head": "mse",
    "kl": "balance",
    "returns": "dv2",
    "dv2_actor": "tf",
    "adam_eps": "tf",
    "actor_dist": "tanh_normal",
    "critic_target": "slow",
    "critic_slowreg": 0.0,
    "return_norm": "none",
    "weight_decay": "decoupled",
    "imag_starts": 0,
    "carry_state": False,
    "precision": "fp32",
}


def export(directory: Path) -> None:
    """Per case, our weights (by our parameter names), the batch, the noise and our numbers, for the reference
    run: DIR/<case>.npz."""
    import golden_dreamerpro as setup
    import torch

    torch.set_num_threads(1)
    directory.mkdir(parents=True, exist_ok=True)
    for case in setup.CASES:
        _export_case(setup, case, directory / f"{case}.npz")


def _export_case(setup: Any, case: str, path: Path) -> None:
    agent = setup.build_agent(case)
    arrays = {f"param/{k}": v.detach().numpy().copy() for k, v in agent.modules.named_parameters()}
    arrays.update({f"batch/{k}": v for k, v in setup.make_batch(case).items()})
    arrays.update({f"noise/{k}": v for k, v in setup.noise(case).items()})
    shapes = {k: list(v.shape) for k, v in agent.modules.named_parameters()}
    ours = setup.measure_ours(setup.build_agent(case), setup.make_batch(case), setup.noise(case))
    groups = setup.module_parameters(agent)
    meta = {
        "config": {k: v for k, v in agent.cfg.items() if k not in SPEED_KNOBS},
        "parameters": shapes,
        "ours": ours,
        "actions": setup.ACTIONS,
        "modules": [name for name in setup.MODULES if name in groups],
        "updated": list(groups),
        "setup": {
            "suite": setup.CASES[case],
            "weight_seed": setup.WEIGHT_SEED,
            "batch_seed": setup.BATCH_SEED,
            "noise_seed": setup.NOISE_SEED,
            "image_size": setup.IMAGE_SIZE,
            "actions": setup.ACTIONS,
            "tiny": setup.TINY,
        },
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)
    print(f"wrote {path}: {sum(k.startswith('param/') for k in arrays)} tensors")


# ------------------------------------------------------------------------------------------ the mapping


def reference_weights(ours: dict[str, np.ndarray], deter: int) -> dict[str, np.ndarray]:
    """Our parameters -> PRO's variables, named ``<module path>.<variable>`` (a path walks attributes,
    ``Module.get`` names and dict keys from ``wm`` = WorldModel and ``ac`` = ActorCritic).

    * Dense kernels are (in, out): the transpose of our Linear weights. Conv2D kernels are (kh, kw, in, out),
      ours (out, in, kh, kw).
    * The encoder flattens NHWC maps (h, w, c), ours NCHW (c, h, w): every layer reading the embedding
      (the posterior input, the obs projection, the EMA projection) has its input columns permuted.
    * Features: ours [deter, stoch], PRO's get_feat [stoch, deter]: layers reading features (reward, actor,
      critic, slow critic, feat projection) have their input columns swapped.
    * RSSM: our split Linears are PRO's one Dense over the concatenation: img_in_stoch | img_in_action ->
      img_in over [stoch, action]; obs_in_deter | obs_in_embed -> obs_out over [deter, embed].
      img_out.0.0 -> img_out, img_out.1 -> img_dist, obs_out -> obs_dist, cell.linear/norm -> _cell._layer /
      _cell._norm (LayerNormalization gamma, beta), prototypes.vectors -> rssm._prototypes.
    * MLPs: our Sequential Linears 0, 2, ... -> h0, h1, ..., the last -> out.out (the actor's [mean, std]
      rows -> out.out and out.std).
    """
    out: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        used.add(name)
        return ours[name]

    def dense(path: str, weight: np.ndarray, bias: np.ndarray | None) -> None:
        out[f"{path}.kernel"] = np.ascontiguousarray(weight.T)
        if bias is not None:
            out[f"{path}.bias"] = bias

    channels = ours["wm.cnn_encoder.net.6.weight"].shape[0]
    embed = ours["wm.obs_proj.weight"].shape[1]
    side = int(round(math.sqrt(embed // channels)))
    nhwc = np.arange(embed).reshape(channels, side, side).transpose(1, 2, 0).reshape(-1)

    def swap_feat(weight: np.ndarray) -> np.ndarray:
        return np.concatenate([weight[:, deter:], weight[:, :deter]], 1)

    for ours_cnn, ref_cnn in (("wm.cnn_encoder", "wm.encoder"), ("wm.ema_encoder", "wm._ema_encoder")):
        for index in range(4):
            weight = take(f"{ours_cnn}.net.{2 * index}.weight")
            out[f"{ref_cnn}.h{index}.kernel"] = np.ascontiguousarray(weight.transpose(2, 3, 1, 0))
            out[f"{ref_cnn}.h{index}.bias"] = take(f"{ours_cnn}.net.{2 * index}.bias")
    for ours_proj, ref_proj in (("wm.obs_proj", "wm.rssm.obs_proj"), ("wm.ema_obs_proj", "wm._ema_obs_proj")):
        dense(ref_proj, take(f"{ours_proj}.weight")[:, nhwc], take(f"{ours_proj}.bias"))
    dense("wm.rssm.feat_proj", swap_feat(take("wm.feat_proj.weight")), take("wm.feat_proj.bias"))
    out["wm.rssm._prototypes"] = take("wm.prototypes.vectors")

    rssm = "wm.rssm."
    dense(
        "wm.rssm.img_in",
        np.concatenate([take(rssm + "img_in_stoch.weight"), take(rssm + "img_in_action.weight")], 1),
        take(rssm + "img_in_stoch.bias"),
    )
    dense(
        "wm.rssm.obs_out",
        np.concatenate([take(rssm + "obs_in_deter.weight"), take(rssm + "obs_in_embed.weight")[:, nhwc]], 1),
        take(rssm + "obs_in_deter.bias"),
    )
    dense("wm.rssm._cell._layer", take(rssm + "cell.linear.weight"), take(rssm + "cell.linear.bias"))
    out["wm.rssm._cell._norm.gamma"] = take(rssm + "cell.norm.weight")
    out["wm.rssm._cell._norm.beta"] = take(rssm + "cell.norm.bias")
    for ours_mod, ref_mod in (("img_out.0.0", "img_out"), ("img_out.1", "img_dist"), ("obs_out", "obs_dist")):
        dense(f"wm.rssm.{ref_mod}", take(rssm + f"{ours_mod}.weight"), take(rssm + f"{ours_mod}.bias"))

    heads = {
        "wm.reward_head": "wm.heads.reward",
        "wm.cont_head": "wm.heads.discount",
        "ac.actor": "ac.actor",
        "ac.critic": "ac.critic",
        "ac.slow_critic": "ac._target_critic",
    }
    for prefix, ref in heads.items():
        indices = sorted(
            {int(n.removeprefix(prefix + ".").split(".")[0]) for n in ours if n.startswith(prefix)}
        )
        for position, index in enumerate(indices):
            weight, bias = take(f"{prefix}.{index}.weight"), take(f"{prefix}.{index}.bias")
            if position == 0:
                weight = swap_feat(weight)
            if index != indices[-1]:
                dense(f"{ref}.h{position}", weight, bias)
            elif prefix == "ac.actor":
                half = weight.shape[0] // 2
                dense(f"{ref}.out.out", weight[:half], bias[:half])
                dense(f"{ref}.out.std", weight[half:], bias[half:])
            else:
                dense(f"{ref}.out.out", weight, bias)
    unused = sorted(set(ours) - used)
    if unused:
        raise ValueError(f"our parameters without a place in the reference: {unused}")
    return out


# ------------------------------------------------------------------------------------ the reference side


def _import_reference(ref: Path) -> tuple[Any, Any]:
    """PRO's ``common`` package and ``agent`` module under TF 2.15, with the shims the docstring lists."""
    import tensorflow as tf

    tf.config.run_functions_eagerly(True)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    precision = tf.keras.mixed_precision
    sys.modules["tensorflow.keras.mixed_precision.experimental"] = precision
    precision.experimental = precision
    tf.optimizers.Adam = tf.keras.optimizers.legacy.Adam

    class Until:
        def __init__(self, until: int):
            self._until = until

        def __call__(self, step: int) -> bool:
            return not self._until or step < self._until

    sys.modules["elements"] = types.SimpleNamespace(Until=Until)
    pro = ref / "DreamerPro"
    common = types.ModuleType("common")
    common.__path__ = [str(pro / "common")]
    sys.modules["common"] = common
    for name in ("other", "tfutils", "dists", "nets"):  # the order of its __init__ (Module before nets)
        module = importlib.import_module(f"common.{name}")
        common.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
    sys.path.insert(0, str(pro / "dreamerv2"))
    agent = importlib.import_module("agent")
    return common, agent


class AttrDict(dict):
    """PRO's config object: nested mappings read by attribute or unpacked with **."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as error:
            raise AttributeError(name) from error


def reference_config(ref: Path, cfg: dict[str, Any], suite: str) -> AttrDict:
    """PRO configs.yaml ``defaults`` (+ ``dmc`` for our suite dmc) with our tiny agent's values."""
    import yaml

    for key, value in FIXED.items():
        if cfg[key] != value:
            raise SystemExit(
                f"agent.{key}={cfg[key]!r} has no counterpart in the reference; it needs {value!r}"
            )
    configs = yaml.safe_load((ref / "DreamerPro" / "dreamerv2" / "configs.yaml").read_text())
    config = json.loads(json.dumps(configs["defaults"]))

    def put(key: str, value: Any) -> None:
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf].update(value)
        else:
            node[leaf] = value

    if suite not in ("dmc", ""):
        raise SystemExit(f"suite {suite!r} has no reference section here; valid: dmc or '' (defaults)")
    for key, value in configs["dmc"].items() if suite == "dmc" else ():
        put(key, value)
    head = {"layers": cfg["layers"], "units": cfg["units"]}
    weights = cfg["balancer"]["weights"]
    terms = cfg["obs_terms"]
    if weights["obs"] != 1.0:
        raise SystemExit("balancer weight obs must be 1 (PRO scales swav, temp and norm one by one)")
    overrides = {
        "rssm": {
            "hidden": cfg["hidden"],
            "deter": cfg["deter"],
            "stoch": cfg["stoch"],
            "discrete": False if cfg["latent"] == "gaussian" else cfg["classes"],
            "std_act": "sigmoid2",
            "min_std": cfg["latent_min_std"],
            "warm_up": cfg["proto_warm_up"],
            "num_prototypes": cfg["proto_count"],
            "proto": cfg["proto_dim"],
            "temperature": cfg["proto_temperature"],
            "sinkhorn_eps": cfg["sinkhorn_eps"],
            "sinkhorn_iters": cfg["sinkhorn_iters"],
        },
        "encoder.depth": cfg["cnn_depth"],
        "reward_head": head,
        "discount_head": head,
        "actor": {**head, "min_std": cfg["actor_min_std"]},
        "critic": head,
        "kl": {"free": cfg["kl_free"], "balance": cfg["kl_balance"], "free_avg": cfg["kl_free_avg"]},
        "loss_scales": {
            **terms,
            "kl": weights["dyn"],
            "reward": weights["reward"],
            "discount": weights["cont"],
        },
        "discount": cfg["discount"],
        "discount_lambda": cfg["lambda"],
        "imag_horizon": cfg["imag_horizon"] + 1,  # PRO counts the start state
        "actor_grad": {"backprop": "dynamics", "both": "both", "reinforce": "reinforce"}[
            cfg["actor_grad_cont"]
        ],
        "actor_grad_mix": cfg["actor_grad_mix"],
        "actor_ent": cfg["actor_ent"],
        "slow_target_update": cfg["slow_critic_every"],
        "slow_target_fraction": cfg["slow_critic_fraction"],
        "freeze_prototypes_iters": cfg["proto_freeze"],
        "ema_update_every": cfg["ema_every"],
        "ema_update_fraction": cfg["ema_fraction"],
        "aug.max_delta": cfg["aug_max_delta"],
        "pred_discount": cfg["pred_cont"],
        "grad_heads": ["reward", "discount"] if cfg["pred_cont"] else ["reward"],
        "clip_rewards": cfg["clip_rewards"],
        "precision": 32,
    }
    for name in ("model", "actor", "critic"):
        overrides[f"{name}_opt"] = {
            "lr": cfg[f"{name}_lr"],
            "eps": cfg[f"{name}_eps"],
            "clip": cfg[f"{name}_clip"],
            "wd": cfg[f"{name}_wd"],
        }
    for key, value in overrides.items():
        put(key, value)

    def wrap(node: Any) -> Any:
        return AttrDict({k: wrap(v) for k, v in node.items()}) if isinstance(node, dict) else node

    return wrap(config)


def _resolve(roots: dict[str, Any], path: str) -> Any:
    node = roots[path.split(".")[0]]
    for part in path.split(".")[1:]:
        if isinstance(node, dict):
            node = node[part]
        elif part in getattr(node, "_modules", {}):
            node = node._modules[part]
        else:
            node = getattr(node, part)
    return node


def run_reference(ref: Path, npz: Path) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """PRO's DreamerPro Agent.train on the batch with our weights and noise, patched as the module docstring
    says. Returns (values, meta, the patches applied)."""
    import tensorflow as tf

    common, agent_module = _import_reference(ref)
    data = np.load(npz)
    meta = json.loads(bytes(data["meta"]).decode())
    cfg = meta["config"]
    suite = meta["setup"]["suite"]
    ours = {k.removeprefix("param/"): data[k] for k in data.files if k.startswith("param/")}
    shared = {k.removeprefix("noise/"): data[k] for k in data.files if k.startswith("noise/")}
    batch = {k: tf.constant(data[f"batch/{k}"]) for k in ("image", "action", "reward")}
    if cfg["pred_cont"]:  # PRO's env gives discount 1 - terminal; its preprocess multiplies by gamma
        batch["discount"] = tf.constant(1 - data["batch/is_terminal"])
    config = reference_config(ref, cfg, suite)

    step = tf.Variable(0, dtype=tf.int64)
    wm = agent_module.WorldModel(step, config)
    ac = agent_module.ActorCritic(config, step, meta["actions"])
    pro = agent_module.Agent.__new__(agent_module.Agent)
    common.Module.__init__(pro)
    pro.config, pro.wm, pro._task_behavior = config, wm, ac

    # Build every layer (Keras builds on first call) with PRO's own random numbers, then set the weights.
    wm.loss(batch)
    feat = tf.zeros([1, wm.rssm.get_feat(wm.rssm.initial(1)).shape[-1]])
    for net in (ac.actor, ac.critic, ac._target_critic):
        net(feat)
    roots = {"wm": wm, "ac": ac}
    mapped = reference_weights(ours, cfg["deter"])
    assigned = set()
    for name, value in mapped.items():
        variable = _resolve(roots, name)
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"{name}: reference {tuple(variable.shape)}, ours {value.shape}")
        variable.assign(value)
        assigned.add(variable.ref())
    groups = _reference_groups(wm, ac)
    unset = [v.name for group in groups.values() for v in group if v.ref() not in assigned]
    if unset or len(assigned) != len(mapped):
        raise ValueError(f"mapping incomplete: reference variables not set {unset}")
    before = {name: [v.numpy().copy() for v in group] for name, group in groups.items()}

    captured: dict[str, Any] = {"targets": [], "grads": {}}
    latent = iter([*shared["post"], *shared["imag"]])
    actions = iter(shared["action"])
    nets = sys.modules["common.nets"]
    real_tfd = nets.tfd

    class SharedNoiseMVN(real_tfd.MultivariateNormalDiag):
        def sample(self, sample_shape=(), seed=None, name="sample", **kwargs):
            draw = next(latent)
            if tuple(draw.shape) != tuple(self.loc.shape):
                raise ValueError(f"latent noise {draw.shape} for a sample of shape {self.loc.shape}")
            return self.loc + self.scale.diag_part() * draw

    tfd_view = types.SimpleNamespace(**{k: getattr(real_tfd, k) for k in dir(real_tfd) if k[0] != "_"})
    tfd_view.MultivariateNormalDiag = SharedNoiseMVN

    def onehot_sample(self, sample_shape=(), seed=None):
        """The most likely class with PRO's straight-through gradient (dists.py OneHotDist.sample)."""
        probs = self.probs_parameter()
        hard = tf.one_hot(tf.argmax(probs, -1), probs.shape[-1], dtype=probs.dtype)
        sample = hard + probs - tf.stop_gradient(probs)
        leading = tf.reshape(tf.cast(sample_shape, tf.int32), [-1])  # Independent asks for n = 1
        return tf.broadcast_to(sample, tf.concat([leading, tf.shape(probs)], 0))

    def parts(dist: Any) -> tuple[Any, Any, Any]:
        """SampleDist(Independent(TransformedDistribution(Normal, TanhBijector))) -> (loc, scale, bijector)."""
        transformed = dist._dist.distribution
        return transformed.distribution.loc, transformed.distribution.scale, transformed.bijector

    def action_sample(self, sample_shape=(), seed=None):
        loc, scale, bijector = parts(self)
        draw = next(actions)
        if tuple(draw.shape) != tuple(loc.shape):
            raise ValueError(f"action noise {draw.shape} for a sample of shape {loc.shape}")
        return bijector.forward(loc + scale * draw)

    def action_entropy(self):
        loc, scale, bijector = parts(self)
        draw = shared["entropy"][:, : loc.shape[0]]
        sample = bijector.forward(loc + scale * draw)  # TFP caches x for log_prob, as in PRO's sample()
        entropy = -tf.reduce_mean(self.log_prob(sample), 0)
        captured["entropy"] = entropy
        return entropy

    def action_mode(self):  # only imagine()'s unused start action reads it
        loc, _, bijector = parts(self)
        return bijector.forward(loc)

    def uniform(shape, minval, maxval, **kwargs):
        delta = shared["aug_delta"]
        limit = cfg["aug_max_delta"]
        if list(shape) != list(delta.shape) or (minval, maxval) != (-limit, limit):
            raise ValueError(f"augmentation draw {shape} in [{minval}, {maxval}]; shared {delta.shape}")
        return tf.constant(delta)

    rssm_class, optimizer_class = common.RSSM, common.Optimizer
    obs_step, img_step, observe = rssm_class.obs_step, rssm_class.img_step, rssm_class.observe
    sinkhorn, optimizer_call = rssm_class.sinkhorn, optimizer_class.__call__
    target, critic_loss = agent_module.ActorCritic.target, agent_module.ActorCritic.critic_loss
    in_obs_step = [False]

    def obs_step_capture(self, *args, **kwargs):
        in_obs_step[0] = True
        try:
            return obs_step(self, *args, **kwargs)
        finally:
            in_obs_step[0] = False

    def img_step_mode_in_obs(self, prev_state, prev_action, sample=True):
        return img_step(self, prev_state, prev_action, sample and not in_obs_step[0])

    def observe_capture(self, *args, **kwargs):
        captured["post"], captured["prior"] = observe(self, *args, **kwargs)
        return captured["post"], captured["prior"]

    def sinkhorn_capture(self, scores):
        captured["targets"].append(sinkhorn(self, scores))
        return captured["targets"][-1]

    def optimizer_capture(self, grads, varibs, metrics):
        captured["grads"].update({v.ref(): g for g, v in zip(grads, varibs) if g is not None})
        return optimizer_call(self, grads, varibs, metrics)

    def target_capture(self, *args, **kwargs):
        captured["ret"], captured["weight"], mets = target(self, *args, **kwargs)
        return captured["ret"], captured["weight"], mets

    def critic_loss_capture(self, *args, **kwargs):
        captured["critic_loss"], mets = critic_loss(self, *args, **kwargs)
        return captured["critic_loss"], mets

    applied = ["normal constant"]
    patches = [
        (nets, "tfd", tfd_view),
        (sys.modules["common.other"], "samplers", types.SimpleNamespace(uniform=uniform)),
        (common.OneHotDist, "sample", onehot_sample),
        (common.SampleDist, "sample", action_sample),
        (common.SampleDist, "entropy", action_entropy),
        (common.SampleDist, "mode", action_mode),
        (rssm_class, "obs_step", obs_step_capture),
        (rssm_class, "img_step", img_step_mode_in_obs),
        (rssm_class, "observe", observe_capture),
        (rssm_class, "sinkhorn", sinkhorn_capture),
        (optimizer_class, "__call__", optimizer_capture),
        (agent_module.ActorCritic, "target", target_capture),
        (agent_module.ActorCritic, "critic_loss", critic_loss_capture),
    ]
    originals = [(owner, name, owner.__dict__.get(name)) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        _, metrics = pro.train(batch)
    finally:  # the next case builds its agent on the unpatched reference
        for owner, name, value in originals:
            if value is None:  # SampleDist.sample etc. come through its __getattr__
                delattr(owner, name)
            else:
                setattr(owner, name, value)
    if next(latent, None) is not None or next(actions, None) is not None:
        raise ValueError("noise draws left unused: the reference drew fewer samples than shared")
    metrics = {k: float(v) for k, v in metrics.items()}

    post, prior = captured["post"], captured["prior"]
    weight = captured["weight"].numpy()
    if cfg["latent"] == "gaussian":
        stats = {
            f"{n}_{k}": s[k].numpy() for n, s in (("post", post), ("prior", prior)) for k in ("mean", "std")
        }
    else:
        stats = {
            f"{n}_probs": tf.nn.softmax(s["logit"]).numpy() for n, s in (("post", post), ("prior", prior))
        }
    values: dict[str, Any] = {
        "loss/swav": metrics["swav_loss"],
        "loss/temp": metrics["temp_loss"],
        "loss/norm": metrics["norm_loss"],
        "loss/reward": metrics["reward_loss"] - HALF_LOG_2PI,
        "loss/kl": metrics["kl_loss"],
        "loss/model": metrics["model_loss"] - HALF_LOG_2PI * config.loss_scales["reward"],
        "kl": metrics["model_kl"],
        "post_entropy": metrics["post_ent"],
        "prior_entropy": metrics["prior_ent"],
        "post_deter": post["deter"].numpy().tolist(),
        **{key: value.tolist() for key, value in stats.items()},
        "sinkhorn_targets": np.concatenate([t.numpy() for t in captured["targets"]], 1).tolist(),
        "lambda_return": captured["ret"].numpy().tolist(),
        "actor_entropy": float(tf.reduce_mean(captured["entropy"][:-1])),
        "loss/actor": metrics["actor_loss"],
        "loss/critic": metrics["critic_loss"] - HALF_LOG_2PI * float(weight[:-1].mean()),
    }
    if cfg["pred_cont"]:
        values["loss/cont"] = metrics["discount_loss"]
    for name in meta["modules"]:
        grads = [captured["grads"][v.ref()].numpy() for v in groups[name] if v.ref() in captured["grads"]]
        values[f"grad_norm/{name}"] = math.sqrt(
            sum(float(np.square(g, dtype=np.float64).sum()) for g in grads)
        )
    for name in meta["updated"]:
        moved = [v.numpy() - b for v, b in zip(groups[name], before[name])]
        values[f"update_norm/{name}"] = math.sqrt(
            sum(float(np.square(m, dtype=np.float64).sum()) for m in moved)
        )
    return values, meta, applied


def _reference_groups(wm: Any, ac: Any) -> dict[str, list[Any]]:
    """PRO's variables per module, the groups tests/golden_dreamerpro.py measures."""
    rssm = wm.rssm
    dynamics = [rssm._cell] + [
        rssm._modules[n] for n in ("img_in", "img_out", "img_dist", "obs_out", "obs_dist")
    ]
    return {
        "encoder": list(wm.encoder.variables),
        "rssm": [v for m in dynamics for v in m.variables],
        "obs_proj": list(rssm._modules["obs_proj"].variables),
        "feat_proj": list(rssm._modules["feat_proj"].variables),
        "prototypes": [rssm._prototypes],
        "reward": list(wm.heads["reward"].variables),
        "cont": list(wm.heads["discount"].variables) if "discount" in wm.heads else [],
        "actor": list(ac.actor.variables),
        "critic": list(ac.critic.variables),
        "ema_encoder": list(wm._ema_encoder.variables),
        "ema_obs_proj": list(wm._ema_obs_proj.variables),
        "slow_critic": list(ac._target_critic.variables),
    }


def write_golden(
    case: str, values: dict[str, Any], meta: dict[str, Any], applied: list[str], commit: str
) -> None:
    golden = {
        "reference": {"url": REFERENCE_URL, "commit": commit, "directory": "DreamerPro"},
        "reference_patches": applied,
        "regenerate": REGENERATE,
        "case": case,
        **meta["setup"],
        "config": meta["config"],
        "parameters": meta["parameters"],
        "values": values,
    }
    path = GOLDEN / f"{case}.json"
    write_golden_file(path, golden)
    print(f"wrote {path}")


def main() -> None:
    args = parse_args(
        __doc__.split("\n\n")[0],
        "fdeng18/dreamer-pro",
        "write our weights, batch, noise and numbers (DIR/<case>.npz)",
        "the directory written by --export",
    )
    if args.export:
        sys.path.insert(0, str(ROOT))
        export(args.export)
        return
    if not (args.reference / "DreamerPro" / "dreamerv2" / "agent.py").is_file():
        print(f"--reference={args.reference} is invalid; valid: a checkout of {REFERENCE_URL}")
        sys.exit(2)
    exported = sorted(args.ours.glob("*.npz"))
    if not exported:
        print(f"--ours={args.ours} is invalid; valid: the directory written by --export")
        sys.exit(2)
    commit = reference_commit(args.reference, args.commit)
    for npz in exported:
        values, meta, applied = run_reference(args.reference.resolve(), npz)
        print(f"\n{npz.stem} (reference patches: {', '.join(applied)})")
        print_comparison(meta["ours"], values)
        write_golden(npz.stem, values, meta, applied, commit)


if __name__ == "__main__":
    main()
