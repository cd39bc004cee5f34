"""The analysis path on real runs: `bench run --preset smoke` for two agents x two seeds, then `bench report`
and analysis/figures.ipynb (nbclient) on that directory plus the published Atari100K files."""

from pathlib import Path

import pytest
from analysis_data import execute_figures_notebook
from conftest import bench

AGENTS = "dreamerv3,harmonydream"


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("smoke") / "results"
    proc = bench("run", "--suite", "gym", "--tasks", "Pendulum-v1", "--agents", AGENTS, "--preset", "smoke",
                 "--seeds", "2", "--set", "run.steps=400", "--set", "run.eval_every=200",
                 "--executor", "local", "--jobs", "2", "--results", str(results))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results


def _published(shared: Path) -> list[Path]:
    return [
        shared / "data" / "published" / f"harmonydream-atari100k-{m}.json"
        for m in ("harmony_dreamerv3", "dreamerv3")
    ]


def test_bench_report_on_smoke_runs(smoke_results, tmp_path):
    out = tmp_path / "report"
    proc = bench("report", str(smoke_results), "--out", str(out), "--reps", "500")
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (out / "report.html").read_text()
    assert "dreamerv3" in html and "harmonydream" in html and "data:image/png;base64" in html
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"gym_loss_scales.png", "gym_sample_efficiency.pdf"} <= figures
    unknown = bench("report", str(smoke_results), "--agents", "nosuch", "--out", str(tmp_path / "x"))
    assert (
        unknown.returncode == 2
        and "nosuch" in unknown.stderr
        and len(unknown.stderr.strip().splitlines()) == 1
    )


def test_figures_notebook_on_smoke_runs_and_published(smoke_results, shared_dir, tmp_path, monkeypatch):
    execute_figures_notebook(smoke_results, _published(shared_dir), tmp_path / "out", tmp_path, monkeypatch)
    assert (tmp_path / "out" / "results" / "report.html").exists()
    assert (tmp_path / "out" / "atari100k_paper_sample_efficiency.pdf").exists()
