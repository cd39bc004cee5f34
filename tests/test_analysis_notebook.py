"""analysis/figures.ipynb executes end to end (nbclient) on a small results directory plus the published files.

The results directory here is synthetic but follows the results contract (see analysis_data.py); a directory
made by `bench run --preset smoke` can be given the same way through HB_RESULTS.
"""

import pytest
from analysis_data import PUBLISHED, execute_figures_notebook, make_results


def test_figures_notebook_runs_every_cell(tmp_path, monkeypatch):
    files = [PUBLISHED / f"harmonydream-atari100k-{m}.json" for m in ("harmony_dreamerv3", "dreamerv3")]
    if not all(f.exists() for f in files):
        pytest.skip(f"{PUBLISHED} is absent (shared data exists for developers and CI only)")
    results = make_results(tmp_path / "results", tasks=("cheetah_run", "walker_run"), seeds=2)
    cells = execute_figures_notebook(results, files, tmp_path / "out", tmp_path, monkeypatch)
    assert (tmp_path / "out" / "results" / "report.html").exists()
    assert (tmp_path / "out" / "results" / "figures" / "dmc_loss_scales.png").exists()
    for name in ("sample_efficiency", "aggregates", "profiles"):
        assert (tmp_path / "out" / f"atari100k_paper_{name}.pdf").exists()
    shown = "".join(
        str(o.get("data", {}).get("text/html", "")) for cell in cells for o in cell.get("outputs", [])
    )
    assert "136.4 [" in shown and "67.1 [" in shown and "107.4 [" in shown and "41.6 [" in shown
