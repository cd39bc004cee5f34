"""Every `bench ...` line of README.md's code blocks runs: exit status 0 and no traceback.

How a README line becomes a command; this docstring and PLACEHOLDERS are the whole mapping, and a line it
cannot make runnable fails the test naming the line (it is never skipped):

- ``a | b | c`` lists alternatives of the last word before the first ``|``; each one is run
  (``bench list agents | suites`` -> ``bench list agents`` and ``bench list suites``).
- ``[--flag VALUE]`` optional parts are included without the brackets; ``key=[x,y]`` list values stay.
- ``...`` stands for the quick-start job's arguments (QUICK_START).
- An upper-case word is a placeholder, replaced from PLACEHOLDERS; ``RUN_DIR`` is a real trained run (a
  shortened quick-start job, made only when a README line needs it).
- ``bench run`` and ``bench sweep`` get ``--dry-run`` (the quick-start job itself is what ``make demo`` runs);
  ``bench report`` gets ``--reps 200`` (the default 50,000 bootstrap resamples only cost time).
- Commands run in a scratch directory whose ``results/`` is a small results directory in the results
  contract (tests/analysis_data.py: atari100k pong/breakout, dreamerv3 and harmonydream, 2 seeds), whose
  ``slurm/`` is the repository's, and whose ``../scores/`` holds score files in HarmonyDream's per-method
  format; a shell glob is expanded there as the shell would.
- A ``--published`` value that is a catalogue name (no path) becomes a score file of that name written
  here: downloading the catalogue is the business of its own tests, not of the README's.

Commands run in-process through ``bench.cli.main`` (fast; an exception fails the test with its traceback).
"""

from __future__ import annotations

import glob
import gzip
import json
import re
import shlex
from pathlib import Path

import pytest
from analysis_data import make_results
from conftest import REPO, bench

from bench import store
from bench.cli import main

README = REPO / "README.md"
QUICK_START = "--suite dmc --tasks cartpole_balance --agents dreamerv3 --preset smoke"
PLACEHOLDERS = {
    "SUITE": "gym",  # bench list tasks SUITE
    "S": "atari100k",  # the small results directory's suite, task and a variant
    "T": "pong",
    "VARIANT": "dreamerv3",
    "DIR": "results",
    "NAME": "harmonydream-atari100k-harmony_dreamerv3",  # a published-score catalogue name
    "RUN_DIR": None,  # a real trained run, see trained_run
}
PUBLISHED_METHODS = ("dreamerv3", "harmony_dreamerv3")
GAMES = ("pong", "breakout")


def readme_commands() -> list[str]:
    """The `bench` lines of README.md's fenced code blocks, comments stripped, alternatives expanded."""
    commands, in_block = [], False
    for line in README.read_text().splitlines():
        if line.lstrip().startswith("```"):
            in_block = not in_block
        elif in_block and line.lstrip().startswith("bench "):
            text = " ".join(shlex.split(line, comments=True))
            if " | " in text:
                first, *others = text.split(" | ")
                prefix = first.rsplit(" ", 1)[0]
                commands += [first] + [f"{prefix} {alternative}" for alternative in others]
            else:
                commands.append(text)
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_bench_commands_to_check():
    assert len(COMMANDS) >= 15, COMMANDS
    assert any(c.startswith("bench report") for c in COMMANDS) and any(
        c.startswith("bench plan") for c in COMMANDS
    )


def _score_file_a(path: Path) -> Path:
    """HarmonyDream's format: {"steps": [...], "score": {game: [[score per step] per seed]}}."""
    steps = [100_000, 200_000, 300_000, 400_000]
    score = {game: [[10.0 * (i + seed) for i in range(len(steps))] for seed in range(2)] for game in GAMES}
    path.write_text(json.dumps({"steps": steps, "score": score}))
    return path


