"""Golden values for the TD-MPC backbone, recorded from nicklashansen/tdmpc (the TD-MPC paper's code).

nicklashansen/tdmpc (https://github.com/nicklashansen/tdmpc) is the PyTorch code of Hansen, Wang & Su, "Temporal
Difference Learning for Model Predictive Control" (ICML 2022). Our tiny agent, once on states and once on
stacked 64x64 frames, gets deterministic weights (model and EMA target) and two replay-shaped batches; the
weights are copied into the reference's ``TDMPC`` (the name mapping is ``reference_weights``), both sides
plan twice (the second call warm-started; on pixels from an episode's first two frames) and then make two
updates, optimizer steps and target EMA included, and what the reference computes is written to
tests/golden/tdmpc.json (states) and tests/golden/tdmpc_pixels.json for tests/test_golden_tdmpc.py.

Two steps, because the reference needs its own packages (omegaconf) and a checkout:

1. In the repository's environment, export our weights, batches and noise (and our own numbers)::

       python tools/golden/make_tdmpc.py --export /tmp/tdmpc_ours.npz

2. In a throwaway environment with torch, numpy and omegaconf (and, for its src/env.py, whose frame-stack
   wrapper the pixel planning calls go through, dm-env, dm-control and gym) and a checkout of the reference
   (record its commit)::

       python3.11 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch==2.13.0 "numpy<2" omegaconf \\
           dm-env dm-control==1.0.28 mujoco==3.3.0 gym
       git clone https://github.com/nicklashansen/tdmpc /tmp/tdmpc-ref && git -C /tmp/tdmpc-ref checkout <commit>
       /tmp/refvenv/bin/python tools/golden/make_tdmpc.py --reference /tmp/tdmpc-ref \\
           --ours /tmp/tdmpc_ours.npz --commit <commit>

How both sides are made deterministic and equal (weights, the noise tape, the elite pick) is described in
tests/golden_tdmpc.py, which holds our side of the check. The reference runs on the CPU in fp32: its
``TDMPC`` moves the model with ``.cuda()``, which is made a no-op while it is built, and its
``device`` is set to the CPU. Its replay buffer is replaced by the batch it would sample (a fake only for
the sampling: obs, next_obses, action, reward, idxs, weights in ReplayBuffer.sample's layout; our replay
stores action[t] and reward[t] with the state they led to, the reference with the state they left, so the
reference's action[t] is our action[:, k + t], k the frame stack). On pixels its frame stacks come from its
own ``ReplayBuffer._get_obs`` (its ``.cuda()`` calls made no-ops) over our frames laid out as its buffer
holds episodes. Its std floor for planning is its own std_schedule at the
step we plan at (TDMPC sets ``self.std`` from it in ``update``).

Patches of the reference, each a deviation documented in agents/tdmpc.py (TDMPC = nicklashansen/tdmpc):

* ``action clip``: TDMPC tdmpc.py:148-151 returns the explored action unclipped (its environment clips); we
  clip it to [-1, 1]. The reference's returned action is clipped here before it is recorded.

Nothing else of the reference is changed: its losses, TD targets, policy loss, gradient clipping, Adam
steps, target EMA (``step % update_freq``, at update 0 as ours) and MPPI planner run as written.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace
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
from golden_dreamerv3 import patched  # noqa: E402  (the shared setup lives next to the tests)
from golden_tdmpc import (  # noqa: E402
    ACTIONS,
    BATCH_SEED,
    CHOICE_U,
    EPISODE_START,
    IMAGE,
    MODALITIES,
    MODULES,
    NOISE_SEED,
    OBS_DIM,
    PIXELS,
    PLAN_STEP,
    SHIFT_SEED,
    TARGET_SEED,
    TINY,
    WEIGHT_SEED,
    NoiseTape,
    batches,
    build_agent,
    locals_at_return,
    measure_ours,
    moved,
    noise_numbers,
    pick,
    plan_observations,
    recording_clip,
    shift_numbers,
    snapshot,
    weight_sums,
)

GOLDEN_PATHS = {
    "state": ROOT / "tests" / "golden" / "tdmpc.json",
    "pixels": ROOT / "tests" / "golden" / "tdmpc_pixels.json",
}
REFERENCE_URL = "https://github.com/nicklashansen/tdmpc"
REGENERATE = (
    "python tools/golden/make_tdmpc.py --export /tmp/tdmpc_ours.npz && "
    "/tmp/refvenv/bin/python tools/golden/make_tdmpc.py --reference /tmp/tdmpc-ref "
    "--ours /tmp/tdmpc_ours.npz --commit <commit>"
)
PATCHES = ["action clip"]


def export(path: Path) -> None:
    """Per modality (keys ``<modality>/...``): our weights (model/ and target/ by our parameter names), the
    batches, the noise and shifts, and our numbers."""
    torch.set_num_threads(1)
    arrays: dict[str, np.ndarray] = {}
    for modality in MODALITIES:
        agent = build_agent(modality)
        case = {f"model/{k}": v.detach().numpy() for k, v in agent.model.named_parameters()}
        case.update({f"target/{k}": v.detach().numpy() for k, v in agent.target.named_parameters()})
        for i, batch in enumerate(batches(modality)):
            case.update({f"batch{i}/{k}": v for k, v in batch.items()})
        case["plan_obs"] = plan_observations(modality)
        case["noise"] = noise_numbers()
        case["shifts"] = shift_numbers()
        shapes = {k: list(v.shape) for k, v in agent.model.named_parameters()}
        ours = measure_ours(build_agent(modality), noise_numbers(), modality)
        meta = {
            "config": agent.config,
            "parameters": shapes,
            "weight_abs_sums": weight_sums(agent),
            "ours": ours,
        }
        case["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        arrays.update({f"{modality}/{k}": v for k, v in case.items()})
    np.savez(path, **arrays)
    print(f"wrote {path}: {sum('/model/' in k or '/target/' in k for k in arrays)} tensors")


# ------------------------------------------------------------------------------------------ the mapping

# our TOLD's submodules -> the reference TOLD's (same Sequential layouts: helper.py enc / mlp / q)
MODULE_NAMES = {
    "encoder": "_encoder",
    "dynamics": "_dynamics",
    "reward": "_reward",
    "pi_net": "_pi",
    "q1": "_Q1",
    "q2": "_Q2",
}


# our PixelEncoder's layers -> the indices in the reference's pixel encoder (helper.py enc: NormalizeImg,
# then Conv2d, ReLU four times, Flatten, Linear)
PIXEL_ENCODER = {"convs.0": "1", "convs.2": "3", "convs.4": "5", "convs.6": "7", "out": "10"}


def reference_weights(ours: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Our TOLD parameters -> the reference TOLD's: the submodules are renamed (``MODULE_NAMES``); the layer
    indices inside each Sequential are the same on both sides (Linear, ELU, Linear for the state encoder;
    Linear, ELU, Linear, ELU, Linear for dynamics, reward and pi; Linear, LayerNorm, Tanh, Linear, ELU,
    Linear for each Q), the pixel encoder's as ``PIXEL_ENCODER``. The reward and Q heads output (..., 1)
    there and (...) here: same weights. Both flatten the CNN's NCHW output in the same order."""
    out = {}
    for name, value in ours.items():
        module, rest = name.split(".", 1)
        if module not in MODULE_NAMES:
            raise ValueError(f"our parameter {name} has no place in the reference TOLD")
        layer, param = rest.rsplit(".", 1)
        if module == "encoder" and layer in PIXEL_ENCODER:
            rest = f"{PIXEL_ENCODER[layer]}.{param}"
        out[f"{MODULE_NAMES[module]}.{rest}"] = value
    return out


