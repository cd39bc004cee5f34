"""Regenerate the DreamerV2 / HarmonyDream golden files (tests/golden/) from HarmonyDream's reference.

The reference is thuml/HarmonyDream (https://github.com/thuml/HarmonyDream), directory wmlib-torch: the
PyTorch DreamerV2 with the harmonious loss that the HarmonyDream paper ran. Check it out anywhere, make a
Python environment that imports it unpatched on a CPU, e.g.

    python3.11 -m venv <refvenv> && <refvenv>/bin/pip install torch==2.13.0 "numpy<2" \
        "ruamel.yaml==0.17.21" gym==0.26.2 torchtyping "typeguard<3" einops scipy \
        opencv-python-headless imageio tensorboard cloudpickle tqdm

and run, from the repository root:

    <refvenv>/bin/python tools/golden/make_dreamerv2.py --reference <checkout>/wmlib-torch

Two processes, because the reference environment cannot import our package (gymnasium, numpy 2) and ours
does not have the reference's (gym 0.26, ruamel.yaml 0.17):
1. ``--export DIR`` runs under our Python (``--ours-python``, default .venv/bin/python): for each case it
   builds our agent (tests/golden_dreamerv2.py: tiny config, weights from a torch seed, a batch from a numpy
   seed), writes the weights under the reference's parameter names (``reference_weights``: the mapping) with
   the batch to DIR/<case>.npz, then runs our update and writes our numbers to DIR/<case>.json.
2. This process builds the reference agent with the same configuration (``reference_config``), loads those
   weights, runs its ``DreamerV2.train(batch, state)`` on each batch as its train script does (carrying the
   returned state) with the same random numbers (``SameNoise``), records what it computed, writes the golden
   files and prints ours against theirs.

Only numbers, names, shapes and the settings are stored; nothing of the reference's code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from compare import reference_commit  # tools/golden/compare.py, beside this script

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
REFERENCE_URL = "https://github.com/thuml/HarmonyDream"
REGENERATE = (
    "<refvenv>/bin/python tools/golden/make_dreamerv2.py --reference <HarmonyDream checkout>/wmlib-torch"
)
# Our module prefix -> the reference's, for the gradient norm per module.
REFERENCE_MODULES = {
    "encoder": "wm.encoder.",
    "rssm": "wm.rssm.",
    "decoder": "wm.heads.decoder.",
    "reward": "wm.heads.reward.",
    "cont": "wm.heads.discount.",
    "actor": "_task_behavior.actor.",
    "critic": "_task_behavior.critic.",
}
# Differences between ours and the reference that the golden batch avoids on purpose (they remain).
KNOWN_DIFFERENCES = [
    "Without a discount head the reference ignores is_terminal (agents/base.py imagine: discount * ones);"
    " ours gives an imagination start on a terminal state weight 0. The batches of cases without a discount"
    " head hold no terminal (our suites without a continue head never set is_terminal).",
]
# Our harmony group -> the reference's scalar (wmlib agents/dreamerv2.py: s1 reward, s2 image, s3 kl).
REFERENCE_HARMONY = {"reward": "wm.harmony_s1", "obs": "wm.harmony_s2", "dyn": "wm.harmony_s3"}


# ---------------------------------------------------------------------------------------------------------
# Our side (runs under our Python)


def _linears(sequential: Any) -> list[Any]:
    import torch

    return [m for m in sequential if isinstance(m, torch.nn.Linear)]


def _mlp(prefix: str, sequential: Any, deter: int, split_out: int = 0) -> dict[str, np.ndarray]:
    """Our MLP (Linear, act, ..., Linear) -> reference MLP dense0..N-1 + out.out. The first layer reads the
    latent feature, ours [deter, stoch] and theirs [stoch, deter]: its input columns are rotated. With
    ``split_out`` (the truncated-normal actor) our one output Linear (mean, std) becomes theirs out.out (mean)
    and out.std."""
    layers = _linears(sequential)
    out: dict[str, np.ndarray] = {}
    for index, layer in enumerate(layers):
        weight, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
        if index == 0:
            weight = np.concatenate([weight[:, deter:], weight[:, :deter]], 1)
        if index < len(layers) - 1:
            out[f"{prefix}.dense{index}.weight"], out[f"{prefix}.dense{index}.bias"] = weight, bias
        elif split_out:
            out[f"{prefix}.out.out.weight"], out[f"{prefix}.out.out.bias"] = (
                weight[:split_out],
                bias[:split_out],
            )
            out[f"{prefix}.out.std.weight"], out[f"{prefix}.out.std.bias"] = (
                weight[split_out:],
                bias[split_out:],
            )
        else:
            out[f"{prefix}.out.out.weight"], out[f"{prefix}.out.out.bias"] = weight, bias
    return out


def reference_weights(agent: Any) -> dict[str, np.ndarray]:
    """Our agent's weights under the reference's parameter names (wmlib-torch, DreamerV2, ensemble 1).

    ours                                         theirs
    wm.cnn_encoder.net.{0,2,4,6}                 wm.encoder.conv{0..3}
    wm.rssm.img_in_stoch (H,S*K), img_in_action  wm.rssm.img_in (H, S*K+A) = [stoch | action] columns,
      (H,A, no bias)                               bias = img_in_stoch.bias
    wm.rssm.cell.linear, cell.norm               wm.rssm._cell._layer, _cell._norm (GRUCell(norm=True))
    wm.rssm.img_out.0.0, img_out.1               wm.rssm.img_out_0, img_dist_0
    wm.rssm.obs_in_deter (H,D), obs_in_embed     wm.rssm.obs_out (H, D+E) = [deter | embed] columns,
      (H,E, no bias)                               bias = obs_in_deter.bias
    wm.rssm.obs_out                              wm.rssm.obs_dist
    wm.cnn_decoder.linear, net.{0,2,4,6}         wm.heads.decoder.convin (columns rotated), conv{0..3}
    wm.reward_head, ac.critic, ac.slow_critic    wm.heads.reward, _task_behavior.critic, _target_critic
    ac.actor (last Linear: 2A rows, mean|std)    _task_behavior.actor (out.out: mean rows, out.std: std)
    balancer.log_sigma.{reward,obs,dyn}          wm.harmony_s1, s2, s3
    """
    wm, ac = agent.wm, agent.ac
    deter = wm.rssm.deter
    rssm = wm.rssm
    np_ = lambda t: t.detach().numpy().copy()  # noqa: E731
    out = {}
    convs = [m for m in wm.cnn_encoder.net if hasattr(m, "kernel_size")]
    for index, conv in enumerate(convs):
        out[f"wm.encoder.conv{index}.weight"], out[f"wm.encoder.conv{index}.bias"] = (
            np_(conv.weight),
            np_(conv.bias),
        )
    out["wm.rssm.img_in.weight"] = np.concatenate(
        [np_(rssm.img_in_stoch.weight), np_(rssm.img_in_action.weight)], 1
    )
    out["wm.rssm.img_in.bias"] = np_(rssm.img_in_stoch.bias)
    out["wm.rssm._cell._layer.weight"] = np_(rssm.cell.linear.weight)
    if rssm.cell.linear.bias is not None:
        out["wm.rssm._cell._layer.bias"] = np_(rssm.cell.linear.bias)
    out["wm.rssm._cell._norm.weight"], out["wm.rssm._cell._norm.bias"] = (
        np_(rssm.cell.norm.weight),
        np_(rssm.cell.norm.bias),
    )
    prior_hidden, prior_out = _linears(rssm.img_out[0])[0], rssm.img_out[1]
    out["wm.rssm.img_out_0.weight"], out["wm.rssm.img_out_0.bias"] = (
        np_(prior_hidden.weight),
        np_(prior_hidden.bias),
    )
    out["wm.rssm.img_dist_0.weight"], out["wm.rssm.img_dist_0.bias"] = (
        np_(prior_out.weight),
        np_(prior_out.bias),
    )
    out["wm.rssm.obs_out.weight"] = np.concatenate(
        [np_(rssm.obs_in_deter.weight), np_(rssm.obs_in_embed.weight)], 1
    )
    out["wm.rssm.obs_out.bias"] = np_(rssm.obs_in_deter.bias)
    out["wm.rssm.obs_dist.weight"], out["wm.rssm.obs_dist.bias"] = (
        np_(rssm.obs_out.weight),
        np_(rssm.obs_out.bias),
    )
    linear = wm.cnn_decoder.linear
    weight = np_(linear.weight)
    out["wm.heads.decoder.convin.weight"] = np.concatenate([weight[:, deter:], weight[:, :deter]], 1)
    out["wm.heads.decoder.convin.bias"] = np_(linear.bias)
    deconvs = [m for m in wm.cnn_decoder.net if hasattr(m, "kernel_size")]
    for index, conv in enumerate(deconvs):
        out[f"wm.heads.decoder.conv{index}.weight"] = np_(conv.weight)
        out[f"wm.heads.decoder.conv{index}.bias"] = np_(conv.bias)
    out.update(_mlp("wm.heads.reward", wm.reward_head, deter))
    if wm.cont_head is not None:
        out.update(_mlp("wm.heads.discount", wm.cont_head, deter))
    out.update(
        _mlp("_task_behavior.actor", ac.actor, deter, split_out=0 if agent.discrete else agent.actions)
    )
    out.update(_mlp("_task_behavior.critic", ac.critic, deter))
    out.update(_mlp("_task_behavior._target_critic", ac.slow_critic, deter))
    for group, name in REFERENCE_HARMONY.items():
        if hasattr(agent.balancer, "log_sigma"):
            out[name] = np_(agent.balancer.log_sigma[group])
    return out


def export(directory: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    import golden_dreamerv2 as case_module

    for case in case_module.CASES:
        agent = case_module.build_agent(case)
        batches = case_module.case_batches(case)
        shapes, sums = case_module.parameter_shapes(agent), case_module.weight_sums(agent)
        weights = {f"weight/{k}": v for k, v in reference_weights(agent).items()}
        data = {f"batch{i}/{k}": v for i, batch in enumerate(batches, 1) for k, v in batch.items()}
        np.savez(directory / f"{case}.npz", **weights, **data)
        values = case_module.compute(agent, batches)
        summary = {
            "agent": case_module.CASES[case][0],
            "suite": case_module.CASES[case][1],
            "discrete": case_module.CASES[case][2],
            "config": case_module.agent_config(case),
            "tiny": case_module.TINY,
            "seeds": case_module.SEEDS,
            "harmony_log_sigma": case_module.HARMONY_LOG_SIGMA
            if hasattr(agent.balancer, "log_sigma")
            else None,
            "parameters": shapes,
            "weight_abs_sums": sums,
            "values": values,
        }
        (directory / f"{case}.json").write_text(json.dumps(summary))


# ---------------------------------------------------------------------------------------------------------
# The reference's side (runs under the reference's Python)


def reference_config(configs: dict, suite: str, ours: dict[str, Any], harmony: bool) -> Any:
    """HD configs/dreamerv2.yaml ``defaults`` (+ ``dmc_vision`` for our "dmc" suite, which follows it), with
    the sizes and settings of our tiny config. Settings the reference cannot express must equal its fixed
    behaviour."""
    from wmlib import utils

    fixed = {
        "act": "elu",
        "norm": False,
        "unimix": 0.0,
        "initial": "zeros",
        "action_clip": 0.0,
        "cnn": "dv2",
        "image_loss": "gauss",
        "reward_head": "mse",
        "critic_head": "mse",
        "kl": "balance",
        "actor_dist": "trunc_normal",
        "actor_grad_cont": "backprop",
        "actor_grad_disc": "reinforce",
        "actor_unimix": 0.0,
        "critic_target": "slow",
        "critic_slowreg": 0.0,
        "return_norm": "none",
        "imag_starts": 0,
        "symlog_inputs": False,
    }
    for key, value in fixed.items():
        if ours[key] != value:
            raise SystemExit(
                f"agent.{key}={ours[key]!r} has no counterpart in the reference; it needs {value!r}"
            )
    config = utils.Config(configs["defaults"])
    if suite == "dmc":
        config = config.update(configs["dmc_vision"])
    elif suite:
        raise SystemExit(f"suite {suite!r} has no reference section here; valid: dmc or '' (defaults)")
    head = {"layers": ours["layers"], "units": ours["units"]}
    heads = ("reward_head", "discount_head", "actor", "critic")
    return config.update(
        {
            "task": "dmc_walker_walk",  # only tells init_modules the image has 3 channels
            "rssm.deter": ours["deter"],
            "rssm.hidden": ours["hidden"],
            "rssm.stoch": ours["stoch"],
            "rssm.discrete": ours["classes"],
            "rssm.ensemble": 1,
            "encoder.cnn_depth": ours["cnn_depth"],
            "decoder.cnn_depth": ours["cnn_depth"],
            **{f"{name}.{k}": v for name in heads for k, v in head.items()},
            "actor.min_std": ours["actor_min_std"],
            "actor_ent": ours["actor_ent"],
            "imag_horizon": ours["imag_horizon"],
            "discount": ours["discount"],
            "discount_lambda": ours["lambda"],
            "kl.balance": ours["kl_balance"],
            "kl.free": ours["kl_free"],
            "kl.free_avg": ours["kl_free_avg"],
            "clip_rewards": ours["clip_rewards"],
            "pred_discount": ours["pred_cont"],
            "grad_heads": ["decoder", "reward", *(["discount"] if ours["pred_cont"] else [])],
            "dataset.batch": ours["batch_size"],
            "dataset.length": ours["batch_length"],
            "model_opt.lr": ours["model_lr"],
            "actor_opt.lr": ours["actor_lr"],
            "critic_opt.lr": ours["critic_lr"],
            "harmony": harmony,
        }
    )


class SameNoise:
    """Feeds the reference the uniforms our update draws, in the same order.

    Ours draws with torch.rand_like from the global generator after torch.manual_seed(noise_seed); here a
    torch.Generator seeded the same gives the same stream (both CPU mt19937). The reference's samplers are
    replaced by the same transforms of those uniforms:
    - one-hot latents and discrete actions (wmlib core/dists.py OneHotDist.sample, torch.multinomial): Gumbel-max,
      argmax(log p - log(-log u)), keeping its straight-through gradient one_hot + p - sg(p);
    - truncated-normal actions (TruncatedStandardNormal.rsample, u ~ U(eps, 1 - eps)): icdf(u) with u clamped
      to (eps, 1 - eps); its clipping to [-1 + 1e-6, 1 - 1e-6] is kept;
    - the prior sample inside the reference's obs_step (its "stoch" is never used: the KL reads the logits)
      draws nothing: obs_step runs its img_step with sample=False. Ours computes no such sample.
    Its ensemble index draw (tdist.Uniform, ensemble 1: always 0) still uses the global generator, unseen here.
    """

    def __init__(self, seed: int):
        import torch

        self.generator = torch.Generator().manual_seed(seed)

    def uniform(self, shape: Any) -> Any:
        import torch

        return torch.rand(tuple(shape), generator=self.generator)

    def patches(self) -> list[tuple[Any, str, Any]]:
        """(class, attribute, replacement) for each sampler."""
        import torch
        from wmlib.core import dists
        from wmlib.nets.dynamics.rssm import EnsembleRSSM

        noise = self

        def onehot_sample(self, sample_shape=()):
            probs = self.probs
            u = noise.uniform(probs.shape).clamp(1e-20, 1.0)
            index = (probs.detach().log() - torch.log(-torch.log(u))).argmax(-1)
            hard = torch.nn.functional.one_hot(index, probs.shape[-1]).to(probs.dtype)
            return hard + probs - probs.detach()

        def trunc_rsample(self, sample_shape=()):
            shape = self._extended_shape(sample_shape)
            u = noise.uniform(shape).clamp(self._dtype_min_gt_0, self._dtype_max_lt_1)
            return self.icdf(u)

        obs_step, img_step = EnsembleRSSM.obs_step, EnsembleRSSM.img_step

        def obs_step_without_prior_sample(self, *args, **kwargs):
            self._golden_in_obs_step = True
            try:
                return obs_step(self, *args, **kwargs)
            finally:
                self._golden_in_obs_step = False

        def img_step_maybe_mode(self, prev_state, prev_action, sample=True):
            return img_step(
                self, prev_state, prev_action, sample and not getattr(self, "_golden_in_obs_step", False)
            )

        return [
            (dists.OneHotDist, "sample", onehot_sample),
            (dists.TruncatedStandardNormal, "rsample", trunc_rsample),
            (EnsembleRSSM, "obs_step", obs_step_without_prior_sample),
            (EnsembleRSSM, "img_step", img_step_maybe_mode),
        ]


def run_reference(reference: Path, case: str, exported: Path) -> dict[str, Any]:
    import gym
    import ruamel.yaml as yaml
    import torch

    sys.path.insert(0, str(reference))
    from wmlib import core, utils
    from wmlib.agents import actor_critic, dreamerv2

    ours = json.loads((exported / f"{case}.json").read_text())
    arrays = np.load(exported / f"{case}.npz")
    configs = yaml.safe_load((reference / "configs" / "dreamerv2.yaml").read_text())
    harmony = ours["harmony_log_sigma"] is not None
    config = reference_config(configs, ours["suite"], ours["config"], harmony)
    image = gym.spaces.Box(0, 255, tuple(arrays["batch1/image"].shape[2:]), np.uint8)
    actions = arrays["batch1/action"].shape[-1]
    torch.manual_seed(0)  # only the reference's own (overwritten) initialisation uses it
    if ours["discrete"]:  # wmlib envs/wrappers.py OneHotAction: a one-hot Box that knows its n
        act_space = gym.spaces.Box(0, 1, (actions,), np.float32)
        act_space.n = actions
    else:
        act_space = gym.spaces.Box(-1, 1, (actions,), np.float32)
    agent = dreamerv2.DreamerV2(config, {"image": image}, {"action": act_space}, utils.Counter(0))
    agent.init_optimizers()
    params = dict(agent.named_parameters())
    weights = {k[len("weight/") :]: v for k, v in arrays.items() if k.startswith("weight/")}
    missing = sorted(set(params) - set(weights))
    unknown = sorted(set(weights) - set(params))
    if unknown or any(not n.endswith("_cell._layer.bias") for n in missing):
        raise SystemExit(f"weight mapping incomplete: reference params not set {missing}, unknown {unknown}")
    with torch.no_grad():
        for name, param in params.items():
            if name in weights:
                if tuple(param.shape) != weights[name].shape:
                    raise SystemExit(f"{name}: reference {tuple(param.shape)}, ours {weights[name].shape}")
                param.copy_(torch.from_numpy(weights[name]))
            else:  # our GRU has no bias: the reference's starts at zero (its init), as ours would
                param.zero_()

    seen: dict[str, Any] = {}
    grads: dict[str, dict[str, torch.Tensor]] = {}
    names = {id(p): n for n, p in params.items()}
    step = core.Optimizer.step

    def recording_step(self, loss, external_scaler=None):
        grads[self._name] = {
            names[id(p)]: p.grad.detach().clone()
            for p in self._opt.param_groups[0]["params"]
            if p.grad is not None
        }
        return step(self, loss, external_scaler)

    loss = dreamerv2.WorldModel.loss

    def recording_loss(self, data, state=None):
        result = loss(self, data, state)
        seen["model_loss"], _, seen["outs"], seen["wm_metrics"] = result
        return result

    target = actor_critic.ActorCritic.target

    def recording_target(self, seq):
        result = target(self, seq)
        # a copy: the reference's actor_loss then adds its entropy bonus to target[1:] in place
        seen["target"] = result[0].detach().clone()
        return result

    actor_loss, critic_loss = actor_critic.ActorCritic.actor_loss, actor_critic.ActorCritic.critic_loss

    def recording_actor_loss(self, seq, target):
        result = actor_loss(self, seq, target)
        seen["actor_loss"], seen["actor_metrics"] = result
        return result

    def recording_critic_loss(self, seq, target):
        result = critic_loss(self, seq, target)
        seen["critic_loss"] = result[0]
        return result

    patches = [
        (core.Optimizer, "step", recording_step),
        (dreamerv2.WorldModel, "loss", recording_loss),
        (actor_critic.ActorCritic, "target", recording_target),
        (actor_critic.ActorCritic, "actor_loss", recording_actor_loss),
        (actor_critic.ActorCritic, "critic_loss", recording_critic_loss),
        *SameNoise(ours["seeds"]["noise"]).patches(),
    ]
    originals = [(owner, name, owner.__dict__[name]) for owner, name, _ in patches]
    values: dict[str, Any] = {}
    state = None  # the train script's CarryOverState: each update starts from the last posterior state
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        for update in range(1, len({k.split("/")[0] for k in arrays if k.startswith("batch")}) + 1):
            prefix = f"batch{update}/"
            batch = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            data = {k: torch.from_numpy(v).float() for k, v in batch.items()}
            data["image"] = data["image"].permute(0, 1, 4, 2, 3)  # the reference's replay stores CHW
            data["is_last"] = torch.zeros_like(data["is_first"])
            before = {name: param.detach().clone() for name, param in params.items()}
            state, _ = agent.train(data, state)
            update_values = _reference_values(seen, grads, params, before, harmony)
            values.update({f"u{update}/{k}": v for k, v in update_values.items()})
        values.update(
            _reference_acting(agent, {k[7:]: v for k, v in arrays.items() if k.startswith("batch1/")})
        )
    finally:  # the next case builds a fresh agent on the unpatched reference
        for owner, name, original in originals:
            setattr(owner, name, original)
    return values


def _reference_acting(agent: Any, batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """The reference's DreamerV2.policy on the batch's first two frames, as tests/golden_dreamerv2.py acts."""
    import torch

    rows = len(batch["image"])

    def obs(step: int, first: float) -> dict[str, torch.Tensor]:
        return {
            "image": torch.from_numpy(batch["image"][:, step]).permute(0, 3, 1, 2).float(),
            "reward": torch.zeros(rows),
            "is_first": torch.full((rows,), first),
            "is_last": torch.zeros(rows),
            "is_terminal": torch.zeros(rows),
        }

    out1, state = agent.policy(obs(0, 1.0), None, mode="train")
    out2, _ = agent.policy(obs(1, 0.0), state, mode="train")
    out_eval, _ = agent.policy(obs(0, 1.0), None, mode="eval")
    return {
        "act/train_step1": out1["action"].tolist(),
        "act/train_step2": out2["action"].tolist(),
        "act/eval": out_eval["action"].tolist(),
    }


def _reference_values(seen: dict, grads: dict, params: dict, before: dict, harmony: bool) -> dict[str, Any]:
    import torch

    norm = lambda parts: float(torch.linalg.vector_norm(torch.stack([p.double().norm() for p in parts])))  # noqa: E731
    metrics, outs = seen["wm_metrics"], seen["outs"]
    ret = seen["target"].detach()
    deter = outs["post"]["deter"].detach()
    values = {
        "loss_obs": float(metrics["image_loss"]),
        "loss_reward": float(metrics["reward_loss"]),
        "loss_dyn": float(metrics["kl_loss"]),
        **({"loss_cont": float(metrics["discount_loss"])} if "discount_loss" in metrics else {}),
        "loss_model": float(seen["model_loss"]),
        "kl": float(metrics["model_kl"]),
        "post_entropy": float(metrics["post_ent"]),
        "prior_entropy": float(metrics["prior_ent"]),
        "post_deter_mean": float(deter.mean()),
        "post_deter_std": float(deter.std()),
        "return_mean": float(ret.mean()),
        "return_std": float(ret.std()),
        "return_start0": ret[:, 0].tolist(),
        "actor_loss": float(seen["actor_loss"]),
        "actor_entropy": float(seen["actor_metrics"]["actor_ent"]),
        "critic_loss": float(seen["critic_loss"]),
    }
    every = {**grads["model"], **grads["actor"], **grads["critic"]}
    modules = {k: p for k, p in REFERENCE_MODULES.items() if any(n.startswith(p) for n in params)}
    for key, prefix in modules.items():
        values[f"grad_norm_{key}"] = norm([g for n, g in every.items() if n.startswith(prefix)])
    for key, prefix in {**modules, "slow_critic": "_task_behavior._target_critic."}.items():
        values[f"update_norm_{key}"] = norm(
            [params[n].detach() - w for n, w in before.items() if n.startswith(prefix)]
        )
    if harmony:
        for group, name in REFERENCE_HARMONY.items():
            values[f"grad_harmony_s_{group}"] = float(every[name])
            values[f"harmony_s_{group}"] = float(params[name].detach())
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, help="the wmlib-torch directory of a HarmonyDream checkout")
    parser.add_argument("--commit", help="the checkout's commit, when it is not a git work tree")
    parser.add_argument("--ours-python", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument("--export", type=Path, help=argparse.SUPPRESS)  # internal: our side
    args = parser.parse_args()
    if args.export:
        export(args.export)
        return
    if args.reference is None or not (args.reference / "wmlib" / "agents" / "dreamerv2.py").is_file():
        print(
            f"--reference={args.reference} is invalid; valid: the wmlib-torch directory of a HarmonyDream checkout"
        )
        sys.exit(2)
    for module in ("torch", "gym", "ruamel.yaml", "torchtyping", "typeguard"):
        try:
            importlib.import_module(module)
        except ImportError:
            print(
                f"{sys.executable} cannot import {module}; valid: a Python set up as this file's docstring says"
            )
            sys.exit(2)
    commit = reference_commit(args.reference, args.commit)
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run([args.ours_python, __file__, "--export", str(exported)], check=True, env=env, cwd=REPO)
        for case in sorted(p.stem for p in exported.glob("*.json")):
            ours = json.loads((exported / f"{case}.json").read_text())
            theirs = run_reference(args.reference.resolve(), case, exported)
            golden = {
                "reference": {"repository": REFERENCE_URL, "commit": commit, "directory": "wmlib-torch"},
                "regenerate": REGENERATE,
                "case": case,
                "agent": ours["agent"],
                "suite": ours["suite"],
                "known_differences": KNOWN_DIFFERENCES,
                "seeds": ours["seeds"],
                "tiny": ours["tiny"],
                "harmony_log_sigma": ours["harmony_log_sigma"],
                "config": ours["config"],
                "noise": " ".join(SameNoise.__doc__.split()),
                "parameters": ours["parameters"],
                "weight_abs_sums": ours["weight_abs_sums"],
                "values": theirs,
            }
            GOLDEN.mkdir(parents=True, exist_ok=True)
            (GOLDEN / f"{case}.json").write_text(json.dumps(golden, indent=1) + "\n")
            print(f"\n{case}: {'quantity':<24} {'ours':>14} {'reference':>14} {'rel. diff':>10}")
            for key, value in theirs.items():
                mine = ours["values"][key]
                for index, (a, b) in enumerate(zip(np.ravel(mine), np.ravel(value))):
                    label = key if np.ndim(value) == 0 else f"{key}[{index}]"
                    rel = abs(a - b) / max(abs(b), 1e-30)
                    flag = "" if rel <= 1e-4 else "  <-- differs"
                    print(f"{case}: {label:<24} {a:>14.7g} {b:>14.7g} {rel:>10.2e}{flag}")


if __name__ == "__main__":
    main()
