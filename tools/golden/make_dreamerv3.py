"""Golden values for the DreamerV3 backbone, recorded from NM512/dreamerv3-torch.

NM512/dreamerv3-torch (https://github.com/NM512/dreamerv3-torch) is a PyTorch DreamerV3 that follows the 2023
paper code (danijar/dreamerv3 @8fa35f8). Our tiny agent gets deterministic weights and a replay-shaped batch;
the weights are copied into NM512's Dreamer (the name mapping is ``reference_weights``), both sides run one
update on the batch, and what NM512 computes is written to tests/golden/dreamerv3.json for
tests/test_golden_dreamerv3.py to compare against.

Two steps, because the reference pins its own packages (torch, numpy<2, ruamel.yaml, gym, tensorboard):

1. In the repository's environment, export our weights and batch (and our own numbers, for the record)::

       python tools/golden/make_dreamerv3.py --export /tmp/dreamerv3_ours.npz

2. In a throwaway environment with NM512's packages and a checkout of it (record its commit)::

       python3.11 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch==2.13.0 "numpy<2" \\
           "ruamel.yaml==0.17.21" gym==0.26.2 torchtyping "typeguard<3" einops scipy \\
           opencv-python-headless imageio tensorboard cloudpickle tqdm
       git clone https://github.com/NM512/dreamerv3-torch /tmp/nm512 && git -C /tmp/nm512 checkout <commit>
       /tmp/refvenv/bin/python tools/golden/make_dreamerv3.py --reference /tmp/nm512 \\
           --ours /tmp/dreamerv3_ours.npz --commit <commit>

How both sides are made deterministic and equal (weights, sampling, no optimizer step, the return-norm
EMA start) is described in tests/golden_dreamerv3.py, which holds our side of the check.

Where NM512 departs from the 2023 code, the reference run patches NM512 to the 2023 behaviour (our default).
Each patch names both sources (NM512 @6ef8646; DV3 = danijar/dreamerv3 @8fa35f8):

* ``weights``: NM512 models.py:371-391 ``_compute_target`` discounts every imagined state, the start included,
  by the continue head's mean and weights step t by cumprod over the discounts of steps < t. DV3
  agent.py:194-197 takes the first continue flag from the data, the head's mode after it, and
  weight_t = cumprod_{i<=t}(gamma c_i) / gamma. The patch keeps NM512's lambda_return and critic, with
  DV3's discounts and weights.
* ``entropy``: NM512 models.py:304,317 subtracts the actor entropy unweighted and with gradients through the
  imagined states; DV3 agent.py:293-298 takes it of sg(traj) and multiplies it by the weights.
* ``slow critic``: NM512 models.py:295,435-441 mixes the critic into the slow critic before the losses; DV3
  agent.py:336 (SlowUpdater) after them. The patch skips NM512's update for this step.
* ``initial stoch``: NM512 tools.py:435-439 ``OneHotDist.mode`` (used by networks.py:235-239 get_stoch)
  passes a straight-through gradient into the learned initial state; DV3 jaxutils.py:77-97 OneHotDist keeps
  tfd's mode (no gradient).

Not patched, because the batch avoids it: NM512 networks.py:176-181 starts every sequence from the initial
state with a zero action whatever ``is_first`` says; DV3 (nets.py:83-93 obs_step) and we reset only where
is_first. Every sequence of the batch starts with is_first.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from compare import (  # tools/golden/compare.py, beside this script
    parse_args,
    print_comparison,
    reference_commit,
    write_golden_file,
)
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from golden_dreamerv3 import (  # noqa: E402  (the shared setup lives next to the test)
    ACTIONS,
    BATCH_SEED,
    EMA_START,
    IMAGE_SIZE,
    MODULES,
    TINY,
    WEIGHT_SEED,
    actor_noise,
    argmax_onehot_st,
    build_agent,
    make_batch,
    measure_ours,
    patched,
)

GOLDEN_PATH = ROOT / "tests" / "golden" / "dreamerv3.json"
REFERENCE_URL = "https://github.com/NM512/dreamerv3-torch"
REGENERATE = (
    "python tools/golden/make_dreamerv3.py --export /tmp/dreamerv3_ours.npz && "
    "/tmp/refvenv/bin/python tools/golden/make_dreamerv3.py --reference /tmp/nm512 "
    "--ours /tmp/dreamerv3_ours.npz --commit <commit>"
)


def export(path: Path) -> None:
    """Our weights (by our parameter names), the batch, the noise and our numbers, for the reference run."""
    torch.set_num_threads(1)
    agent = build_agent()
    arrays = {f"param/{k}": v.detach().numpy() for k, v in agent.modules.named_parameters()}
    arrays.update({f"batch/{k}": v for k, v in make_batch().items()})
    arrays["noise"] = actor_noise()
    shapes = {k: list(v.shape) for k, v in agent.modules.named_parameters()}
    ours = measure_ours(build_agent(), make_batch(), actor_noise())
    meta = {"config": agent.cfg, "parameters": shapes, "ours": ours}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)
    print(f"wrote {path}: {sum(k.startswith('param/') for k in arrays)} tensors")


# ------------------------------------------------------------------------------------------ the mapping


def reference_weights(ours: dict[str, np.ndarray], deter: int) -> dict[str, np.ndarray]:
    """Our parameters -> NM512's (names under the reference's ``wm.``, ``actor.``, ``critic.``, ``slow.``).

    * Features: ours are [deter, stoch], NM512's get_feat [stoch, deter]: every layer reading features
      (reward, cont, decoder, actor, critic first Linear) has its input columns swapped.
    * RSSM: our split Linears are NM512's one Linear over the concatenation: img_in_stoch | img_in_action ->
      _img_in_layers.0 over [stoch, action]; obs_in_deter | obs_in_embed -> _obs_out_layers.0 over
      [deter, embed]. img_out.0 -> _img_out_layers, img_out.1 -> _imgs_stat_layer, obs_in.0 ->
      _obs_out_layers.1, obs_out -> _obs_stat_layer, cell.linear/norm -> _cell.layers.GRU_linear/GRU_norm,
      initial (D,) -> W (1, D).
    * Decoder: our first Linear fills (C, 4, 4), NM512's (4, 4, C): its output rows are permuted.
    * Actor: our one output Linear gives [mean, std]; NM512 has mean_layer and std_layer.
    * Conv stacks have the same Sequential indices on both sides (conv, norm, act per stage).
    """
    out: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        used.add(name)
        return ours[name]

    def swap_feat(weight: np.ndarray) -> np.ndarray:
        return np.concatenate([weight[:, deter:], weight[:, :deter]], 1)

    for name in ours:
        if name.startswith("wm.cnn_encoder.net."):
            out["wm.encoder._cnn.layers." + name.removeprefix("wm.cnn_encoder.net.")] = take(name)
        elif name.startswith("wm.cnn_decoder.net."):
            out["wm.heads.decoder._cnn.layers." + name.removeprefix("wm.cnn_decoder.net.")] = take(name)
    # Decoder input Linear: rows (c, h, w) -> (h, w, c), columns [deter, stoch] -> [stoch, deter]
    weight, bias = take("wm.cnn_decoder.linear.weight"), take("wm.cnn_decoder.linear.bias")
    channels = weight.shape[0] // 16
    rows = np.arange(weight.shape[0]).reshape(channels, 4, 4).transpose(1, 2, 0).reshape(-1)
    out["wm.heads.decoder._cnn._linear_layer.weight"] = swap_feat(weight[rows])
    out["wm.heads.decoder._cnn._linear_layer.bias"] = bias[rows]

    rssm, dyn = "wm.rssm.", "wm.dynamics."
    out[dyn + "_img_in_layers.0.weight"] = np.concatenate(
        [take(rssm + "img_in_stoch.weight"), take(rssm + "img_in_action.weight")], 1
    )
    out[dyn + "_obs_out_layers.0.weight"] = np.concatenate(
        [take(rssm + "obs_in_deter.weight"), take(rssm + "obs_in_embed.weight")], 1
    )
    out[dyn + "W"] = take(rssm + "initial")[None]
    renames = {
        "img_in.0": "_img_in_layers.1",
        "cell.linear": "_cell.layers.GRU_linear",
        "cell.norm": "_cell.layers.GRU_norm",
        "img_out.0.0": "_img_out_layers.0",
        "img_out.0.1": "_img_out_layers.1",
        "img_out.1": "_imgs_stat_layer",
        "obs_in.0": "_obs_out_layers.1",
        "obs_out": "_obs_stat_layer",
    }
    for ours_mod, ref_mod in renames.items():
        for kind in ("weight", "bias"):
            if rssm + f"{ours_mod}.{kind}" in ours:
                out[dyn + f"{ref_mod}.{kind}"] = take(rssm + f"{ours_mod}.{kind}")

    heads = {
        "wm.reward_head.": ("wm.heads.reward.", "Reward"),
        "wm.cont_head.": ("wm.heads.cont.", "Cont"),
        "ac.actor.": ("actor.", "Actor"),
        "ac.critic.": ("critic.", "Value"),
        "ac.slow_critic.": ("slow.", "Value"),
    }
    for prefix, (ref, label) in heads.items():
        names = [n for n in ours if n.startswith(prefix)]
        head_index = max(int(n.removeprefix(prefix).split(".")[0]) for n in names)
        for name in names:
            index, kind = name.removeprefix(prefix).split(".")
            index = int(index)
            value = take(name)
            if index == head_index:
                if label == "Actor":  # [mean, std] -> mean_layer, std_layer
                    half = value.shape[0] // 2
                    out[f"{ref}mean_layer.{kind}"], out[f"{ref}std_layer.{kind}"] = value[:half], value[half:]
                else:
                    out[f"{ref}mean_layer.{kind}"] = value
            elif index % 3 == 0:  # hidden Linear (no bias with LayerNorm); the first reads features
                out[f"{ref}layers.{label}_linear{index // 3}.{kind}"] = (
                    swap_feat(value) if index == 0 else value
                )
            else:
                out[f"{ref}layers.{label}_norm{index // 3}.{kind}"] = value
    unused = sorted(set(ours) - used)
    if unused:
        raise ValueError(f"our parameters without a place in the reference: {unused}")
    return out


# ------------------------------------------------------------------------------------ the reference side


def _reference_config(ref: Path, cfg: dict[str, Any]) -> Any:
    """NM512's configs.yaml defaults with our tiny agent's values."""
    import argparse as _argparse

    import ruamel.yaml as yaml

    defaults = yaml.safe_load((ref / "configs.yaml").read_text())["defaults"]
    config = dict(defaults)
    layers = cfg["layers"]
    conv = {
        "cnn_depth": cfg["cnn_depth"],
        "kernel_size": 4,
        "minres": 4,
        "mlp_keys": "$^",
        "cnn_keys": "image",
    }
    config.update(
        device="cpu",
        compile=False,
        precision=32,
        dyn_hidden=cfg["hidden"],
        dyn_deter=cfg["deter"],
        dyn_stoch=cfg["stoch"],
        dyn_discrete=cfg["classes"],
        units=cfg["units"],
        unimix_ratio=cfg["unimix"],
        kl_free=cfg["kl_free"],
        dyn_scale=cfg["kl_dyn_scale"],
        rep_scale=cfg["kl_rep_scale"],
        batch_size=cfg["batch_size"],
        batch_length=cfg["batch_length"],
        discount=cfg["discount"],
        discount_lambda=cfg["lambda"],
        imag_horizon=cfg["imag_horizon"] + 1,  # NM512 counts the start state (models.py _imagine)
        num_actions=ACTIONS,
    )
    config["encoder"] = {**defaults["encoder"], **conv}
    config["decoder"] = {**defaults["decoder"], **conv}
    config["actor"] = {
        **defaults["actor"],
        "layers": layers,
        "entropy": cfg["actor_ent"],
        "unimix_ratio": cfg["actor_unimix"],
        "min_std": cfg["actor_min_std"],
        "max_std": cfg["actor_max_std"],
    }
    config["critic"] = {
        **defaults["critic"],
        "layers": layers,
        "slow_target_fraction": cfg["slow_critic_fraction"],
        "slow_target_update": cfg["slow_critic_every"],
    }
    config["reward_head"] = {**defaults["reward_head"], "layers": layers}
    config["cont_head"] = {**defaults["cont_head"], "layers": layers}
    return _argparse.Namespace(**config)


def run_reference(ref: Path, npz: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """NM512's Dreamer with our weights, one ``Dreamer._train`` on the batch. Returns (values, meta)."""
    import types

    sys.path.insert(0, str(ref))
    import dreamer as ref_dreamer

    import tools

    torch.set_num_threads(1)
    data = np.load(npz)
    meta = json.loads(bytes(data["meta"]).decode())
    cfg = meta["config"]
    batch = {k.removeprefix("batch/"): data[k] for k in data.files if k.startswith("batch/")}
    ours = {k.removeprefix("param/"): data[k] for k in data.files if k.startswith("param/")}
    config = _reference_config(ref, cfg)

    import gym

    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)})
    act_space = gym.spaces.Box(-1, 1, (ACTIONS,), np.float32)
    agent = ref_dreamer.Dreamer(obs_space, act_space, config, types.SimpleNamespace(step=0), None)
    wm, behavior = agent._wm, agent._task_behavior
    targets = {
        **{f"wm.{k}": v for k, v in wm.named_parameters()},
        **{f"actor.{k}": v for k, v in behavior.actor.named_parameters()},
        **{f"critic.{k}": v for k, v in behavior.value.named_parameters()},
        **{f"slow.{k}": v for k, v in behavior._slow_value.named_parameters()},
    }
    mapped = reference_weights(ours, cfg["deter"])
    if set(mapped) != set(targets):
        raise ValueError(
            f"mapping mismatch: unmapped reference {sorted(set(targets) - set(mapped))}, "
            f"unknown {sorted(set(mapped) - set(targets))}"
        )
    with torch.no_grad():
        for name, param in targets.items():
            value = torch.as_tensor(mapped[name])
            if value.shape != param.shape:
                raise ValueError(f"{name}: ours {tuple(value.shape)}, reference {tuple(param.shape)}")
            param.copy_(value)
    behavior.ema_vals.copy_(torch.tensor(EMA_START))

    module_params = {
        "encoder": wm.encoder,
        "rssm": wm.dynamics,
        "decoder": wm.heads["decoder"],
        "reward": wm.heads["reward"],
        "cont": wm.heads["cont"],
        "actor": behavior.actor,
        "critic": behavior.value,
    }
    module_of = {id(p): name for name, m in module_params.items() for p in m.parameters()}
    captured: dict[str, Any] = {"grad": {}}

    def backward_only(self, loss, params, retain_graph=True):
        """tools.Optimizer.__call__ without clipping or stepping: record each module's gradient norm."""
        params = list(params)
        self._opt.zero_grad()
        loss.backward(retain_graph=retain_graph)
        sums: dict[str, float] = {}
        for p in params:
            if p.grad is not None:
                sums[module_of[id(p)]] = (
                    sums.get(module_of[id(p)], 0.0) + p.grad.double().square().sum().item()
                )
        captured["grad"].update({k: math.sqrt(v) for k, v in sums.items()})
        self._opt.zero_grad()
        return {f"{self._name}_loss": loss.item()}

    noise = iter(torch.as_tensor(data["noise"]))

    def actor_sample(self, sample_shape=()):
        """ContDist.sample with the shared noise: the Normal's mean + std * noise, then NM512's absmax."""
        out = self._dist.mean + self._dist.stddev * next(noise)
        if self.absmax is not None:
            out *= (self.absmax / torch.clip(torch.abs(out), min=self.absmax)).detach()
        return out

    def onehot_sample(self, sample_shape=(), seed=None):
        return argmax_onehot_st(self.probs)

    def onehot_mode(self):  # DV3: tfd's mode, no straight-through gradient
        return nn.functional.one_hot(self.logits.argmax(-1), self.logits.shape[-1]).float()

    observe = wm.dynamics.observe

    def observe_capture(*args, **kwargs):
        captured["post"], captured["prior"] = observe(*args, **kwargs)
        return captured["post"], captured["prior"]

    lambda_return = tools.lambda_return

    def lambda_return_capture(*args, **kwargs):
        captured["ret"] = lambda_return(*args, **kwargs)
        return captured["ret"]

    first_cont = torch.as_tensor(1 - batch["is_terminal"]).flatten()

    def compute_target(self, imag_feat, imag_state, reward):
        """DV3 agent.py imagine/score: cont = [data, head mode...], weight = cumprod(gamma cont) / gamma."""
        inp = self._world_model.dynamics.get_feat(imag_state)
        cont = self._world_model.heads["cont"](inp).mode().detach()
        cont = torch.cat([first_cont[None, :, None], cont[1:]], 0)
        discount = self._config.discount * cont
        value = self.value(imag_feat).mode()
        target = tools.lambda_return(
            reward[1:],
            value[:-1],
            discount[1:],
            bootstrap=value[-1],
            lambda_=self._config.discount_lambda,
            axis=0,
        )
        weights = (torch.cumprod(discount, 0) / self._config.discount).detach()
        captured["imag_reward"] = reward[1:].mean().item()
        captured["value"] = value.mean().item()
        return target, weights, value[:-1]

    actent = config.actor["entropy"]
    actor_loss = behavior._compute_actor_loss

    def compute_actor_loss(imag_feat, imag_action, target, weights, base):
        """NM512's actor loss with DV3's entropy term: of sg(features), weighted (agent.py:293-298)."""
        loss, metrics = actor_loss(imag_feat, imag_action, target, weights, base)
        ent = behavior.actor(imag_feat.detach()).entropy()[:-1, ..., None]
        captured["actor_entropy"] = ent.mean().item()
        return loss - actent * weights[:-1] * ent, metrics

    reward_ema = behavior.reward_ema

    def reward_ema_capture(x, ema_vals):
        offset, scale = reward_ema(x, ema_vals)
        captured["scale"] = scale.item()
        return offset, scale

    config.actor["entropy"] = 0.0  # the unweighted term NM512 adds after the actor loss (replaced above)
    with patched(
        (tools.Optimizer, "__call__", backward_only),
        (tools.ContDist, "sample", actor_sample),
        (tools.OneHotDist, "sample", onehot_sample),
        (tools.OneHotDist, "mode", onehot_mode),
        (tools, "lambda_return", lambda_return_capture),
        (wm.dynamics, "observe", observe_capture),
        (behavior, "_compute_target", types.MethodType(compute_target, behavior)),
        (behavior, "_compute_actor_loss", compute_actor_loss),
        (behavior, "_update_slow_target", lambda: None),
        (behavior, "reward_ema", reward_ema_capture),
    ):
        agent._train(batch)
    metrics = {k: float(np.mean(v)) for k, v in agent._metrics.items()}

    unimix = config.unimix_ratio

    def probs(logit: torch.Tensor) -> list:
        p = logit.softmax(-1)
        return ((1 - unimix) * p + unimix / p.shape[-1]).tolist()

    post, prior = captured["post"], captured["prior"]
    values = {
        "loss/image": metrics["image_loss"],
        "loss/reward": metrics["reward_loss"],
        "loss/cont": metrics["cont_loss"],
        "loss/dyn": metrics["dyn_loss"],
        "loss/rep": metrics["rep_loss"],
        "loss/model": metrics["model_loss"],
        "kl": metrics["kl"],
        "post_entropy": metrics["post_ent"],
        "prior_entropy": metrics["prior_ent"],
        "post_deter": post["deter"].tolist(),
        "post_probs": probs(post["logit"]),
        "prior_probs": probs(prior["logit"]),
        "lambda_return": torch.stack(captured["ret"], 1)[..., 0].tolist(),
        "return_scale": captured["scale"],
        "return_ema": behavior.ema_vals.tolist(),
        "imag_reward": captured["imag_reward"],
        "value": captured["value"],
        "actor_entropy": captured["actor_entropy"],
        "loss/actor": metrics["actor_loss"],
        "loss/critic": metrics["value_loss"],
        **{f"grad_norm/{name}": captured["grad"].get(name, 0.0) for name in MODULES},
    }
    return values, meta