# ------------------------------------------------------------------------------------ the reference side

# our knob -> the reference's cfgs/default.yaml key, for the knobs our tiny agent keeps at TD-MPC's default
SAME_DEFAULTS = {
    "discount": "discount",
    "rho": "rho",
    "tau": "tau",
    "target_every": "update_freq",
    "lr": "lr",
    "plan_temperature": "temperature",
    "plan_momentum": "momentum",
    "per_alpha": "per_alpha",
    "per_beta": "per_beta",
}
LOSS_WEIGHTS = {"consistency": "consistency_coef", "reward": "reward_coef", "value": "value_coef"}


def _reference_config(ref: Path, cfg: dict[str, Any], modality: str) -> Any:
    """The reference's cfgs/default.yaml (and cfgs/pixels.yaml on pixels, as its cfg.py merges them) with our
    tiny sizes; the knobs we keep at TD-MPC's defaults must equal its values (a check of our defaults too)."""
    from omegaconf import OmegaConf

    config = OmegaConf.load(ref / "cfgs" / "default.yaml")
    if modality == "pixels":
        config.merge_with(OmegaConf.load(ref / "cfgs" / "pixels.yaml"))
        config.merge_with({"img_size": IMAGE, "num_channels": cfg["cnn_channels"]})
        if (cfg["frame_stack"], cfg["aug_pad"]) != (config.frame_stack, int(IMAGE / 21)):
            raise ValueError(
                f"frame stack, shift pad: ours {cfg['frame_stack']}, {cfg['aug_pad']}; reference "
                f"{config.frame_stack}, {int(IMAGE / 21)} (RandomShiftsAug: int(img_size / 21))"
            )
    differ = [
        f"{ours}: ours {cfg[ours]}, reference {config[theirs]}"
        for ours, theirs in SAME_DEFAULTS.items()
        if float(cfg[ours]) != float(config[theirs])
    ]
    weights = cfg["balancer"]["weights"]
    differ += [
        f"loss weight {group}: ours {weights[group]}, reference {config[key]}"
        for group, key in LOSS_WEIGHTS.items()
        if float(weights[group]) != float(config[key])
    ]
    if differ:
        raise ValueError("our defaults differ from the reference's cfgs/default.yaml: " + "; ".join(differ))
    obs_shape = [OBS_DIM] if modality == "state" else [3 * cfg["frame_stack"], IMAGE, IMAGE]
    config.merge_with(
        {
            "modality": modality,
            "obs_shape": obs_shape,
            "action_dim": ACTIONS,
            "device": "cpu",
            "latent_dim": cfg["latent_dim"],
            "enc_dim": cfg["enc_dim"],
            "mlp_dim": cfg["mlp_dim"],
            "horizon": cfg["horizon"],
            "batch_size": cfg["batch_size"],
            "iterations": cfg["plan_iterations"],
            "num_samples": cfg["plan_samples"],
            "num_elites": cfg["plan_elites"],
            "mixture_coef": cfg["plan_policy_fraction"],
            "grad_clip_norm": cfg["grad_clip"],
            "min_std": cfg["min_std"],
            "seed_steps": 0,
        }
    )
    # its std_schedule reads min_std; start and duration must be ours
    schedule = [float(x) for x in re.match(r"linear\((.+),(.+),(.+)\)", config.std_schedule).groups()]
    if schedule != [cfg["std_start"], cfg["min_std"], cfg["schedule_steps"]]:
        raise ValueError(
            f"std schedule: ours {cfg['std_start']}, {cfg['min_std']}, {cfg['schedule_steps']}, "
            f"reference {config.std_schedule}"
        )
    return config


