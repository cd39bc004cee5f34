"""Balancers: optimum of the harmonious loss, UW, DWA by hand, Nash-MTL bargaining, checkpoints, bad configs."""

import pytest
import torch

from agents import balancers

torch.set_num_threads(1)
DREAMER_GROUPS = ("obs", "reward", "dyn", "cont")


def config(name: str = "fixed", **overrides) -> dict:
    cfg = balancers.default_config({"obs": 1.0, "reward": 1.0, "dyn": 1.0, "cont": 1.0})
    cfg.update(name=name, **overrides)
    return cfg


def losses(obs=3.0, reward=0.5, dyn=2.0, cont=0.7) -> dict[str, torch.Tensor]:
    return {
        "obs": torch.tensor(obs),
        "reward": torch.tensor(reward),
        "dyn": torch.tensor(dyn),
        "cont": torch.tensor(cont),
    }


def test_fixed_weights_sum_and_default_one():
    balancer = balancers.make(DREAMER_GROUPS, config(weights={"obs": 2.0, "cont": 0.5}))
    total, weights = balancer(losses())
    assert total.item() == pytest.approx(2.0 * 3.0 + 0.5 + 2.0 + 0.5 * 0.7)
    assert {g: w.item() for g, w in weights.items()} == {"obs": 2.0, "reward": 1.0, "dyn": 1.0, "cont": 0.5}
    assert list(balancer.parameters()) == []


def test_fixed_gradient_flows_to_losses():
    obs = torch.tensor(3.0, requires_grad=True)
    total, _ = balancers.make(DREAMER_GROUPS, config(weights={"obs": 4.0}))({**losses(), "obs": obs})
    total.backward()
    assert obs.grad.item() == pytest.approx(4.0)


@pytest.mark.parametrize(
    "override",
    [
        {"name": "bogus"},
        {"weights": {"pixels": 1.0}},
        {"weights": {"obs": -1.0}},
        {"name": "harmony", "harmonize": ["obs", "image"]},
        {"dwa_window": 0},
        {"dwa_temperature": -1.0},
        {"nash_update_every": 1.5},
        {"nash_iters": 0},
    ],
)
def test_bad_config_is_one_line_value_error(override):
    with pytest.raises(ValueError) as error:
        balancers.make(DREAMER_GROUPS, config(**override))
    message = str(error.value)
    assert "\n" not in message and "valid" in message
