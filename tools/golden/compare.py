"""What every golden tool shares: its two-step command line, printing the reference's numbers beside ours,
the reference checkout's commit and writing the golden file. Numpy only: the reference step runs in the
reference's own environment (one of them TensorFlow without torch)."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np


def print_comparison(ours: dict[str, Any], reference: dict[str, Any], rtol: float = 1e-4) -> float:
    """One line per quantity (OK within ``rtol``, else DIFF); returns the largest relative difference."""
    worst = 0.0
    for key, want in reference.items():
        got, want_arr = np.asarray(ours[key], float), np.asarray(want, float)
        if got.shape != want_arr.shape:
            print(f"DIFF {key}: reference shape {want_arr.shape}, ours {got.shape}")
            continue
        rel = float(np.max(np.abs(got - want_arr) / np.maximum(np.abs(want_arr), 1e-7)))
        worst = max(worst, rel)
        shown = (
            f"{float(want_arr):.7g} vs ours {float(got):.7g}" if want_arr.ndim == 0 else f"{want_arr.shape}"
        )
        print(f"{'OK ' if rel <= rtol else 'DIFF'} {key}: reference {shown}, max rel {rel:.2e}")
    print(f"largest relative difference: {worst:.2e}")
    return worst


def reference_commit(reference: Path, given: str | None) -> str:
    """``given``, else the checkout's HEAD; exits with a one-line message when neither is known."""
    if given:
        return given
    try:
        out = subprocess.run(
            ["git", "-C", str(reference), "rev-parse", "HEAD"], capture_output=True, text=True
        )
    except OSError:
        out = None
    if out is None or out.returncode != 0:
        raise SystemExit(f"--reference {reference} is not a git checkout; give its commit with --commit")
    return out.stdout.strip()


def parse_args(description: str, reference: str, export_help: str, ours_help: str) -> argparse.Namespace:
    """``--export PATH`` (step 1, our environment) or ``--reference DIR --ours PATH [--commit C]`` (step 2)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--export", type=Path, help=export_help)
    parser.add_argument("--reference", type=Path, help=f"a checkout of {reference}")
    parser.add_argument("--ours", type=Path, help=ours_help)
    parser.add_argument("--commit", help="the reference checkout's commit (default: git rev-parse HEAD)")
    args = parser.parse_args()
    if not args.export and not (args.reference and args.ours):
        parser.error("give --export PATH, or --reference DIR with --ours PATH")
    return args


def write_golden_file(path: Path, golden: dict[str, Any]) -> None:
    """Atomically: a file the tests read is never half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(golden, indent=1) + "\n")
    tmp.replace(path)
