"""Loading results directories and published score files, and normalisation against fixed references."""

import gzip
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from analysis_data import PUBLISHED, make_results, write_run

from analysis import load, load_published, load_train
from analysis.load import AnalysisWarning
from analysis.normalise import add_scores
from analysis.scores import curve_scores, final_scores


def test_load_gives_tidy_per_evaluation_means(tmp_path):
    make_results(tmp_path, agents=("dreamerv3",), seeds=2)
    frame = load(tmp_path)
    for column in [
        "suite",
        "task",
        "agent",
        "variant",
        "seed",
        "run_id",
        "step",
        "agent_step",
        "metric",
        "value",
    ]:
        assert column in frame.columns
    assert set(frame["metric"]) == {"return", "length"}  # dmc has no success: all-NaN column dropped
    run = tmp_path / "dmc" / "cheetah_run" / "dreamerv3" / "seed1"
    episodes = pd.read_parquet(run / "eval.parquet")
    expected = episodes.groupby("step")["return"].mean()
    got = frame[(frame["run_id"] == "dmc/cheetah_run/dreamerv3/seed1") & (frame["metric"] == "return")]
    np.testing.assert_allclose(got.set_index("step")["value"].sort_index(), expected.sort_index())
    assert (got["agent_step"] == got["step"] // 2).all()
    assert "agent.model_lr" not in frame.columns  # identical across runs: no config column


def test_swept_override_becomes_a_column_and_seeds_do_not(tmp_path):
    for seed in range(2):
        write_run(tmp_path, "dmc", "walker_run", "harmonydream", seed, lr=1e-4)
        write_run(
            tmp_path,
            "dmc",
            "walker_run",
            "harmonydream",
            seed,
            lr=3e-4,
            variant="harmonydream-smoke-1a2b3c4d",
        )
    frame = load(tmp_path)
    assert "agent.model_lr" in frame.columns
    assert "run.seed" not in frame.columns
    by_variant = frame.groupby("variant")["agent.model_lr"].unique()
    assert list(by_variant["harmonydream-smoke-1a2b3c4d"]) == [3e-4]


def test_unfinished_failed_and_corrupt_runs_are_named_and_left_out(tmp_path):
    make_results(tmp_path, agents=("dreamerv3",), tasks=("cheetah_run",), seeds=2)
    write_run(tmp_path, "dmc", "cheetah_run", "dreamerv3", 5, state="running", evals=2)
    write_run(tmp_path, "dmc", "cheetah_run", "dreamerv3", 6, state="failed", evals=3)
    broken = write_run(tmp_path, "dmc", "cheetah_run", "dreamerv3", 7)
    (broken / "eval.parquet").write_bytes(b"not parquet")
    (tmp_path / "dmc" / "cheetah_run" / "dreamerv3" / "seed8").mkdir()
    (tmp_path / "dmc" / "cheetah_run" / "dreamerv3" / "seed8" / "spec.json").write_text("{")
    with pytest.warns(AnalysisWarning) as caught:
        frame = load(tmp_path)
    message = str(caught[0].message)
    for seed in (5, 6, 7, 8):
        assert f"dmc/cheetah_run/dreamerv3/seed{seed}" in message
    assert sorted(frame["seed"].unique()) == [0, 1]
    assert frame.attrs["left_out"]["dmc/cheetah_run/dreamerv3/seed7"].startswith("corrupt")

    with pytest.warns(AnalysisWarning):
        partial = load(tmp_path, partial=True)
    assert sorted(partial["seed"].unique()) == [0, 1, 5, 6]
    assert partial.loc[partial["seed"] == 5, "step"].max() == 2000  # up to its last evaluation


@pytest.mark.parametrize("setup", ["missing", "empty", "file", "only_corrupt"])
def test_bad_results_directories_raise_one_line(tmp_path, setup):
    target = tmp_path / "results"
    if setup == "empty":
        target.mkdir()
    elif setup == "file":
        target.write_text("x")
    elif setup == "only_corrupt":
        (target / "dmc" / "t" / "a" / "seed0").mkdir(parents=True)
        (target / "dmc" / "t" / "a" / "seed0" / "spec.json").write_text("[")
    with warnings.catch_warnings(), pytest.raises(ValueError) as err:
        warnings.simplefilter("ignore", AnalysisWarning)
        load(target)
    assert "\n" not in str(err.value) and str(target) in str(err.value)


def test_load_train_gives_loss_and_weight_columns(tmp_path):
    make_results(tmp_path, agents=("harmonydream",), tasks=("cheetah_run",), seeds=1)
    train = load_train(tmp_path)
    assert set(train["metric"]) == {"loss/obs", "loss/reward", "weight/obs", "weight/reward"}
    obs = train[train["metric"] == "loss/obs"].sort_values("step")["value"].to_numpy()
    np.testing.assert_allclose(obs, 3000.0 / np.arange(1, 6))


def _published(name):
    path = PUBLISHED / name
    if not path.exists():
        pytest.skip(f"{path} is absent (shared data exists for developers and CI only)")
    return path


def test_format_a_import_reproduces_the_papers_atari100k_numbers():
    """HarmonyDream's score files, last point (400K frames), 5 seeds: the paper's Atari100K numbers."""
    frames = [
        load_published(_published(f"harmonydream-atari100k-{m}.json"))
        for m in ("harmony_dreamerv3", "dreamerv3")
    ]
    scored = add_scores(pd.concat(frames, ignore_index=True))
    final = final_scores(scored)
    harmony, baseline = final["harmony_dreamerv3 (harmonydream)"], final["dreamerv3 (harmonydream)"]
    from analysis import stats

    assert round(100 * stats.aggregate(harmony, "mean", reps=10)[0][0], 1) == 136.4
    assert round(100 * stats.aggregate(harmony, "median", reps=10)[0][0], 1) == 67.1
    assert round(100 * stats.aggregate(baseline, "mean", reps=10)[0][0], 1) == 107.4
    assert round(100 * stats.aggregate(baseline, "median", reps=10)[0][0], 1) == 41.6
    assert harmony.runs_per_task.tolist() == [5] * 26
    per_task = stats.per_task_table(final, reps=10).pivot(index="task", columns="label", values="estimate")
    assert (per_task["harmony_dreamerv3 (harmonydream)"] > per_task["dreamerv3 (harmonydream)"]).sum() == 19
    curves = curve_scores(scored)
    ((steps, sample),) = curves["harmony_dreamerv3 (harmonydream)"]
    assert steps[0] == 20_000 and steps[-1] == 400_000 and sample.num_steps == 20


def test_format_b_import_names_games_like_the_reference_table_and_says_what_it_did():
    frame = load_published(_published("danijar-atari100k-dreamerv3.json.gz"))
    assert "james_bond" in set(frame["task"]) and frame["suite"].iloc[0] == "atari100k"
    assert any("binned onto 20 bins" in note for note in frame.attrs["notes"])
    assert frame["step"].max() == 400_000


def test_format_b_binning_and_ragged_run_counts_on_a_small_file(tmp_path):
    records = [
        {
            "task": "dmc_walker_walk",
            "method": "m",
            "seed": 0,
            "xs": [10, 40, 60, 95],
            "ys": [1.0, 3.0, 5.0, 7.0],
        },
        {"task": "dmc_walker_walk", "method": "m", "seed": 1, "xs": [20, 30], "ys": [2.0, 4.0]},
        {"task": "dmc_cheetah_run", "method": "m", "seed": 0, "xs": [5, 100], "ys": [0.0, 8.0]},
    ]
    path = tmp_path / "lab-dmc-m.json.gz"
    path.write_bytes(gzip.compress(json.dumps(records).encode()))
    frame = load_published(path, bins=4)  # grid 25, 50, 75, 100
    walk0 = frame[(frame["task"] == "walker_walk") & (frame["seed"] == 0)].set_index("step")["value"]
    assert walk0.to_dict() == {25: 1.0, 50: 3.0, 75: 5.0, 100: 7.0}
    walk1 = frame[(frame["task"] == "walker_walk") & (frame["seed"] == 1)].set_index("step")["value"]
    assert walk1.to_dict() == {25: 2.0, 50: 4.0}  # no bins past its last x
    cheetah = frame[frame["task"] == "cheetah_run"].set_index("step")["value"]
    assert cheetah.to_dict() == {25: 0.0, 50: pytest.approx(8 / 3), 75: pytest.approx(16 / 3), 100: 8.0}
    notes = " ".join(frame.attrs["notes"])
    assert (
        "1-2 runs per task (differ by task)" in notes
        and "2 empty bin(s) filled by linear interpolation" in notes
    )
    assert (frame["agent_step"] == frame["step"] // 2).all()


@pytest.mark.parametrize("content", [b"{}", b"[1, 2]", b"not json", gzip.compress(b'{"steps": [1]}')])
def test_wrong_published_format_raises_one_line(tmp_path, content):
    path = tmp_path / "scores.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a published score file") as err:
        load_published(path)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="not found"):
        load_published(tmp_path / "absent.json")


