"""Every agent on a CUDA device: updates stay finite and on the device, a model fits a fixed batch, mixed
precision trains, and a checkpoint written on the GPU resumes on a CPU. Skipped without a GPU (CI has none)."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

SPACES = gym.spaces.Dict(
    {
        "image": gym.spaces.Box(0, 255, (64, 64, 3), np.uint8),
        "state": gym.spaces.Box(-np.inf, np.inf, (5,), np.float32),
    }
)
ACTIONS = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
NAMES = ["dreamerv3", "harmonydream", "uw", "dwa", "nashmtl", "dreamerpro", "tdmpc"]


def make(name: str, device: str, **overrides) -> agents.base.Agent:
    config = agents.default_config(name, "smoke", "dmc")["agent"]
    config.update(overrides)
    obs = gym.spaces.Dict({"image": SPACES["image"]}) if name != "tdmpc" else SPACES
    return agents.make(name, obs, ACTIONS, config, torch.device(device))


def fixed_batch(agent: agents.base.Agent) -> dict[str, np.ndarray]:
    """One batch whose reward is a function of the image, so a model can fit it."""
    rng = np.random.default_rng(0)
    b, t = agent.batch_size, agent.batch_length
    image = rng.integers(0, 256, (b, t, 64, 64, 3), dtype=np.uint8)
    is_first = np.zeros((b, t), bool)
    is_first[:, 0] = True
    return {
        "image": image,
        "state": rng.normal(size=(b, t, 5)).astype(np.float32),
        "action": rng.uniform(-1, 1, (b, t, 2)).astype(np.float32),
        "reward": (image[..., 0].mean((-1, -2)) / 128.0 - 1.0).astype(np.float32),
        "is_first": is_first,
        "is_last": np.zeros((b, t), bool),
        "is_terminal": np.zeros((b, t), bool),
    }


def parameters(agent: agents.base.Agent) -> dict[str, torch.Tensor]:
    modules = agent.model if hasattr(agent, "model") else agent.modules  # TD-MPC's TOLD, or Dreamer's
    return modules.state_dict()


def first_obs(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"image": batch["image"][:1, 0], "state": batch["state"][:1, 0], "is_first": np.ones(1, bool)}


def model_loss(metrics: dict[str, float]) -> float:
    """The part of the loss a model fits on a fixed batch: reward, plus TD-MPC's latent consistency."""
    return metrics["loss/reward"] + metrics.get("loss/consistency", 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_updates_on_cuda_are_finite_stay_on_the_device_and_fit_a_fixed_batch(name):
    torch.manual_seed(0)
    agent = make(name, "cuda", **{"lr" if name == "tdmpc" else "model_lr": 1e-3})  # fit in a few updates
    batch = fixed_batch(agent)
    first = agent.train(batch)
    for _ in range(40):
        last = agent.train(batch)
    assert all(np.isfinite(v) for v in last.values()), {k: v for k, v in last.items() if not np.isfinite(v)}
    assert all(p.is_cuda for p in parameters(agent).values())
    assert model_loss(last) < 0.85 * model_loss(first), (model_loss(first), model_loss(last))
    action, _ = agent.policy(first_obs(batch), None, "eval")
    assert action.shape == (1, 2) and np.all(np.abs(action) <= 1.0)


@pytest.mark.parametrize("name", ["dreamerv3", "harmonydream", "dreamerpro"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_updates_on_cuda_keep_finite_losses_and_weights_and_take_steps(name, precision):
    """fp16's loss scaler skips the first steps while it backs off (grad norms inf), then trains."""
    torch.manual_seed(0)
    agent = make(name, "cuda", precision=precision)
    before = {k: v.clone() for k, v in parameters(agent).items()}
    batch = fixed_batch(agent)
    for _ in range(20):
        metrics = agent.train(batch)
    assert all(np.isfinite(v) for k, v in metrics.items() if k.startswith("loss/")), metrics
    after = parameters(agent)
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    encoder = [k for k in before if "encoder" in k and k.endswith("weight")]
    assert encoder and any(not torch.equal(before[k], after[k]) for k in encoder), "no update was applied"


@pytest.mark.parametrize("name", ["dreamerv3", "harmonydream", "tdmpc"])
def test_a_checkpoint_written_on_cuda_resumes_on_cpu(name):
    torch.manual_seed(0)
    agent = make(name, "cuda")
    batch = fixed_batch(agent)
    agent.train(batch)
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    resumed = make(name, "cpu")
    resumed.load_state_dict(torch.load(buffer, map_location="cpu", weights_only=True))
    for (key, gpu), cpu in zip(parameters(agent).items(), parameters(resumed).values()):
        assert torch.equal(gpu.cpu(), cpu), key
    metrics = resumed.train(batch)
    assert all(np.isfinite(v) for v in metrics.values())


def pinned(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The batch as bench's prefetch hands it over: page-locked host tensors."""
    return {key: torch.from_numpy(value).pin_memory() for key, value in batch.items()}


@pytest.mark.parametrize("name", ["dreamerv3", "harmonydream", "uw", "dwa"])
def test_an_update_never_waits_for_the_device(name):
    """bf16 (no loss scaler) from a pinned batch: any host sync inside the update raises here. Its metrics
    are gathered once, after it (``train`` = ``train_scalars`` + one copy)."""
    torch.manual_seed(0)
    agent = make(name, "cuda", precision="bf16")
    batch = pinned(fixed_batch(agent))
    agent.train(batch)  # the first update allocates optimizer state and warms the caches
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        scalars = agent.train_scalars(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(v).all() for k, v in scalars.items() if k.startswith("loss/"))


def test_cuda_graphs_replay_the_scan_and_rollout_across_updates():
    """compile: scan with cuda_graphs: several updates in a row (each a new graph generation) stay finite,
    the carried state survives the next replay, and the policy (never graphed) still acts."""
    torch.manual_seed(0)
    agent = make("dreamerv3", "cuda", compile="scan", cuda_graphs=True, precision="bf16", model_lr=1e-3)
    batch = fixed_batch(agent)
    first = agent.train(batch)
    carried = {k: v.clone() for k, v in agent.carry.items()}
    for _ in range(10):
        last = agent.train(batch)
    assert all(np.isfinite(v) for v in last.values()), last
    assert model_loss(last) < model_loss(first)
    assert not torch.equal(carried["deter"], agent.carry["deter"])  # updated, not aliased to graph memory
    action, _ = agent.policy(first_obs(batch), None, "eval")
    assert action.shape == (1, 2) and np.all(np.abs(action) <= 1.0)