def stacks_from_reference(h: Any, batch: dict[str, np.ndarray], stack: int) -> torch.Tensor:
    """The frame stacks (steps - stack + 1, B, 3 * stack, H, W) of each sequence's steps from stack - 1 on, as
    the reference's ReplayBuffer._get_obs builds them: our frames laid out as its buffer holds episodes (each
    sequence's episode from its first step, in a slot of ``steps`` frames), sampled at the index of each step."""
    frames, first = batch["image"], batch["is_first"]
    b, steps = first.shape
    start = first.argmax(1)  # the step of each sequence's episode start
    arr = torch.zeros((b * steps, 3, IMAGE, IMAGE), dtype=torch.uint8)
    for row in range(b):
        episode = torch.as_tensor(frames[row, start[row] :]).permute(0, 3, 1, 2)
        arr[row * steps : row * steps + len(episode)] = episode
    buffer = SimpleNamespace(
        cfg=SimpleNamespace(modality="pixels", batch_size=b, frame_stack=stack, episode_length=steps)
    )
    empty = torch.empty

    def empty_here(*size: Any, **kwargs: Any) -> torch.Tensor:
        return empty(*size, **{**kwargs, "device": "cpu"})

    rows = torch.arange(b) * steps - torch.as_tensor(start)
    with patched((torch.Tensor, "cuda", lambda self, *a, **k: self), (torch, "empty", empty_here)):
        return torch.stack([h.ReplayBuffer._get_obs(buffer, arr, rows + t) for t in range(stack - 1, steps)])


