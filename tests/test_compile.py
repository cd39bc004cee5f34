"""``agent.compile: scan`` captures the RSSM scan and the imagination rollout whole; with the same random
numbers it must compute what eager PyTorch computes. On a CPU ``cuda_graphs`` compiles the same graphs and
replays them without CUDA graphs (tests/test_cuda.py checks the replay on a GPU)."""

from __future__ import annotations

import pytest
import torch
from test_dreamer import make_agent, random_batch
from torch._inductor import config as inductor_config

# Compiling on a CPU takes minutes per graph: the shortest sequence and horizon that still loop.
SHORT = {"batch_length": 4, "imag_horizon": 3}


@pytest.fixture
def eager_random_numbers():
    """Compiled code draws its own random numbers unless told to fall back to eager's generator."""
    previous = inductor_config.fallback_random
    inductor_config.fallback_random = True
    yield
    inductor_config.fallback_random = previous


def test_compiled_scan_and_rollout_match_eager(eager_random_numbers, tmp_path, monkeypatch):
    """Two updates of DV3 from images (the carried state and a second graph replay)."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # compile for real, no stale cache
    torch._dynamo.reset()
    runs = {}
    for compile_mode in ("off", "scan"):
        torch.manual_seed(0)
        agent = make_agent("dreamerv3", compile=compile_mode, cuda_graphs=compile_mode == "scan", **SHORT)
        metrics = [agent.train(random_batch(agent, seed)) for seed in (0, 1)]
        runs[compile_mode] = metrics, agent.modules.state_dict()
    (eager, eager_weights), (compiled, compiled_weights) = runs["off"], runs["scan"]
    for before, after in zip(eager, compiled):
        assert before.keys() == after.keys()
        for key in before:
            assert after[key] == pytest.approx(before[key], rel=1e-4, abs=1e-6), key
    for key, value in eager_weights.items():
        torch.testing.assert_close(compiled_weights[key], value, rtol=1e-4, atol=1e-6, msg=key)


def test_cuda_graphs_need_the_scan_compiled():
    with pytest.raises(ValueError, match="cuda_graphs.*compile=scan"):
        make_agent("dreamerv3", compile="step", cuda_graphs=True)
