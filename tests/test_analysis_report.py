"""`bench report` core: figures, report.md/html, the paper's Atari100K numbers, and bad or damaged input."""

import base64
import gzip
import json
import zlib
from pathlib import Path

import pytest
from analysis_data import PUBLISHED, make_results, write_run

from analysis.report import build_report
from bench.cli import main

FIGURES = ["aggregates", "sample_efficiency", "profiles", "improvement", "learning_curves", "loss_scales"]


def _md_tables(md: str) -> list[list[dict[str, str]]]:
    """Every pipe table of report.md as a list of {header: cell} rows."""
    tables, lines = [], md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---") and i > 0:
            head = [c.strip() for c in lines[i - 1].strip("|").split("|")]
            rows = []
            for row in lines[i + 1 :]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(head, [c.strip() for c in row.strip("|").split("|")])))
            tables.append(rows)
    return tables


def _summary(md: str, suite_index: int = 0) -> dict[str, dict[str, str]]:
    """The summary table (the one with a rank column) of the suite_index-th suite: {agent: row}."""
    summaries = [t for t in _md_tables(md) if t and "rank" in t[0]]
    return {row["agent"]: row for row in summaries[suite_index]}


TINY_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.fixture(scope="module")
def small_report(tmp_path_factory) -> Path:
    """One report, built once for several tests: 2 DMC tasks x 3 seeds x 2 agents, a run with a damaged
    eval.parquet left out by skip_damaged, and an extra image for (dmc, walker_run, harmonydream)."""
    root = tmp_path_factory.mktemp("small_report")
    results = make_results(root / "results", tasks=("cheetah_run", "walker_run"), seeds=3)
    broken = write_run(results, "dmc", "walker_run", "dreamerv3", 9)
    (broken / "eval.parquet").write_bytes(b"\x00broken")
    (root / "strip.png").write_bytes(base64.b64decode(TINY_PNG))
    images = {("dmc", "walker_run", "harmonydream"): root / "strip.png"}
    build_report(str(results), [], None, str(root / "out"), reps=300, skip_damaged=True, task_images=images)
    return root


def test_report_has_every_figure_and_can_skip_a_damaged_run(small_report):
    out = small_report / "out"
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (out / "figures" / f"dmc_{name}.{ext}").stat().st_size > 1000
    for task in ("cheetah_run", "walker_run"):
        assert (out / "figures" / "tasks" / f"dmc_{task}.png").stat().st_size > 1000
    text = (out / "report.html").read_text()
    assert text.count("data:image/png;base64,") == len(FIGURES) + 3  # a learning curve per task, the strip
    assert text.count("<details class='task'>") == 2
    assert "seed9" in text and "<table class='summary'>" in text
    md = (out / "report.md").read_text()
    assert "dmc/walker_run/dreamerv3/seed9: corrupt" in md
    # harmonydream was written with twice the skill: it must rank first, ahead by IQM, in percent
    summary = _summary(md)
    assert summary["harmonydream"]["rank"] == "1" and summary["dreamerv3"]["rank"] == "2"
    iqm = {agent: float(row["IQM"].split("%")[0]) for agent, row in summary.items()}
    assert iqm["harmonydream"] > iqm["dreamerv3"]
    assert summary["dreamerv3"]["P(agent > dreamerv3)"] == "baseline"  # the lowest IQM by default
    assert float(summary["harmonydream"]["P(agent > dreamerv3)"].split(" [")[0]) > 0.5


def test_the_final_iqm_is_one_number_in_every_table(small_report):
    md = (small_report / "out" / "report.md").read_text()
    milestones = next(t for t in _md_tables(md) if t and any(k.startswith("IQM at") for k in t[0]))
    last = [k for k in milestones[0] if k.startswith("IQM at")][-1]
    assert last == "IQM at 5,000 frames"
    for row in milestones:
        assert row[last] == _summary(md)[row["agent"]]["IQM"]