def stacked_by_reference(frames: np.ndarray, cfg: dict[str, Any]) -> list[np.ndarray]:
    """What the reference's planner sees of an episode whose reset and steps render ``frames`` (N, H, W, 3):
    its own env.FrameStackWrapper's observations, (3 * frame_stack, H, W), over a stand-in dm_env
    environment that only hands out the frames (the reference's env.py needs dm_env, dm_control and gym)."""
    os.environ.setdefault("MUJOCO_GL", "egl")  # env.py imports dm_control's suite: a headless GL backend
    import dm_env
    import env as ref_env  # the reference's src/env.py
    from dm_env import specs

    class Frames(dm_env.Environment):
        def __init__(self) -> None:
            self.shown = 0

        def observation_spec(self) -> dict[str, Any]:
            return {"pixels": specs.Array(frames.shape[1:], np.uint8, "pixels")}

        def action_spec(self) -> Any:
            return specs.BoundedArray((ACTIONS,), np.float32, -1.0, 1.0, "action")

        def reset(self) -> dm_env.TimeStep:
            self.shown = 0
            return dm_env.restart({"pixels": frames[0]})

        def step(self, action: Any) -> dm_env.TimeStep:
            self.shown += 1
            return dm_env.transition(0.0, {"pixels": frames[self.shown]})

    stacked = ref_env.FrameStackWrapper(Frames(), cfg["frame_stack"])
    first = stacked.reset().observation
    return [first] + [stacked.step(np.zeros(ACTIONS)).observation for _ in frames[1:]]


class BatchAsSampled:
    """What the reference's ReplayBuffer.sample returns for our batch, and where its update_priorities puts
    the new priorities. ``stacks``: the pixel observations from ``stacks_from_reference`` (None: states)."""

    def __init__(self, batch: dict[str, np.ndarray], stacks: torch.Tensor | None = None):
        skip = 0 if stacks is None else len(batch["is_first"][0]) - len(stacks)  # frame_stack - 1
        obs = torch.as_tensor(batch["state"]).transpose(0, 1) if stacks is None else stacks
        action = torch.as_tensor(batch["action"]).transpose(0, 1)[skip:]
        reward = torch.as_tensor(batch["reward"]).transpose(0, 1)[skip:]
        horizon = len(obs) - 1
        # TDMPC samples horizon + 1 of each and reads the first horizon: the last is NaN, to prove it unused
        self.obs = obs[0]
        self.next_obses = torch.cat([obs[1:], torch.full_like(obs[:1], float("nan"))])
        self.action = torch.cat([action[1:], torch.full_like(action[:1], float("nan"))])
        self.reward = torch.cat([reward[1:], torch.full_like(reward[:1], float("nan"))])[..., None]
        assert self.next_obses.shape[0] == horizon + 1
        self.weights = torch.as_tensor(batch["weight"])
        self.priorities: torch.Tensor | None = None

    def sample(self) -> tuple[torch.Tensor, ...]:
        idxs = torch.arange(len(self.weights))
        return self.obs, self.next_obses, self.action, self.reward, idxs, self.weights

    def update_priorities(self, idxs: torch.Tensor, priorities: torch.Tensor) -> None:
        self.priorities = priorities.detach().clone()


