"""Balancers: optimum of the harmonious loss, UW, DWA by hand, Nash-MTL bargaining, checkpoints, bad configs."""

import math

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
        {"lr": 0.0},
        {"lr": "fast"},
    ],
)
def test_bad_config_is_one_line_value_error(override):
    with pytest.raises(ValueError) as error:
        balancers.make(DREAMER_GROUPS, config(**override))
    message = str(error.value)
    assert "\n" not in message and "valid" in message


def minimise(balancer, fixed_losses, steps=300):
    """Minimise the balancer's total over its own parameters alone, losses held fixed."""
    optimiser = torch.optim.LBFGS(
        balancer.parameters(),
        max_iter=steps,
        tolerance_grad=1e-9,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimiser.zero_grad()
        total, _ = balancer(fixed_losses)
        total.backward()
        return total

    optimiser.step(closure)


@pytest.mark.parametrize("rectified", [True, False])
def test_harmony_converges_to_the_analytic_optimum(rectified):
    balancer = balancers.make(DREAMER_GROUPS, config("harmony", rectified=rectified))
    fixed = losses(obs=400.0, reward=0.3, dyn=2.5)
    minimise(balancer, fixed)
    for group in ("obs", "reward", "dyn"):
        loss = fixed[group].item()
        expected = (loss + (loss**2 + 4 * loss) ** 0.5) / 2 if rectified else loss
        sigma = balancer.log_sigma[group].exp().item()
        assert sigma == pytest.approx(expected, rel=1e-3), group


def test_harmony_starts_at_the_fixed_weight_loss_plus_three_log_two_and_keeps_cont():
    balancer = balancers.make(DREAMER_GROUPS, config("harmony", weights={"obs": 7.0, "cont": 0.5}))
    total, weights = balancer(losses())
    unit_weight_loss = 3.0 + 0.5 + 2.0 + 0.5 * 0.7  # obs's fixed 7.0 is ignored, cont keeps 0.5
    assert total.item() == pytest.approx(unit_weight_loss + 3 * math.log(2.0))
    assert {g: w.item() for g, w in weights.items()} == {"obs": 1.0, "reward": 1.0, "dyn": 1.0, "cont": 0.5}
    assert sorted(name for name, _ in balancer.named_parameters()) == [
        "log_sigma.dyn",
        "log_sigma.obs",
        "log_sigma.reward",
    ]


def test_harmony_without_dyn_keeps_its_fixed_weight_and_reports_one_over_sigma():
    balancer = balancers.make(
        DREAMER_GROUPS, config("harmony", harmonize=["obs", "reward"], weights={"dyn": 0.8})
    )
    with torch.no_grad():
        balancer.log_sigma["obs"].fill_(math.log(4.0))
    total, weights = balancer(losses())
    assert weights["obs"].item() == pytest.approx(0.25) and weights["dyn"].item() == pytest.approx(0.8)
    expected = 3.0 / 4 + math.log(5.0) + 0.5 + math.log(2.0) + 0.8 * 2.0 + 0.7
    assert total.item() == pytest.approx(expected)


def test_harmony_gradient_reaches_losses_and_scales():
    balancer = balancers.make(DREAMER_GROUPS, config("harmony"))
    obs = torch.tensor(3.0, requires_grad=True)
    total, _ = balancer({**losses(), "obs": obs})
    total.backward()
    assert obs.grad.item() == pytest.approx(1.0)
    assert balancer.log_sigma["obs"].grad.item() == pytest.approx(-3.0 + 0.5)  # -L/sigma + sigma/(1+sigma)


def test_uncertainty_alias_converges_to_sigma_squared_equal_loss():
    balancer = balancers.make(DREAMER_GROUPS, config("uw"))
    fixed = losses(obs=50.0, reward=0.2, dyn=3.0)
    minimise(balancer, fixed)
    _, weights = balancer(fixed)
    for group in ("obs", "reward", "dyn"):
        assert balancer.log_variance[group].exp().item() == pytest.approx(fixed[group].item(), rel=1e-3)
        assert weights[group].item() == pytest.approx(0.5 / fixed[group].item(), rel=1e-3)
    assert weights["cont"].item() == 1.0


def test_dwa_weights_by_hand():
    balancer = balancers.make(DREAMER_GROUPS, config("dwa", dwa_window=2, dwa_temperature=2.0))
    history = [(1.0, 4.0, 3.0), (1.0, 4.0, 3.0), (2.0, 2.0, 3.0), (2.0, 2.0, 3.0)]
    for step, (obs, reward, dyn) in enumerate(history):
        total, weights = balancer(losses(obs=obs, reward=reward, dyn=dyn))
        if step < 3:  # warm-up: the FIFO of 2 x window losses is not full yet; NASH's mean: 1/K each
            assert [weights[g].item() for g in ("obs", "reward", "dyn")] == pytest.approx([1 / 3] * 3)
    # ratios recent/older: obs 2/1, reward 2/4, dyn 3/3; w = 3 softmax(r / 2), averaged over the 3 groups
    exps = [math.exp(1.0), math.exp(0.25), math.exp(0.5)]
    expected = [e / sum(exps) for e in exps]
    assert [weights[g].item() for g in ("obs", "reward", "dyn")] == pytest.approx(expected, rel=1e-6)
    assert weights["cont"].item() == 1.0
    assert total.item() == pytest.approx(expected[0] * 2 + expected[1] * 2 + expected[2] * 3 + 0.7, rel=1e-6)


def test_dwa_starts_as_nash_against_a_fifo_of_ones_or_waits_for_a_full_window():
    history = [(2.0, 4.0, 8.0)] * 6
    nash = balancers.make(DREAMER_GROUPS, config("dwa", dwa_window=3, dwa_temperature=2.0))
    full = balancers.make(DREAMER_GROUPS, config("dwa", dwa_window=3, dwa_start="full_window"))
    for call, (obs, reward, dyn) in enumerate(history, start=1):
        _, got = nash(losses(obs=obs, reward=reward, dyn=dyn))
        _, waited = full(losses(obs=obs, reward=reward, dyn=dyn))
        assert waited["obs"].item() == pytest.approx(1 / 3)  # 2 x window = 6 calls: still ones
        if call < 5:
            assert got["obs"].item() == pytest.approx(1 / 3)
        if call == 5:
            break
    # call 5 = window + 2: FIFO (oldest first) = [1, x, x, x, x, x]; older window mean (1 + 2x) / 3
    ratios = [x / ((1 + 2 * x) / 3) for x in (2.0, 4.0, 8.0)]
    exps = [math.exp(r / 2) for r in ratios]
    assert [got[g].item() for g in ("obs", "reward", "dyn")] == pytest.approx([e / sum(exps) for e in exps])


def test_dwa_state_dict_round_trip_restores_the_fifo():
    trained = balancers.make(DREAMER_GROUPS, config("dwa", dwa_window=2))
    for obs in (1.0, 3.0, 5.0, 9.0):
        trained(losses(obs=obs))
    restored = balancers.make(DREAMER_GROUPS, config("dwa", dwa_window=2))
    restored.load_state_dict(trained.state_dict())
    fresh = balancers.make(DREAMER_GROUPS, config("dwa", dwa_window=2))
    _, expected = trained(losses(obs=4.0))
    _, got = restored(losses(obs=4.0))
    _, untrained = fresh(losses(obs=4.0))
    assert {g: w.item() for g, w in got.items()} == {g: w.item() for g, w in expected.items()}
    assert untrained["obs"].item() != pytest.approx(expected["obs"].item())


def linear_losses(gradients: torch.Tensor, param: torch.Tensor) -> dict[str, torch.Tensor]:
    """Loss i = g_i . p, so its gradient on the shared parameter p is exactly row g_i."""
    return {g: gradients[i] @ param for i, g in enumerate(("obs", "reward", "dyn"))} | {
        "cont": param.sum() * 0 + 0.7
    }


def nash_alpha(weights) -> torch.Tensor:
    return torch.stack([weights[g] for g in ("obs", "reward", "dyn")]).double()


def test_nashmtl_solves_the_bargaining_condition():
    torch.manual_seed(0)
    gradients = torch.randn(3, 40, dtype=torch.float64) * torch.tensor(
        [[30.0], [1.0], [0.1]], dtype=torch.float64
    )
    param = torch.zeros(40, dtype=torch.float64, requires_grad=True)
    balancer = balancers.make(DREAMER_GROUPS, config("nashmtl", nash_max_norm=0.0))
    assert balancer.needs_shared_params
    total, weights = balancer(linear_losses(gradients, param), [param])
    alpha = nash_alpha(weights)
    gram = gradients @ gradients.T
    assert (alpha > 0).all()
    assert (alpha * (gram @ alpha)).tolist() == pytest.approx([1.0, 1.0, 1.0], rel=1e-2)
    total.backward()  # alpha is a constant: the shared gradient is sum_i alpha_i g_i
    assert param.grad.tolist() == pytest.approx((alpha @ gradients).tolist(), rel=1e-5)

    # NASH clips the shared parameters' gradient after backward; alpha itself stays the solution
    clipped = balancers.make(DREAMER_GROUPS, config("nashmtl", nash_max_norm=1.0))
    param.grad = None
    total, weights = clipped(linear_losses(gradients, param), [param])
    assert nash_alpha(weights).tolist() == pytest.approx(alpha.tolist(), rel=1e-6)
    total.backward()
    clipped.after_backward([param])
    assert torch.linalg.norm(param.grad).item() == pytest.approx(1.0, rel=1e-6)
    assert (param.grad / torch.linalg.norm(param.grad)).tolist() == pytest.approx(
        ((alpha @ gradients) / torch.linalg.norm(alpha @ gradients)).tolist(), rel=1e-6
    )


def test_nashmtl_reuses_alpha_between_updates_and_restores_it_from_a_checkpoint():
    torch.manual_seed(1)
    param = torch.zeros(30, dtype=torch.float64, requires_grad=True)
    balancer = balancers.make(DREAMER_GROUPS, config("nashmtl", nash_update_every=3))
    alphas = []
    for _ in range(4):
        gradients = torch.randn(3, 30, dtype=torch.float64)
        _, weights = balancer(linear_losses(gradients, param), [param])
        alphas.append(nash_alpha(weights))
        if len(alphas) == 1:
            snapshot = {k: v.clone() for k, v in balancer.state_dict().items()}
    assert torch.equal(alphas[0], alphas[1]) and torch.equal(alphas[0], alphas[2])
    assert not torch.allclose(alphas[0], alphas[3])

    restored = balancers.make(DREAMER_GROUPS, config("nashmtl", nash_update_every=3))
    restored.load_state_dict(snapshot)
    _, weights = restored(linear_losses(torch.randn(3, 30, dtype=torch.float64), param), [param])
    assert torch.equal(nash_alpha(weights), alphas[0])  # call 2 of 3 reuses the restored alpha


def test_nashmtl_zero_gradient_group_gets_zero_weight_without_nan():
    torch.manual_seed(2)
    gradients = torch.randn(3, 20, dtype=torch.float64)
    gradients[2] = 0.0  # dyn: KL clamped by free bits
    param = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    balancer = balancers.make(DREAMER_GROUPS, config("nashmtl", nash_max_norm=0.0))
    detached = linear_losses(gradients, param) | {"dyn": torch.tensor(1.0, dtype=torch.float64)}
    for batch in (linear_losses(gradients, param), detached):
        total, weights = balancer(batch, [param])
        alpha = nash_alpha(weights)
        assert torch.isfinite(total) and torch.isfinite(alpha).all()
        assert alpha[2].item() == 0.0
        active = gradients[:2] @ gradients[:2].T
        assert (alpha[:2] * (active @ alpha[:2])).tolist() == pytest.approx([1.0, 1.0], rel=1e-2)


def test_nashmtl_without_shared_params_is_a_clear_error():
    with pytest.raises(ValueError, match="shared parameters"):
        balancers.make(DREAMER_GROUPS, config("nashmtl"))(losses())
