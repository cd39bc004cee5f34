"""What every golden tool does on the reference's side once it has its numbers: print them beside ours and
find the reference checkout's commit. Numpy only: the tools run in the references' own environments
(one of them TensorFlow without torch)."""

from __future__ import annotations

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
