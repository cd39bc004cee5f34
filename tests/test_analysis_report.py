"""`bench report` core: figures, report.md/html, the paper's Atari100K numbers, and bad input."""

import re

import pytest
from analysis_data import PUBLISHED, make_results, write_run

from analysis.report import build_report

FIGURES = ["aggregates", "sample_efficiency", "profiles", "improvement", "learning_curves", "loss_scales"]


def test_report_has_every_figure_and_survives_a_corrupt_run(tmp_path, capsys):
    results = make_results(tmp_path / "results", tasks=("cheetah_run", "walker_run"), seeds=3)
    broken = write_run(results, "dmc", "walker_run", "dreamerv3", 9)
    (broken / "eval.parquet").write_bytes(b"\x00broken")
    page = build_report(str(results), [], None, str(tmp_path / "out"), reps=300)

    assert "dmc/walker_run/dreamerv3/seed9" in capsys.readouterr().err
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (tmp_path / "out" / "figures" / f"dmc_{name}.{ext}").stat().st_size > 1000
    text = page.read_text()
    assert text.count("data:image/png;base64,") == len(FIGURES)
    assert "seed9" in text and "<table>" in text
    md = (tmp_path / "out" / "report.md").read_text()
    assert "dmc/walker_run/dreamerv3/seed9: corrupt" in md
    # harmonydream was written with twice the skill: its IQM row must be the higher one
    iqm = dict(re.findall(r"\| (\w+) \| iqm \| ([\d.]+) \[", md))
    assert float(iqm["harmonydream"]) > float(iqm["dreamerv3"])


def test_agents_filter_keeps_only_the_named_agents(tmp_path):
    results = make_results(tmp_path / "results", tasks=("cheetah_run",), seeds=2)
    build_report(str(results), [], ["harmonydream"], str(tmp_path / "out"), reps=100)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| harmonydream | iqm" in md and "| dreamerv3 |" not in md


def test_report_reproduces_the_papers_atari100k_numbers(tmp_path):
    files = [PUBLISHED / f"harmonydream-atari100k-{m}.json" for m in ("harmony_dreamerv3", "dreamerv3")]
    if not all(f.exists() for f in files):
        pytest.skip(f"{PUBLISHED} is absent (shared data exists for developers and CI only)")
    build_report(None, [str(f) for f in files], None, str(tmp_path / "out"), reps=200)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| harmony_dreamerv3 (harmonydream) | mean | 1.364 [" in md
    assert "| harmony_dreamerv3 (harmonydream) | median | 0.671 [" in md
    assert "| dreamerv3 (harmonydream) | mean | 1.074 [" in md
    assert "| dreamerv3 (harmonydream) | median | 0.416 [" in md
    assert "IQM at step 400000" in md
    assert (tmp_path / "out" / "figures" / "atari100k_sample_efficiency.pdf").exists()


@pytest.mark.parametrize(
    "case", ["missing", "empty", "wrong_format", "empty_published_dir", "unknown_agent", "nothing"]
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
    elif case == "unknown_agent":
        make_results(tmp_path / "results", tasks=("cheetah_run",), seeds=1)
        agents = ["dreamerv9"]
    elif case == "nothing":
        results = None
    with pytest.raises(ValueError) as err:
        build_report(results, published, agents, str(tmp_path / "out"), reps=10)
    message = str(err.value)
    assert "\n" not in message
    expected = {
        "missing": "not found",
        "empty": "no runs",
        "wrong_format": "not a published score file",
        "empty_published_dir": "no published score files",
        "unknown_agent": "unknown agent 'dreamerv9'; available: dreamerv3, harmonydream",
        "nothing": "nothing to report",
    }[case]
    assert expected in message


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