def _score_file_b(path: Path, suite: str) -> Path:
    """danijar/dreamerv3's format: a gzip JSON list of {"task", "method", "seed", "xs", "ys"}."""
    runs = [
        {
            "task": f"{suite.split('_')[0]}_{game}",  # as in danijar's files: atari100k_pong, dmc_walker_walk
            "method": "published",
            "seed": seed,
            "xs": [1e5, 2e5],
            "ys": [1.0, 2.0 + seed],
        }
        for game in GAMES
        for seed in range(2)
    ]
    path.write_bytes(gzip.compress(json.dumps(runs).encode()))
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("readme")
    work = root / "work"
    results = work / "results"
    store.init_results_root(results)
    make_results(results, suite="atari100k", tasks=GAMES, agents=("dreamerv3", "harmonydream"), seeds=2)
    (work / "slurm").symlink_to(REPO / "slurm")
    (root / "scores").mkdir()
    for method in PUBLISHED_METHODS:
        _score_file_a(root / "scores" / f"harmonydream-atari100k-{method}.json")
    return work


@pytest.fixture(scope="module")
def trained_run(workdir) -> str:
    """RUN_DIR: the quick-start job, shortened, trained for real (only when a README line names RUN_DIR)."""
    proc = bench("run", *QUICK_START.split(), "--set", "run.steps=200", "--set", "run.eval_every=100",
                 "--results", "trained", cwd=workdir)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = glob.glob("trained/dmc/cartpole_balance/*/seed0", root_dir=workdir)
    return run_dir


def to_argv(command: str, workdir: Path, request: pytest.FixtureRequest) -> list[str]:
    """A README line -> argv for bench.cli.main, following the module docstring's rules."""
    words = command.split()[1:]
    argv: list[str] = []
    for word in words:
        if "=[" not in word:  # an optional part, not a list value
            word = word.removeprefix("[").removesuffix("]")
        if word == "...":
            argv += QUICK_START.split()
        elif word in PLACEHOLDERS:
            argv.append(request.getfixturevalue("trained_run") if word == "RUN_DIR" else PLACEHOLDERS[word])
        elif re.fullmatch(r"[A-Z][A-Z0-9_]*", word):
            pytest.fail(f"README line `{command}`: placeholder {word} has no mapping in PLACEHOLDERS")
        elif any(ch in word for ch in "*?"):
            matches = sorted(glob.glob(word, root_dir=workdir))
            if not matches:
                pytest.fail(
                    f"README line `{command}`: {word} matches no file in the test's scratch directory"
                )
            argv += matches
        else:
            argv.append(word)
    if argv[0] in ("run", "sweep") and "--dry-run" not in argv:
        argv.append("--dry-run")
    if argv[0] == "report" and "--reps" not in argv:
        argv += ["--reps", "200"]
    return _published_files(argv, workdir)


def _published_files(argv: list[str], workdir: Path) -> list[str]:
    """Catalogue names after --published -> score files of that name written in the scratch directory."""
    out, after_flag = [], False
    for word in argv:
        if word == "--published":
            after_flag = True
        elif word.startswith("-"):
            after_flag = False
        elif after_flag and "/" not in word and not (workdir / word).exists():
            suite = next(
                (s for s in ("atari100k", "dmc_vision", "dmc_proprio", "atari57") if s in word), None
            )
            if suite is None:
                pytest.fail(f"--published {word}: not a file, and its suite is not one the test can write")
            name = workdir / "published" / word
            name.parent.mkdir(exist_ok=True)
            if "harmonydream" in word:
                word = str(_score_file_a(name.with_suffix(".json")))
            else:
                word = str(_score_file_b(name.with_suffix(".json.gz"), suite))
        out.append(word)
    return out


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command, workdir, request, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    argv = to_argv(command, workdir, request)
    try:
        status = main(argv)
    except SystemExit as exit:
        status = exit.code
    output = capsys.readouterr()
    assert status in (0, None), f"`bench {' '.join(argv)}` exited {status}:\n{output.err[-2000:]}"
    assert "Traceback" not in output.out + output.err