def run_reference(ref: Path, npz: Path, modality: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The reference's TDMPC with our weights: two ``plan`` calls (states), then two ``update`` calls."""
    sys.path.insert(0, str(ref / "src"))
    import algorithm.helper as h
    import algorithm.tdmpc as ref_tdmpc

    torch.set_num_threads(1)
    archive = np.load(npz)
    data = {k.split("/", 1)[1]: archive[k] for k in archive.files if k.startswith(f"{modality}/")}
    meta = json.loads(bytes(data["meta"]).decode())
    cfg = meta["config"]
    config = _reference_config(ref, cfg, modality)
    with patched((nn.Module, "cuda", lambda self, *args, **kwargs: self)):
        agent = ref_tdmpc.TDMPC(config)
    agent.device = torch.device("cpu")
    for prefix, model in (("model/", agent.model), ("target/", agent.model_target)):
        ours = {k.removeprefix(prefix): v for k, v in data.items() if k.startswith(prefix)}
        mapped, targets = reference_weights(ours), dict(model.named_parameters())
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

    values: dict[str, Any] = {}
    tape = NoiseTape(data["noise"])
    shifts = NoiseTape(data["shifts"])
    uniforms = iter(CHOICE_U)

    def standard_normal(shape: Any, dtype: Any = None, device: Any = None) -> torch.Tensor:
        return tape.take(shape)

    def randn(*size: Any, **kwargs: Any) -> torch.Tensor:
        return tape.take(tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else size)

    def choice(a: Any, size: Any = None, replace: bool = True, p: Any = None) -> Any:
        return a[pick(p, next(uniforms))]

    def randint(low: int, high: int, size: Any, dtype: Any = None, **kwargs: Any) -> torch.Tensor:
        return shifts.take(size).to(dtype)  # RandomShiftsAug: (n, 1, 1, 2) pairs (x, y)

    noise = ((h, "_standard_normal", standard_normal), (torch, "randn", randn), (torch, "randint", randint))
    plan_obs = list(data["plan_obs"]) if modality == "state" else stacked_by_reference(data["plan_obs"], cfg)
    with patched(*noise, (np.random, "choice", choice)):
        for i, obs in enumerate(plan_obs):
            agent.std = h.linear_schedule(config.std_schedule, PLAN_STEP + i)
            action = agent.plan(obs, eval_mode=False, step=PLAN_STEP + i, t0=i == 0)
            values[f"plan{i + 1}/action"] = action.clamp(-1, 1).tolist()  # patch "action clip"
            values[f"plan{i + 1}/mean"] = agent._prev_mean.tolist()

    model = agent.model
    modules = {
        "encoder": model._encoder,
        "dynamics": model._dynamics,
        "reward": model._reward,
        "q1": model._Q1,
        "q2": model._Q2,
        "pi": model._pi,
    }
    target = agent.model_target
    target_modules = {
        "encoder": target._encoder,
        "dynamics": target._dynamics,
        "reward": target._reward,
        "q1": target._Q1,
        "q2": target._Q2,
        "pi": target._pi,
    }
    count = sum(k.startswith("batch") and k.endswith("/reward") for k in data)
    for i in range(count):
        batch = {k.split("/", 1)[1]: v for k, v in data.items() if k.startswith(f"batch{i}/")}
        stacks = stacks_from_reference(h, batch, cfg["frame_stack"]) if modality == "pixels" else None
        replay = BatchAsSampled(batch, stacks)
        key = f"update{i + 1}/"
        captured: list[dict[str, Any]] = []
        td_targets: list[torch.Tensor] = []
        latent_targets: list[torch.Tensor] = []
        norms: dict[str, float] = {}
        td_target, target_h = agent._td_target, agent.model_target.h

        def td_target_capture(next_obs, reward, td_target=td_target, into=td_targets):
            into.append(td_target(next_obs, reward))
            return into[-1]

        def target_h_capture(obs, target_h=target_h, into=latent_targets):
            into.append(target_h(obs))
            return into[-1]

        model_before, target_before = snapshot(modules), snapshot(target_modules)
        with (
            patched(
                *noise,
                (torch.nn.utils, "clip_grad_norm_", recording_clip(modules, norms)),
                (agent, "_td_target", td_target_capture),
                (agent.model_target, "h", target_h_capture),
            ),
            locals_at_return(ref_tdmpc.TDMPC.update.__code__, captured),
        ):
            # TDMPC train.py passes its step, which is even at the first update; ours counts updates from 0
            metrics = agent.update(replay, step=i)
        inner = captured[-1]
        weights = inner["weights"]

        def weighted(loss: torch.Tensor, weights: torch.Tensor = weights) -> float:
            """The group's share of TDMPC's weighted_loss, its coefficient apart: mean(clamp(l) * w)."""
            return (loss.clamp(max=1e4).squeeze(1) * weights).mean().item()

        values.update(
            {
                key + "consistency": inner["consistency_loss"].squeeze(1).tolist(),
                key + "reward": inner["reward_loss"].squeeze(1).tolist(),
                key + "value": inner["value_loss"].squeeze(1).tolist(),
                key + "priority": replay.priorities.squeeze(1).tolist(),
                key + "td_target": torch.stack(td_targets)[..., 0].tolist(),
                key + "latent_target": torch.stack(latent_targets).tolist(),
                key + "latents": torch.stack(inner["zs"]).tolist(),
                key + "loss/consistency": weighted(inner["consistency_loss"]),
                key + "loss/reward": weighted(inner["reward_loss"]),
                key + "loss/value": weighted(inner["value_loss"]),
                key + "loss/total": metrics["weighted_loss"],
                key + "loss/pi": metrics["pi_loss"],
                key + "grad_norm": metrics["grad_norm"],
                **{f"{key}grad_norm/{name}": norms[name] for name in MODULES},
            }
        )
        step, ema = moved(model_before, modules), moved(target_before, target_modules)
        values.update({f"{key}step/{name}": step[name] for name in MODULES})
        values.update({f"{key}target_step/{name}": ema[name] for name in MODULES})
    return values, meta


def write_golden(values: dict[str, Any], meta: dict[str, Any], commit: str, modality: str) -> None:
    seeds = {"weight": WEIGHT_SEED, "target": TARGET_SEED, "batch": BATCH_SEED, "noise": NOISE_SEED}
    pixels = {}
    if modality == "pixels":
        seeds["shift"] = SHIFT_SEED
        pixels = {"pixels": {**PIXELS, "image": IMAGE, "episode_start": list(EPISODE_START)}}
    golden = {
        "reference": {"url": REFERENCE_URL, "commit": commit, "patched": PATCHES},
        "regenerate": REGENERATE,
        "seeds": seeds,
        "tiny": TINY,
        **pixels,
        "plan_step": PLAN_STEP,
        "choice_u": list(CHOICE_U),
        "config": meta["config"],
        "parameters": meta["parameters"],
        "weight_abs_sums": meta["weight_abs_sums"],
        "values": values,
    }
    write_golden_file(GOLDEN_PATHS[modality], golden)


def main() -> None:
    args = parse_args(
        __doc__.split("\n\n")[0],
        "nicklashansen/tdmpc",
        "write our weights, batches, noise and numbers (.npz)",
        "the .npz written by --export",
    )
    if args.export:
        sys.path.insert(0, str(ROOT))
        export(args.export)
        return
    commit = reference_commit(args.reference, args.commit)
    for modality in MODALITIES:
        values, meta = run_reference(args.reference, args.ours, modality)
        print(f"--- {modality}")
        print_comparison(meta["ours"], values)
        write_golden(values, meta, commit, modality)
        print(f"wrote {GOLDEN_PATHS[modality]}")


if __name__ == "__main__":
    main()
