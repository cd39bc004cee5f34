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


def test_log_overrides_leave_the_run_identity_alone():
    plain = RunSpec("dmc", "cartpole_balance", "dreamerv3", 0, "smoke")
    logged = RunSpec("dmc", "cartpole_balance", "dreamerv3", 0, "smoke", (("log.tensorboard", False),))
    trained = RunSpec("dmc", "cartpole_balance", "dreamerv3", 0, "smoke", (("run.train_ratio", 8.0),))
    both = RunSpec(
        "dmc",
        "cartpole_balance",
        "dreamerv3",
        0,
        "smoke",
        (("log.tensorboard", False), ("run.train_ratio", 8.0)),
    )
    assert logged.variant == plain.variant
    assert both.variant == trained.variant != plain.variant


def test_a_later_command_with_other_log_settings_updates_the_existing_run(tmp_path):
    from bench import launch, store

    first = RunSpec("gym", "Pendulum-v1", "dreamerv3", 0, "smoke")
    run_dir = launch.prepare(first, tmp_path, first.resolve())
    later = RunSpec("gym", "Pendulum-v1", "dreamerv3", 0, "smoke", (("log.tensorboard", False),))
    assert launch.prepare(later, tmp_path, later.resolve()) == run_dir
    spec = store.read_json(run_dir / "spec.json")
    assert spec["config"]["log"]["tensorboard"] is False
    assert spec["overrides"] == {"log.tensorboard": False}
    assert spec["config"]["run"] == first.resolve()["run"]
