"""Our side of the TD-MPC golden check: a tiny agent, its weights, two batches, the noise, its numbers; on
states (``modality="state"``) and on stacked 64x64 frames (``"pixels"``, TDMPC's cfgs/pixels.yaml).

Used by tests/test_golden_tdmpc.py (compares with tests/golden/tdmpc.json) and by tools/golden/make_tdmpc.py
(exports these weights and batches to the reference, nicklashansen/tdmpc, and records what it computes from
them). The module imports only numpy and torch at the top: the reference's environment reads its helpers
without our package.

Determinism, and what is made equal on both sides:

* Weights: not either side's initialiser (the zero-initialised reward and Q outputs would make every value 0):
  golden_dreamerv3's ``golden_weights_`` fills the model from one seed and the EMA target from another, so
  the consistency and TD targets see a target network other than the online one.
* Noise: every Gaussian draw (the policy's noise in the TD targets, the policy loss and the planner, the
  planner's samples and its exploration noise) takes the next numbers of one seeded standard-normal stream
  (``NoiseTape``), in the order both codes draw them; our planner draws its samples as (N, samples, H, A),
  the reference as (H, samples, A): the same numbers are laid out in each side's order. The planner's pick
  of an elite (ours torch.multinomial, the reference np.random.choice) inverts the scores' CDF at fixed
  uniforms (``CHOICE_U``).
* Pixels: each frame's random shift (TDMPC RandomShiftsAug, ours ``random_shift``) takes the next two numbers
  of one seeded stream of whole-pixel shifts; the reference draws a frame's pair as (x, y), ours as (row,
  column): the same numbers, laid out in each side's order. Both sides shift the first frame stack and then
  each following one, batch rows innermost. Half the sequences start their episode one step in, so their
  first stack repeats the episode's first frame (TDMPC ReplayBuffer._get_obs, ours ``stack_frames``).
  The two planning calls see an episode's reset frame and its next frame: the reference through its own
  FrameStackWrapper, ours through the frames its policy state carries.
* Optimizer steps are real on both sides: the second update runs on the stepped model, the stepped policy
  and the EMA target (mixed after update 0, as both codes do at an even update count).
* What is recorded inside the update (per-sample losses, TD and latent targets, the latents the policy
  trains on) is read from the loss function's local variables when it returns (``locals_at_return``), so
  nothing of either side is recomputed here.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from types import CodeType
from typing import Any

import numpy as np
import torch
from golden_dreamerv3 import golden_weights_, patched
from torch import nn

WEIGHT_SEED = 3
TARGET_SEED = 5
BATCH_SEED = 4
NOISE_SEED = 6
OBS_DIM = 5
ACTIONS = 2
# The tiny agent: the state preset (suite gym) at smoke size with these values; every other knob (rho,
# discount, tau, target_every, lr, the loss weights, the planner's temperature, momentum and initial std,
# the policy noise clip) keeps the TD-MPC default the reference has (cfgs/default.yaml, tdmpc.py).
TINY = {
    "latent_dim": 8,
    "enc_dim": 16,
    "mlp_dim": 16,
    "horizon": 3,
    "batch_size": 4,
    "plan_iterations": 3,
    "plan_samples": 16,
    "plan_elites": 4,
    "plan_policy_fraction": 0.25,
    "schedule_steps": 25000,
    "grad_clip": 1.0,  # below the gradient norms (TD-MPC: 10), so that both sides' clipping acts
    "min_std": 0.2,  # the policy noise (TD-MPC: 0.05) reaches its clip at 0.3 and the clamp inside (-1, 1)
}
MODALITIES = ("state", "pixels")
# Pixels: TDMPC's pixel settings (cfgs/pixels.yaml: frame_stack 3, lr 3e-4) at 64x64, the harness's size,
# where TDMPC's pad int(img_size / 21) is our aug_pad 3; a 4-channel CNN keeps the check small.
IMAGE = 64
PIXELS = {"cnn_channels": 4, "frame_stack": 3, "aug_pad": 3}
EPISODE_START = (0, 1, 0, 1)  # per pixel sequence, the step at which its episode starts
SHIFT_SEED = 7
PLAN_STEP = 30000  # agent steps acted before planning: past the schedules (full horizon, std floor min_std)
CHOICE_U = (0.3, 0.8)  # the uniforms at which each planning call picks an elite
MODULES = ("encoder", "dynamics", "reward", "q1", "q2", "pi")


def agent_config(modality: str = "state") -> dict[str, Any]:
    from agents import tdmpc

    config = tdmpc.default_config("tdmpc", "smoke", "gym" if modality == "state" else "dmc")["agent"]
    config.update(TINY)
    if modality == "pixels":
        config.update(PIXELS)
    return config


def build_agent(modality: str = "state") -> Any:
    """Our tiny TD-MPC on CPU in fp32 with the golden weights (model and target)."""
    import gymnasium as gym

    from agents import tdmpc

    if modality == "state":
        obs = gym.spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    else:
        obs = gym.spaces.Box(0, 255, (IMAGE, IMAGE, 3), np.uint8)
    obs_space = gym.spaces.Dict({"state" if modality == "state" else "image": obs})
    act_space = gym.spaces.Box(-1, 1, (ACTIONS,), np.float32)
    agent = tdmpc.make("tdmpc", obs_space, act_space, agent_config(modality), torch.device("cpu"))
    golden_weights_(agent.model, WEIGHT_SEED)
    golden_weights_(agent.target, TARGET_SEED)
    return agent


def weight_sums(agent: Any) -> dict[str, float]:
    """sum |w| of every parameter of the model and the target: the golden file records the weights it used."""
    return {
        f"{prefix}/{name}": param.detach().double().abs().sum().item()
        for prefix, module in (("model", agent.model), ("target", agent.target))
        for name, param in module.named_parameters()
    }


def make_batch(seed: int, modality: str = "state") -> dict[str, np.ndarray]:
    """A replay-shaped batch (the harness's layout: action[t] and reward[t] led to state[t]) with
    prioritized-replay weights (max 1, as the replay normalises). States: horizon + 1 steps, one episode per
    sequence. Pixels: frame_stack - 1 more steps that fill the first stack; each sequence's episode starts at
    its ``EPISODE_START`` step and runs to the end of the sequence."""
    rng = np.random.default_rng(seed)
    b, t = TINY["batch_size"], TINY["horizon"] + 1
    if modality == "pixels":
        t += PIXELS["frame_stack"] - 1
    is_first = np.zeros((b, t), bool)
    is_first[np.arange(b), EPISODE_START if modality == "pixels" else 0] = True
    weight = rng.uniform(0.3, 1.0, b).astype(np.float32)
    if modality == "state":
        obs = {"state": rng.standard_normal((b, t, OBS_DIM)).astype(np.float32)}
    else:
        obs = {"image": rng.integers(0, 256, (b, t, IMAGE, IMAGE, 3), dtype=np.uint8)}
    return {
        **obs,
        "action": rng.uniform(-1, 1, (b, t, ACTIONS)).astype(np.float32),
        "reward": rng.standard_normal((b, t)).astype(np.float32),
        "is_first": is_first,
        "is_last": np.zeros((b, t), bool),
        "is_terminal": np.zeros((b, t), bool),
        "weight": weight / weight.max(),
    }


def batches(modality: str = "state") -> list[dict[str, np.ndarray]]:
    return [make_batch(BATCH_SEED, modality), make_batch(BATCH_SEED + 1, modality)]


def plan_observations(modality: str = "state") -> np.ndarray:
    """The observations of the two planning calls (the second warm-starts from the first): states (2, OBS_DIM),
    or the frames (2, IMAGE, IMAGE, 3) of an episode's reset and first step."""
    rng = np.random.default_rng(BATCH_SEED + 2)
    if modality == "state":
        return rng.standard_normal((2, OBS_DIM)).astype(np.float32)
    return rng.integers(0, 256, (2, IMAGE, IMAGE, 3), dtype=np.uint8)


def noise_numbers(seed: int = NOISE_SEED, count: int = 20000) -> np.ndarray:
    """The standard-normal numbers every draw of both sides is taken from (exported with the weights)."""
    return np.random.default_rng(seed).standard_normal(count).astype(np.float32)


def shift_numbers(seed: int = SHIFT_SEED, count: int = 200) -> np.ndarray:
    """The whole-pixel shifts in [0, 2 * aug_pad] (before subtracting the pad) both sides' random shifts take."""
    return np.random.default_rng(seed).integers(0, 2 * PIXELS["aug_pad"] + 1, count)


class NoiseTape:
    """Hands out ``numbers`` in order: each draw takes the next ``prod(shape)`` of them."""

    def __init__(self, numbers: np.ndarray):
        self.numbers, self.used = numbers, 0

    def take(self, shape: Sequence[int]) -> torch.Tensor:
        shape = tuple(int(s) for s in shape)
        size = int(np.prod(shape))
        if self.used + size > len(self.numbers):
            raise RuntimeError(f"the noise tape holds {len(self.numbers)} numbers; {self.used + size} needed")
        self.used += size
        return torch.from_numpy(self.numbers[self.used - size : self.used].copy()).reshape(shape)


def pick(probs: Any, u: float) -> int:
    """The index where the CDF of ``probs`` first exceeds ``u`` (a categorical sample at uniform u)."""
    cdf = np.cumsum(np.asarray(probs, np.float64))
    return int(min(np.searchsorted(cdf / cdf[-1], u, side="right"), len(cdf) - 1))


@contextlib.contextmanager
def locals_at_return(code: CodeType, into: list[dict[str, Any]]) -> Iterator[None]:
    """Append the local variables of every call of ``code`` as it returns (read-only: a profile hook)."""

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is code:
            into.append(dict(frame.f_locals))

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(previous)


def recording_clip(modules: dict[str, nn.Module], norms: dict[str, float]) -> Any:
    """torch.nn.utils.clip_grad_norm_ that first records each module's gradient norm (before clipping) over the
    parameters it is given, then clips as the original does."""
    clip = torch.nn.utils.clip_grad_norm_
    owner = {id(p): name for name, module in modules.items() for p in module.parameters()}

    def clip_grad_norm_(parameters: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        parameters = list(parameters)
        sums: dict[str, float] = {}
        for p in parameters:
            if p.grad is not None and id(p) in owner:
                name = owner[id(p)]
                sums[name] = sums.get(name, 0.0) + p.grad.double().square().sum().item()
        norms.update({name: total**0.5 for name, total in sums.items()})
        return clip(parameters, *args, **kwargs)

    return clip_grad_norm_


def snapshot(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {
        name: torch.cat([p.detach().flatten() for p in m.parameters()]).clone() for name, m in modules.items()
    }


def moved(before: dict[str, torch.Tensor], modules: dict[str, nn.Module]) -> dict[str, float]:
    """Each module's parameter change since ``before`` (the optimizer step, or the target's EMA), as a norm."""
    after = snapshot(modules)
    return {name: (after[name].double() - before[name].double()).norm().item() for name in before}


def our_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {
        "encoder": model.encoder,
        "dynamics": model.dynamics,
        "reward": model.reward,
        "q1": model.q1,
        "q2": model.q2,
        "pi": model.pi_net,
    }


def _stacked(tensors: Sequence[torch.Tensor]) -> list:
    return torch.stack([t.detach() for t in tensors]).tolist()


def measure_ours(agent: Any, numbers: np.ndarray, modality: str = "state") -> dict[str, Any]:
    """Two planning calls, then two ``TDMPC.train`` updates with the shared noise; the golden
    quantities under the names tests/golden/tdmpc*.json use. Nothing of ours is replaced: the patches only
    feed the noise and the shifts and record gradient norms and the loss function's locals."""
    from agents import tdmpc

    values: dict[str, Any] = {}
    tape = NoiseTape(numbers)  # one tape: the updates take the numbers after the planner's
    shifts = NoiseTape(shift_numbers())
    uniforms = iter(CHOICE_U)

    def randn(*size: Any, **kwargs: Any) -> torch.Tensor:
        size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], Sequence) else size
        if len(size) == 4:  # the planner's samples (N, samples, H, A): the reference draws (H, samples, A)
            n, samples, horizon, act = size
            assert n == 1, "the golden planner plans for one environment"
            return tape.take((horizon, samples, act)).transpose(0, 1)[None].contiguous()
        return tape.take(size)

    def randn_like(x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return tape.take(x.shape)

    def multinomial(probs: torch.Tensor, num_samples: int, **kwargs: Any) -> torch.Tensor:
        return torch.tensor([[pick(row, next(uniforms))] for row in probs.tolist()])

    def randint(low: int, high: int, size: Sequence[int], **kwargs: Any) -> torch.Tensor:
        return shifts.take((size[0], 2)).flip(-1)  # the reference's (x, y) pair as our (row, column)

    noise = ((torch, "randn", randn), (torch, "randn_like", randn_like), (torch, "randint", randint))
    agent.step = PLAN_STEP
    state = None
    with patched(*noise, (torch, "multinomial", multinomial)):
        for i, obs in enumerate(plan_observations(modality)):
            action, state = agent.policy({agent.obs_key: obs[None]}, state, "train")
            values[f"plan{i + 1}/action"] = action[0].tolist()
            values[f"plan{i + 1}/mean"] = state["mean"][0].tolist()

    modules = our_modules(agent.model)
    for i, batch in enumerate(batches(modality)):
        key = f"update{i + 1}/"
        captured: list[dict[str, Any]] = []
        norms: dict[str, float] = {}
        model_before, target_before = snapshot(modules), snapshot(our_modules(agent.target))
        with (
            patched(*noise, (torch.nn.utils, "clip_grad_norm_", recording_clip(modules, norms))),
            locals_at_return(tdmpc.told_losses.__code__, captured),
        ):
            metrics = agent.train(batch)
        inner = captured[-1]
        values.update(
            {
                key + "consistency": inner["consistency"].tolist(),
                key + "reward": inner["reward_loss"].tolist(),
                key + "value": inner["value"].tolist(),
                key + "priority": agent.priorities.tolist(),
                key + "td_target": inner["td_target"].tolist(),
                key + "latent_target": inner["next_z_target"].tolist(),
                key + "latents": _stacked(inner["latents"]),
                key + "loss/consistency": metrics["loss/consistency"],
                key + "loss/reward": metrics["loss/reward"],
                key + "loss/value": metrics["loss/value"],
                key + "loss/total": metrics["loss/total"],
                key + "loss/pi": metrics["loss/pi"],
                key + "grad_norm": metrics["grad_norm"],
                # nan where no clip call saw the module's gradient
                **{f"{key}grad_norm/{name}": norms.get(name, float("nan")) for name in MODULES},
            }
        )
        step, ema = moved(model_before, modules), moved(target_before, our_modules(agent.target))
        values.update({f"{key}step/{name}": step[name] for name in MODULES})
        values.update({f"{key}target_step/{name}": ema[name] for name in MODULES})
    return values
