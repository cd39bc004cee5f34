"""Bad input: one line naming the bad value and the valid choices, exit code 2, nothing written."""

import pytest
import yaml
from conftest import bench

from bench.cli import build_parser

RUN = ["run", "--suite", "gym", "--tasks", "Pendulum-v1", "--agents", "dreamerv3", "--preset", "smoke"]


def _snapshot(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "--suite", "nosuch", "--agents", "dreamerv3"], "unknown suite 'nosuch'; valid: dmc"),
        (["run", "--suite", "gym", "--tasks", "Nope-v0", "--agents", "dreamerv3"], "unknown task 'Nope-v0'"),
        (["run", "--suite", "gym", "--agents", "dreamerv9"], "unknown agent 'dreamerv9'; valid: dreamerv2"),
        ([*RUN, "--set", "agent.nosuch=1"], "unknown config key 'agent.nosuch'"),
        ([*RUN, "--set", "run.steps=lots"], "run.steps=lots: expected a int"),
        ([*RUN, "--set", "run.steps"], "expected dotted.key=value"),
        ([*RUN, "--sweep", "agent.balancer.weights.reward=1"], "at least two values"),
        ([*RUN, "--sweep", "agent.balancer.weights.reward"], "expected dotted.key=value"),
        ([*RUN, "--set", "agent.balancer=nosuch"], "nosuch"),
        (
            [*RUN, "--set", "run.replay_sampling=episode"],
            "run.replay_sampling='episode' is invalid; valid choices: stream, episodes",
        ),
        ([*RUN, "--set", "run.replay_ends=-1"], "run.replay_ends=-1 is invalid; valid: an int >= 0"),
        (
            [*RUN[:6], "tdmpc", "--set", "run.replay_sampling=episodes"],
            "run.replay_sampling='episodes' is invalid; valid choices: stream (the agent samples by priority)",
        ),
        ([*RUN, "--preset", "huge"], "unknown preset 'huge'; valid: smoke, small, paper"),
        ([*RUN, "--seeds", "0"], "--seeds 0"),
        ([*RUN, "--executor", "cloud"], "invalid choice: 'cloud'"),
        (["list", "tasks", "nosuch"], "unknown suite 'nosuch'"),
        (
            ["run", "--suite", "gym", "--agents", "dreamerpro"],
            "dreamerpro on gym/Pendulum-v1: observation keys ['state'] are invalid for dreamerpro",
        ),
        (
            ["run", "--suite", "atari100k", "--tasks", "pong", "--agents", "dreamerv3,tdmpc"],
            "tdmpc on atari100k/pong: discrete actions are invalid for tdmpc; valid: continuous",
        ),
        (
            [*RUN[:6], "tdmpc", "--set", "agent.obs_key=image"],
            "agent.obs_key='image' is invalid for this env",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, needle):
    results = tmp_path / "results"
    proc = bench(*args, "--results", str(results)) if args[0] == "run" else bench(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert not results.exists()


def test_results_directory_that_is_not_one(tmp_path):
    foreign = tmp_path / "mydata"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    before = _snapshot(foreign)
    proc = bench(*RUN, "--results", str(foreign))
    assert proc.returncode == 2
    assert "not a harmonybench results directory" in proc.stderr
    assert _snapshot(foreign) == before
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    proc = bench(*RUN, "--results", str(a_file))
    assert proc.returncode == 2 and "not a directory" in proc.stderr
    proc = bench("status", "--results", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "no such directory" in proc.stderr


def test_dry_run_prints_plan_and_writes_nothing(tmp_path):
    results = tmp_path / "results"
    proc = bench(
        *RUN,
        "--seeds",
        "2",
        "--sweep",
        "agent.balancer.weights.reward=1,10",
        "--dry-run",
        "--results",
        str(results),
    )
    assert proc.returncode == 0, proc.stderr
    assert "4 runs: 4 pending" in proc.stdout
    assert "gym/Pendulum-v1/dreamerv3-smoke-" in proc.stdout and "seed1" in proc.stdout
    assert not results.exists()


def test_list_commands():
    agents = bench("list", "agents")
    assert agents.returncode == 0
    for name in ("dreamerv2", "dreamerv3", "dreamerpro", "tdmpc", "harmonydream", "uw", "dwa", "nashmtl"):
        assert any(line.startswith(name + " ") for line in agents.stdout.splitlines())
    suites = bench("list", "suites")
    assert {line.split()[0] for line in suites.stdout.splitlines()} >= {
        "dmc",
        "dmcr",
        "metaworld",
        "atari100k",
        "rlbench",
        "gym",
    }
    tasks = bench("list", "tasks", "gym")
    assert "Pendulum-v1" in tasks.stdout


def test_agents_all_skips_incompatible_pairs_with_one_line_each(tmp_path):
    results = tmp_path / "results"
    proc = bench(
        "run",
        "--suite",
        "gym",
        "--agents",
        "all",
        "--preset",
        "smoke",
        "--dry-run",
        "--results",
        str(results),
    )
    assert proc.returncode == 0, proc.stderr
    skipped = proc.stderr.strip().splitlines()
    assert skipped == [
        "skipped dreamerpro on gym (Pendulum-v1, CartPole-v1): observation keys ['state'] are invalid for "
        "dreamerpro; valid: image (try env.obs=image)",
        "skipped tdmpc on gym (CartPole-v1): discrete actions are invalid for tdmpc; valid: continuous (Box) "
        "actions",
    ]
    assert "gym/Pendulum-v1/tdmpc-smoke/seed0" in proc.stdout
    assert "dreamerpro" not in proc.stdout and "CartPole-v1/tdmpc" not in proc.stdout
    assert "13 runs: 13 pending" in proc.stdout
    assert not results.exists()


def test_list_valued_overrides_plan_and_hash_by_value(tmp_path):
    def variant(*sets):
        args = [a for s in sets for a in ("--set", s)]
        proc = bench(
            *RUN[:6], "harmonydream", "--preset", "smoke", *args, "--dry-run", "--results", str(tmp_path)
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()[0]

    obs_reward = variant("agent.balancer.harmonize=[obs,reward]")
    assert obs_reward.startswith("gym/Pendulum-v1/harmonydream-smoke-")
    assert variant("agent.balancer.harmonize=[obs, reward]") == obs_reward
    assert variant("agent.balancer.harmonize=[obs,reward,dyn]") != obs_reward
    dmcr = [
        "run",
        "--suite",
        "dmcr",
        "--tasks",
        "cartpole_balance",
        "--agents",
        "dreamerv3",
        "--preset",
        "smoke",
    ]
    proc = bench(*dmcr, "--sweep", "env.vary=[bg],[bg,floor]", "--dry-run", "--results", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "2 runs: 2 pending" in proc.stdout


def test_print_config_is_the_resolved_config_as_yaml(tmp_path):
    results = tmp_path / "results"
    proc = bench(
        *RUN,
        "--seeds",
        "2",
        "--set",
        "agent.balancer.harmonize=[obs]",
        "--print-config",
        "--results",
        str(results),
    )
    assert proc.returncode == 0, proc.stderr
    documents = list(yaml.safe_load_all(proc.stdout))
    assert len(documents) == 2 and documents[0] == documents[1]
    config = documents[0]
    assert set(config) == {"env", "agent", "run", "log"}
    assert config["agent"]["balancer"]["harmonize"] == ["obs"]
    assert config["run"]["steps"] == 600 and config["env"]["obs"] == "state"
    assert proc.stdout.count("--- # gym/Pendulum-v1/dreamerv3-smoke-") == 2
    assert not results.exists()


def test_published_takes_several_files_after_one_flag_or_the_flag_repeated():
    args = build_parser().parse_args(
        ["report", "--published", "a.json", "b.json", "--published", "c", "--out", "x"]
    )
    assert args.published == ["a.json", "b.json", "c"]


def _total_job_hours(stdout: str) -> float:
    (line,) = [line for line in stdout.splitlines() if line.strip().startswith("total:")]
    return float(line.split("total:")[1].split("job-hours")[0])


def test_plan_estimates_from_the_shipped_update_times(tmp_path):
    import agents
    from bench import speed

    shipped = speed.shipped()
    for record in shipped.values():  # measured at the paper preset, keyed <backbone>+<balancer>
        assert record["hardware"] and record["preset"] == "paper"
        assert {f"{backbone}+fixed" for backbone in agents.BACKBONES} <= record["ms_per_update"].keys()
        for pair, ms in record["ms_per_update"].items():
            assert ms > 0 and agents.resolve(pair).pair == pair
    # harmonydream on atari100k is dreamerv3+harmony, which has no row of its own: dreamerv3's time stands in
    proc = bench("plan", "--suite", "atari100k", "--tasks", "pong", "--agents", "dreamerv3,harmonydream",
                 "--results", str(tmp_path / "r"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"cpu measurement shipped with harmonybench ({shipped['cpu']['hardware']}" in proc.stdout
    assert "dreamerv3+harmony was not measured: harmonydream uses dreamerv3+fixed's time" in proc.stdout
    assert "unknown" not in proc.stdout and _total_job_hours(proc.stdout) > 0
    assert not (tmp_path / "r").exists()


def test_plan_measure_times_updates_here(tmp_path):
    proc = bench("plan", *RUN[1:], "--measure", "--results", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("measured dreamerv3:")]
    assert float(line.split()[2]) > 0
    assert _total_job_hours(proc.stdout) > 0
