"""`bench imagine` and `bench render --run`: real smoke runs of DreamerV3 and TD-MPC on DMC cartpole, loaded
from their checkpoints, playing real episodes; the open loop checked on the agents' own weights."""

import imageio.v2 as imageio
import numpy as np
import pytest
from conftest import bench

from agents.openloop import open_loop
from bench import cli, imagine

# 80 agent steps: past both agents' prefill (64 and 50 steps), so both have trained a few updates.
SMOKE = ["--preset", "smoke", "--set", "run.steps=160", "--set", "run.eval_every=160",
         "--set", "env.time_limit=100", "--set", "log.tensorboard=false"]  # fmt: skip
EPISODE_STEPS = 51  # the reset and 50 steps of 2 frames


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    results = tmp_path_factory.mktemp("imagine") / "results"
    proc = bench("run", "--suite", "dmc", "--tasks", "cartpole_balance", "--agents", "dreamerv3,tdmpc",
                 *SMOKE, "--results", str(results))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = {path.parent.name.split("-")[0]: path for path in results.glob("dmc/cartpole_balance/*/seed0")}
    assert set(found) == {"dreamerv3", "tdmpc"}
    return found


def _snapshot(run_dir):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(run_dir.rglob("*"))}


def _cli(capsys, *args):
    """The real CLI entry point in this process: (exit code, stdout, stderr)."""
    try:
        code = cli.main(list(args))
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["dreamerv3", "tdmpc"])
def test_open_loop_sees_nothing_after_the_context(runs, name):
    run = imagine.load_trained(runs[name])
    try:
        episode = imagine.record_episode(run)
    finally:
        run.close()
    assert len(episode["reward"]) == EPISODE_STEPS
    context, horizon = 5, 30
    window = {key: value[: context + horizon] for key, value in episode.items()}
    result = open_loop(run.agent, window, context)
    assert result.horizon == horizon and len(result.reward) == len(result.value) == context + horizon
    if name == "dreamerv3":
        assert result.frames.shape == (context + horizon, 64, 64, 3) and result.frames.dtype == np.uint8
        # the video: true, predicted and |difference| rows (upscaled 4x) under a 16-pixel caption
        frame = imagine.comparison_frames(window["image"], result)[-1][16:].astype(int)
        true, predicted, difference = (frame[256 * i : 256 * (i + 1) : 4, ::4] for i in range(3))
        np.testing.assert_array_equal(true, window["image"][-1])
        np.testing.assert_array_equal(predicted, result.frames[-1])
        np.testing.assert_array_equal(difference, np.abs(true - predicted))
    else:
        assert result.frames is None  # TD-MPC has no decoder
    # Other frames and rewards after the context: the open-loop predictions must not move.
    changed = dict(window, image=window["image"].copy(), reward=window["reward"] + 1.0)
    changed["image"][context:] = 255 - changed["image"][context:]
    other = open_loop(run.agent, changed, context)
    np.testing.assert_array_equal(other.reward[context:], result.reward[context:])
    np.testing.assert_array_equal(other.value, result.value)
    if result.frames is not None:
        np.testing.assert_array_equal(other.frames, result.frames)
    # ... whereas other actions after the context do move them: the comparison above can fail.
    pushed = dict(window, action=window["action"].copy())
    pushed["action"][context:] = np.where(pushed["action"][context:] > 0, -1.0, 1.0)
    moved = open_loop(run.agent, pushed, context)
    before, after = [np.concatenate([r.reward[context:], r.value[context:]]) for r in (result, moved)]
    assert not np.array_equal(before, after)
    if result.frames is not None:
        assert not np.array_equal(moved.frames[context:], result.frames[context:])


