"""`bench render`: a frame grid (and a GIF) of what the agent sees, from the real simulator."""

import imageio.v2 as imageio
import numpy as np
from test_cli_errors import bench


def test_render_writes_a_grid_and_a_gif(tmp_path):
    out, gif = tmp_path / "frames.png", tmp_path / "episode.gif"
    result = bench("render", "--suite", "dmcr", "--task", "cartpole_balance", "--episodes", "2", "--preset", "smoke",
                   "--set", "env.time_limit=100", "--out", str(out), "--gif", str(gif))  # fmt: skip
    assert result.returncode == 0, result.stderr
    grid = imageio.imread(out)
    assert grid.ndim == 3 and grid.shape[0] >= 2 * 64  # one row of 64x64 frames per episode
    frames = imageio.mimread(gif)
    assert len(frames) > 10
    # DMCR random mode: every episode has a new look, so the two rows differ
    top, bottom = grid[:64].astype(int), grid[grid.shape[0] - 64 :].astype(int)
    assert np.abs(top - bottom).mean() > 5


def test_render_bad_task_and_non_env_key(tmp_path):
    bad = bench("render", "--suite", "dmc", "--task", "nosuch", "--out", str(tmp_path / "x.png"))
    assert bad.returncode == 2 and "nosuch" in bad.stderr and "cartpole_balance" in bad.stderr
    wrong = bench("render", "--suite", "dmc", "--task", "cartpole_balance", "--set", "agent.x=1")
    assert wrong.returncode == 2 and "env.* keys only" in wrong.stderr
    assert not (tmp_path / "x.png").exists()