def write_golden(values: dict[str, Any], meta: dict[str, Any], commit: str) -> None:
    golden = {
        "reference": {
            "url": REFERENCE_URL,
            "commit": commit,
            "patched_to_dv3_2023": ["weights", "entropy", "slow critic", "initial stoch"],
        },
        "regenerate": REGENERATE,
        "weight_seed": WEIGHT_SEED,
        "batch_seed": BATCH_SEED,
        "image_size": IMAGE_SIZE,
        "actions": ACTIONS,
        "tiny": TINY,
        "ema_start": list(EMA_START),
        "config": meta["config"],
        "parameters": meta["parameters"],
        "values": values,
    }
    write_golden_file(GOLDEN_PATH, golden)


def main() -> None:
    args = parse_args(
        __doc__.split("\n\n")[0],
        "NM512/dreamerv3-torch",
        "write our weights, batch and numbers (.npz)",
        "the .npz written by --export",
    )
    if args.export:
        sys.path.insert(0, str(ROOT))
        export(args.export)
        return
    commit = reference_commit(args.reference, args.commit)
    values, meta = run_reference(args.reference, args.ours)
    print_comparison(meta["ours"], values)
    write_golden(values, meta, commit)
    print(f"wrote {GOLDEN_PATH}")


if __name__ == "__main__":
    main()