def test_bench_imagine_writes_true_predicted_difference_videos(runs, tmp_path):
    before = _snapshot(runs["dreamerv3"])
    out = tmp_path / "out"
    proc = bench("imagine", str(runs["dreamerv3"]), "--context", "5", "--horizon", "20", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "open loop" in proc.stdout
    gif = imageio.mimread(out / "episode0.gif")
    mp4 = imageio.mimread(out / "episode0.mp4")
    assert len(gif) == len(mp4) == 25  # context + horizon
    # one column of three 256x256 rows (true, predicted, |difference|) under a 16-pixel caption
    assert gif[0].shape[:2] == (16 + 3 * 256, 256)
    assert imageio.imread(out / "episode0_reward.png").ndim == 3
    assert _snapshot(runs["dreamerv3"]) == before  # loading wrote nothing into the run


def test_imagine_without_a_decoder_says_so_and_plots_only(runs, tmp_path, capsys):
    code, out, err = _cli(capsys, "imagine", str(runs["tdmpc"]), "--horizon", "20", "--out", str(tmp_path))
    assert code == 0, err
    assert "tdmpc has no decoder: reward and value predictions only" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode0_reward.png"]


def test_render_run_writes_the_eval_episode_with_its_return(runs, tmp_path, capsys):
    code, out, err = _cli(capsys, "render", "--run", str(runs["dreamerv3"]), "--out", str(tmp_path / "ep"))
    assert code == 0, err
    assert "eval return" in out and float(out.split("eval return ")[1].split()[0]) > 0
    assert len(imageio.mimread(tmp_path / "ep.mp4")) == EPISODE_STEPS
    gif = imageio.mimread(tmp_path / "ep.gif")  # pillow merges identical consecutive frames into one
    assert EPISODE_STEPS // 2 < len(gif) <= EPISODE_STEPS
    assert gif[0][:16].max() > 200  # the caption bar carries text


def test_bad_run_directories_exit_2_with_one_line(runs, tmp_path, capsys):
    out = tmp_path / "out"
    empty = tmp_path / "no_ckpt"
    empty.mkdir()
    (empty / "spec.json").write_text((runs["dreamerv3"] / "spec.json").read_text())
    damaged = tmp_path / "damaged"
    (damaged / "ckpt").mkdir(parents=True)
    (damaged / "spec.json").write_text((runs["dreamerv3"] / "spec.json").read_text())
    (damaged / "ckpt" / "state.pt").write_bytes((runs["dreamerv3"] / "ckpt" / "state.pt").read_bytes()[:5000])
    cases = [
        (["imagine", str(tmp_path / "nosuch"), "--out", str(out)], "not a run directory"),
        (["imagine", str(empty), "--out", str(out)], "has no checkpoint"),
        (["imagine", str(damaged), "--out", str(out)], "damaged checkpoint"),
        (["imagine", str(runs["dreamerv3"]), "--context", "0", "--out", str(out)], "context=0"),
        (["render", "--run", str(empty), "--out", str(out / "ep")], "has no checkpoint"),
        (["render", "--out", str(out / "ep")], "--run RUN_DIR"),
    ]
    for args, expected in cases:
        code, stdout, stderr = _cli(capsys, *args)
        assert code == 2 and expected in stderr, (args, stderr)
        assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not out.exists()
    assert sorted(p.name for p in empty.iterdir()) == ["spec.json"]


def test_report_imagine_adds_one_strip_per_agent_and_task(runs, tmp_path, capsys):
    results = runs["dreamerv3"].parents[3]
    code, out, err = _cli(
        capsys, "report", str(results), "--out", str(tmp_path), "--reps", "100", "--imagine"
    )
    assert code == 0, err
    strips = sorted(p.name for p in (tmp_path / "imagine").iterdir())
    assert strips == sorted(f"dmc_cartpole_balance_{run.parent.name}.png" for run in runs.values())
    strip = imageio.imread(tmp_path / "imagine" / strips[0])  # dreamerv3: 10 columns of true/predicted/diff
    assert strip.shape[:2] == (16 + 3 * 64, 10 * 64)
    html = (tmp_path / "report.html").read_text()
    assert all(run.parent.name in html for run in runs.values()) and html.count("data:image/png") >= 2
