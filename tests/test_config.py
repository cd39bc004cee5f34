"""Override parsing and type checking of the run config."""

import pytest

from bench import config as cfg


def test_parse_value_types():
    assert cfg.parse_value("3") == 3
    assert cfg.parse_value("3e-4") == pytest.approx(3e-4)
    assert cfg.parse_value("true") is True
    assert cfg.parse_value("[obs, reward]") == ["obs", "reward"]
    assert cfg.parse_value("[]") == []
    assert cfg.parse_value("fast") == "fast"


def test_apply_override_checks_key_and_type():
    config = {
        "run": {"steps": 10, "lr": 1e-4, "flag": True, "groups": ["obs"]},
        "agent": {"balancer": {"name": "fixed"}},
    }
    cfg.apply_override(config, "run.steps", 20)
    cfg.apply_override(config, "run.lr", 1)  # ints widen to floats
    assert config["run"]["lr"] == 1.0 and isinstance(config["run"]["lr"], float)
    cfg.apply_override(config, "agent.balancer", "uw")  # a string on a named section sets its name
    assert config["agent"]["balancer"]["name"] == "uw"
    cfg.apply_override(config, "run.groups", ["obs", "reward"])
    assert config["run"]["groups"] == ["obs", "reward"]
    with pytest.raises(cfg.ConfigError, match="unknown config key 'run.stepz'.*steps"):
        cfg.apply_override(config, "run.stepz", 1)
    with pytest.raises(cfg.ConfigError, match="expected a int"):
        cfg.apply_override(config, "run.steps", "many")
    with pytest.raises(cfg.ConfigError, match="expected a bool"):
        cfg.apply_override(config, "run.flag", 3)
    with pytest.raises(cfg.ConfigError, match="is a section"):
        cfg.apply_override(config, "run", 3)


def test_parse_sweep():
    assert cfg.parse_sweep("agent.balancer.weights.reward=1,10,100") == (
        "agent.balancer.weights.reward",
        [1, 10, 100],
    )
    for bad in ("agent.x", "agent.x=1", "=1,2", "a=1,,2"):
        with pytest.raises(cfg.ConfigError):
            cfg.parse_sweep(bad)


def test_merge_is_deep_and_copies():
    base = {"a": {"b": 1, "c": [1]}}
    out = cfg.merge(base, {"a": {"b": 2}})
    assert out == {"a": {"b": 2, "c": [1]}}
    out["a"]["c"].append(2)
    assert base["a"]["c"] == [1]
