"""Paper names resolve per suite: HarmonyDream on Atari100K is DreamerV3 + harmony (the paper's Atari100K
runs used thuml/HarmonyDream's dreamerv3-jax), DreamerV2 + harmony everywhere else; explicit
``<backbone>+<balancer>`` names mean the same on every suite."""

import json

import pytest

import agents
from bench.cli import main


@pytest.mark.parametrize(
    ("name", "suite", "pair", "version"),
    [
        ("harmonydream", "atari100k", "dreamerv3+harmony", "dreamerv3-2023"),
        ("harmonydream", "dmcr", "dreamerv2+harmony", "dreamerv2"),
        ("harmonydream", "", "dreamerv2+harmony", "dreamerv2"),
        ("dreamerv2+harmony", "atari100k", "dreamerv2+harmony", "dreamerv2"),
        ("dreamerv3", "atari100k", "dreamerv3+fixed", "dreamerv3-2023"),
        ("uw", "atari100k", "dreamerv2+uncertainty", "dreamerv2"),
    ],
)
def test_paper_names_resolve_per_suite(name, suite, pair, version):
    assert agents.resolve(name, suite).pair == pair
    config = agents.default_config(name, "smoke", suite or "dmc")["agent"]
    assert config["version"] == version
    assert config["balancer"]["name"] == pair.split("+")[1]
    agents.check_config(name, config, suite)


def test_dry_run_and_spec_show_the_resolved_backbone(tmp_path, capsys):
    argv = ["run", "--suite", "atari100k", "--tasks", "pong", "--agents", "harmonydream", "--preset", "smoke"]
    assert main([*argv, "--dry-run", "--results", str(tmp_path / "r")]) == 0
    assert "dreamerv3+harmony" in capsys.readouterr().out
    from bench.spec import RunSpec

    assert RunSpec("atari100k", "pong", "harmonydream", 0, "smoke").to_json()["resolved_agent"] == (
        "dreamerv3+harmony"
    )
    assert RunSpec("dmc", "cartpole_balance", "harmonydream", 0).to_json()["resolved_agent"] == (
        "dreamerv2+harmony"
    )
    json.dumps(RunSpec("atari100k", "pong", "harmonydream", 0).to_json())
