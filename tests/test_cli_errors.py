"""Bad input: one line naming the bad value and the valid choices, exit code 2, nothing written."""

import pytest
from conftest import bench

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
        ([*RUN, "--preset", "huge"], "unknown preset 'huge'; valid: smoke, small, paper"),
        ([*RUN, "--seeds", "0"], "--seeds 0"),
        ([*RUN, "--executor", "cloud"], "invalid choice: 'cloud'"),
        (["list", "tasks", "nosuch"], "unknown suite 'nosuch'"),
        (
            ["run", "--suite", "gym", "--agents", "all"],
            "observation keys ['state'] are invalid for dreamerpro",
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