def test_normalisation_uses_fixed_references_only(tmp_path):
    make_results(tmp_path, suite="dmc", agents=("dreamerv3",), tasks=("cheetah_run",), seeds=2)
    make_results(tmp_path, suite="metaworld", agents=("dreamerv3",), tasks=("hammer",), seeds=2)
    alone = add_scores(load(tmp_path))
    dmc_return = alone[(alone["suite"] == "dmc") & (alone["metric"] == "return")]["value"].to_numpy()
    dmc_score = alone[(alone["suite"] == "dmc") & (alone["metric"] == "score")]["value"].to_numpy()
    np.testing.assert_allclose(dmc_score, dmc_return / 1000)
    meta = alone[alone["suite"] == "metaworld"]
    np.testing.assert_array_equal(
        meta[meta["metric"] == "score"]["value"], meta[meta["metric"] == "success"]["value"]
    )

    # Adding a much better agent must not change the first agent's numbers
    make_results(tmp_path, suite="dmc", agents=("x", "y", "z"), tasks=("cheetah_run",), seeds=2)
    more = add_scores(load(tmp_path))
    again = more[(more["agent"] == "dreamerv3") & (more["metric"] == "score")]
    first = alone[alone["metric"] == "score"]
    key = ["run_id", "step"]
    pd.testing.assert_series_equal(
        first.sort_values(key)["value"].reset_index(drop=True),
        again.sort_values(key)["value"].reset_index(drop=True),
    )

    reference = {"dmc": {"cheetah_run": (0.0, 200.0)}}
    scaled = add_scores(load(tmp_path), reference)
    assert scaled.attrs["normalisation"]["dmc"].startswith("min-max")
    with pytest.raises(ValueError, match="lack task"):
        add_scores(load(tmp_path), {"dmc": {"walker_run": (0.0, 1.0)}})


def test_atari_scores_are_human_normalised(tmp_path):
    from suites.reference_scores import hns

    write_run(tmp_path, "atari100k", "pong", "dreamerv3", 0, action_repeat=4)
    frame = add_scores(load(tmp_path))
    returns = frame[frame["metric"] == "return"].sort_values("step")["value"]
    scores = frame[frame["metric"] == "score"].sort_values("step")["value"]
    np.testing.assert_allclose(scores, [hns("pong", r) for r in returns])


def test_analysis_imports_no_torch_and_no_simulator():
    import subprocess
    import sys

    code = (
        "import sys, analysis, analysis.report, analysis.stats, analysis.plots\n"
        "heavy = [m for m in ('torch', 'mujoco', 'ale_py', 'dm_control', 'metaworld', 'gymnasium') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