def test_task_images_hook_puts_each_image_in_its_tasks_section(small_report):
    text = (small_report / "out" / "report.html").read_text()
    walker = text[text.index("<b>walker_run</b>") :]
    walker = walker[: walker.index("</details>")]
    assert TINY_PNG in walker and "harmonydream: strip.png" in walker
    assert "](../strip.png)" in (small_report / "out" / "report.md").read_text()
    results, out = str(small_report / "results"), small_report / "out2"
    with pytest.raises(ValueError, match="task image not found"):
        images = {("dmc", "walker_run", "x"): out / "absent.png"}
        build_report(results, [], None, str(out), skip_damaged=True, task_images=images)
    assert not out.exists()


def test_agents_filter_and_a_named_baseline(tmp_path):
    agents = ("dreamerv3", "harmonydream", "tdmpc")  # skills 1, 2, 3
    results = make_results(tmp_path / "results", tasks=("cheetah_run",), seeds=2, agents=agents)
    build_report(
        str(results), [], ["harmonydream", "tdmpc"], str(tmp_path / "out"), reps=100, baseline="harmonydream"
    )
    md = (tmp_path / "out" / "report.md").read_text()
    summary = _summary(md)
    assert list(summary) == ["tdmpc", "harmonydream"] and "dreamerv3" not in md
    assert summary["harmonydream"]["P(agent > harmonydream)"] == "baseline"
    assert float(summary["tdmpc"]["P(agent > harmonydream)"].split(" [")[0]) > 0.5


def test_report_reproduces_the_papers_atari100k_numbers_in_percent(tmp_path):
    files = [PUBLISHED / f"harmonydream-atari100k-{m}.json" for m in ("harmony_dreamerv3", "dreamerv3")]
    if not all(f.exists() for f in files):
        pytest.skip(f"{PUBLISHED} is absent (shared data exists for developers and CI only)")
    build_report(None, [str(f) for f in files], None, str(tmp_path / "out"), reps=200)
    md = (tmp_path / "out" / "report.md").read_text()
    summary = _summary(md)
    assert summary["harmony_dreamerv3 (harmonydream)"]["mean"].startswith("136.4% [")
    assert summary["harmony_dreamerv3 (harmonydream)"]["median"].startswith("67.1% [")
    assert summary["dreamerv3 (harmonydream)"]["mean"].startswith("107.4% [")
    assert summary["dreamerv3 (harmonydream)"]["median"].startswith("41.6% [")
    assert list(summary) == ["harmony_dreamerv3 (harmonydream)", "dreamerv3 (harmonydream)"]  # ranked by IQM
    assert "IQM at 400,000 frames" in md
    assert (tmp_path / "out" / "figures" / "atari100k_sample_efficiency.pdf").exists()


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "wrong_format",
        "empty_published_dir",
        "unknown_agent",
        "unknown_baseline",
        "nothing",
    ],
)
def test_bad_input_is_one_line_value_error(tmp_path, case):
    results, published, agents = str(tmp_path / "results"), [], None
    if case == "empty":
        (tmp_path / "results").mkdir()
    elif case == "wrong_format":
        make_results(tmp_path / "results", tasks=("cheetah_run",), seeds=1)
        (tmp_path / "scores.json").write_text('{"not": "scores"}')
        published = [str(tmp_path / "scores.json")]
    elif case == "empty_published_dir":
        make_results(tmp_path / "results", tasks=("cheetah_run",), seeds=1)
        (tmp_path / "published").mkdir()
        published = [str(tmp_path / "published")]
    elif case in ("unknown_agent", "unknown_baseline"):
        make_results(tmp_path / "results", tasks=("cheetah_run",), seeds=1)
        agents = ["dreamerv9"] if case == "unknown_agent" else None
    elif case == "nothing":
        results = None
    baseline = "dreamerv9" if case == "unknown_baseline" else None
    with pytest.raises(ValueError) as err:
        build_report(results, published, agents, str(tmp_path / "out"), reps=10, baseline=baseline)
    message = str(err.value)
    assert "\n" not in message
    expected = {
        "missing": "not found",
        "empty": "no runs",
        "wrong_format": "not a published score file",
        "empty_published_dir": "no published score files",
        "unknown_agent": "unknown agent 'dreamerv9'; available: dreamerv3, harmonydream",
        "unknown_baseline": "unknown baseline agent 'dreamerv9'; available: dreamerv3, harmonydream",
        "nothing": "nothing to report",
    }[case]
    assert expected in message
    assert not (tmp_path / "out").exists()


