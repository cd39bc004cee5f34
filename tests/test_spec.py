"""Run identity: stable ids from what was asked, new ids for changed overrides."""

from bench.spec import RunSpec


def test_variant_names_and_stability():
    plain = RunSpec("dmc", "cartpole_balance", "dreamerv3", 0)
    assert plain.run_id == "dmc/cartpole_balance/dreamerv3/seed0"
    smoke = RunSpec("dmc", "cartpole_balance", "dreamerv3", 1, "smoke")
    assert smoke.variant == "dreamerv3-smoke"
    a = RunSpec(
        "dmc", "cartpole_balance", "dreamerv3", 0, "smoke", (("agent.balancer.weights.reward", 10.0),)
    )
    b = RunSpec(
        "dmc", "cartpole_balance", "dreamerv3", 0, "smoke", (("agent.balancer.weights.reward", 10.0),)
    )
    c = RunSpec(
        "dmc", "cartpole_balance", "dreamerv3", 0, "smoke", (("agent.balancer.weights.reward", 100.0),)
    )
    assert a.run_id == b.run_id
    assert a.variant.startswith("dreamerv3-smoke-") and len(a.variant) == len("dreamerv3-smoke-") + 8
    assert c.run_id != a.run_id
