"""report.html as a reader sees it: rendered by headless Chromium, every image must load and each suite's
summary table must be on the first screen (a 1280 x 800 window), whole, before any scrolling.

A probe script is added to a copy of the page (the report itself carries no script): on load it measures the
summary tables, opens every <details> as a reader would, checks every image (the load event comes after all
of them), and writes what it found into a DOM attribute that ``--dump-dom`` prints.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from analysis_data import make_results

from analysis.report import build_report

CHROMIUM = Path("/usr/bin/chromium")
WIDTH, HEIGHT = 1280, 800
PROBE = """<script>
window.addEventListener("load", () => {
  const tables = [...document.querySelectorAll("table.summary")];
  const first = tables.length ? tables[0].getBoundingClientRect() : null;
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const images = [...document.images];  // the load event waits for every image, closed <details> too
  document.body.setAttribute("data-probe", JSON.stringify({
    width: window.innerWidth, height: window.innerHeight, tables: tables.length,
    first: first && {top: first.top, bottom: first.bottom, left: first.left, right: first.right},
    images: images.length,
    broken: images.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.alt),
  }));
});
</script>"""


def _render(page: Path, profile: Path) -> dict:
    probe = page.with_name("probe.html")
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=20000",
         "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert found, f"the probe did not run (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)")
def test_report_html_in_headless_chromium_summary_first_and_every_image_loads(tmp_path):
    results = make_results(tmp_path / "results", tasks=("cheetah_run", "walker_run"), seeds=2)
    page = build_report(str(results), [], None, str(tmp_path / "out"), reps=50)
    expected_images = page.read_text().count("<img ")
    seen = _render(page, tmp_path / "chromium-profile")

    fold = seen["height"]  # the viewport: the window less what headless Chromium keeps for its own frame
    assert seen["width"] == WIDTH and 600 <= fold <= HEIGHT
    assert seen["tables"] == 1 and seen["images"] == expected_images >= 8
    assert seen["broken"] == []
    first = seen["first"]
    assert first["top"] >= 0 and first["bottom"] <= fold, f"summary table not on the first screen: {first}"
    assert first["left"] >= 0 and first["right"] <= WIDTH, f"summary table wider than the screen: {first}"


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)")
def test_the_probe_sees_a_broken_image_and_a_summary_pushed_down(tmp_path):
    """The check itself can fail: a damaged image and a summary below a tall block are both caught."""
    page = tmp_path / "report.html"
    page.write_text(
        "<!doctype html><html><body><div style='height:2000px'></div>"
        "<table class='summary'><tr><td>x</td></tr></table>"
        "<img alt='damaged' src='data:image/png;base64,iVBORw0KGgoAAAA'></body></html>"
    )
    seen = _render(page, tmp_path / "chromium-profile")
    assert seen["broken"] == ["damaged"] and seen["first"]["top"] > HEIGHT
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