def _zlib_damaged_gzip(data: bytes) -> bytes:
    """``data`` gzipped with one byte changed so that inflating it raises zlib.error (not a CRC error)."""
    packed = gzip.compress(data, mtime=0)
    for i in range(10, len(packed) - 8):  # inside the deflate stream
        damaged = bytearray(packed)
        damaged[i] ^= 0xFF
        try:
            gzip.decompress(bytes(damaged))
        except zlib.error:
            return bytes(damaged)
        except Exception:
            continue
    raise AssertionError("no single byte change gives zlib.error")


@pytest.mark.parametrize("damage", ["published_gzip", "eval_parquet", "train_parquet", "spec_json"])
def test_a_damaged_input_file_is_one_line_naming_it_and_exit_2(tmp_path, capsys, damage):
    """`bench report` on any damaged input: one line naming the file, exit 2, no traceback, nothing written."""
    results = make_results(tmp_path / "results", tasks=("cheetah_run",), seeds=2)
    run = results / "dmc" / "cheetah_run" / "harmonydream" / "seed1"
    argv = ["report", str(results), "--out", str(tmp_path / "out"), "--reps", "20"]
    if damage == "published_gzip":
        runs = [{"task": "dmc_cheetah_run", "method": "m", "seed": 0, "xs": [1000, 2000], "ys": [1.0, 2.0]}]
        bad = tmp_path / "origin-dmc-m.json.gz"
        bad.write_bytes(_zlib_damaged_gzip(json.dumps(runs * 50).encode()))
        argv += ["--published", str(bad)]
    else:
        bad = (
            run
            / {"eval_parquet": "eval.parquet", "train_parquet": "train.parquet", "spec_json": "spec.json"}[
                damage
            ]
        )
        data = bad.read_bytes()
        # JSON: a damaged block in the middle; parquet: cut short, as an interrupted copy leaves it (a
        # damaged data page can read back silently as wrong numbers: parquet pages carry no checksum here)
        damaged = data[: len(data) // 2] + (
            b"\xff" * 8 + data[len(data) // 2 + 8 :] if damage == "spec_json" else b""
        )
        bad.write_bytes(damaged)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("bench: error:") and str(bad) in lines[-1], err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    if damage == "train_parquet":  # --skip-damaged keeps the run's scores, leaves its losses out, says so
        assert main([*argv, "--skip-damaged"]) == 0
        md = (tmp_path / "out" / "report.md").read_text()
        assert f"{bad}: damaged" in md and _summary(md)["harmonydream"]["runs"] == "2"


def test_report_on_raw_negative_returns_and_disjoint_tasks(tmp_path):
    """A suite without a fixed reference (raw return, here all negative) and agents sharing no task."""
    results = tmp_path / "results"
    for seed in range(2):
        write_run(results, "gym", "Pendulum-v1", "dreamerv3", seed, skill=-3.0)
        write_run(results, "gym", "CartPole-v1", "tdmpc", seed, skill=-1.0)
    build_report(str(results), [], None, str(tmp_path / "out"), reps=100)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "gym: raw return" in md and "share no task" in md
    assert "Probability of improvement" not in md
    assert (tmp_path / "out" / "figures" / "gym_profiles.png").exists()


def test_loss_scale_panels_show_the_balancer_groups_and_their_weighted_losses(tmp_path):
    import pandas as pd

    from analysis import load_train, plots

    run = write_run(tmp_path, "dmc", "cheetah_run", "harmonydream", 0)
    train = pd.read_parquet(run / "train.parquet")
    train["loss/actor"] = -1.0  # not a balancer group: must not be drawn
    train.to_parquet(run / "train.parquet", index=False)
    figure = plots.loss_scales(load_train(tmp_path))
    loss_ax, weight_ax, weighted_ax = figure.axes[:3]
    assert sorted(loss_ax.get_legend_handles_labels()[1]) == ["obs", "reward"]
    obs = [line for line in weighted_ax.get_lines() if line.get_label() == "obs"][0]
    assert obs.get_ydata() == pytest.approx([1.0] * 5)  # weight/obs = 1 / loss/obs in the test data
