"""Executors: inline (this process), local (parallel subprocesses through submitit's LocalExecutor);
SLURM arrays live in bench/slurm.py. Each job is ``run_job(run_dir)``: everything it needs is in the run
directory's spec.json, so a job can run anywhere the results directory is visible."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import store
from bench.progress import SweepProgress
from bench.spec import RunSpec

HARNESS_VERSION = metadata.version("harmonybench")
RECORDED_PACKAGES = (
    "torch", "numpy", "mujoco", "dm-control", "gymnasium", "metaworld", "ale-py", "rliable", "pandas", "submitit",
    "torchjd",
)  # fmt: skip


def _git_commit() -> str:
    source = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _packages() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def prepare(spec: RunSpec, results: Path, config: dict[str, Any]) -> Path:
    """Create the run directory with spec.json and a pending status, unless it exists already."""
    run_dir = spec.run_dir(results)
    existing = store.read_json(run_dir / "spec.json")
    if existing is not None:
        if existing["config"].get("log") != config["log"]:  # logging is not identity: this command's wins
            existing["config"]["log"] = config["log"]
            existing["overrides"] = spec.to_json()["overrides"]
            store.atomic_write_json(run_dir / "spec.json", existing)
        return run_dir
    record = spec.to_json()
    record.update(
        config=config,
        harness_version=HARNESS_VERSION,
        git_commit=_git_commit(),
        packages=_packages(),
        host=socket.gethostname(),
        created=time.time(),
    )
    # exclusive: of two commands preparing the run at once, only one writes it (the other's "pending"
    # status must not overwrite the status of a run the first has started meanwhile)
    if store.atomic_create_json(run_dir / "spec.json", record):
        store.update_status(run_dir, state="pending", step=0, budget=config["run"]["steps"])
    return run_dir


def run_job(run_dir: str, threads: int = 0) -> str:
    """The unit of work of every executor: train (or resume) one run directory."""
    from bench import loop

    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    return loop.train(Path(run_dir))


def run_inline(run_dirs: Sequence[Path]) -> dict[str, str]:
    return {str(d): run_job(str(d)) for d in run_dirs}


def run_local(run_dirs: Sequence[Path], jobs: int, results: Path) -> dict[str, str]:
    """Up to ``jobs`` runs at once, each its own process; threads split the cores between them."""
    import submitit

    threads = max(1, (os.cpu_count() or 1) // jobs)
    executor = submitit.LocalExecutor(folder=str(results / ".submitit" / "%j"))
    executor.update_parameters(timeout_min=60 * 24 * 7)
    pending = list(run_dirs)
    active: list[tuple[Path, Any]] = []
    progress = SweepProgress(run_dirs)  # one aggregate bar (or line) over the runs' own ones
    outcome: dict[str, str] = {}
    while pending or active:
        while pending and len(active) < jobs:
            run_dir = pending.pop(0)
            active.append((run_dir, executor.submit(run_job, str(run_dir), threads)))
        time.sleep(0.5)
        still, finished = [], []
        for run_dir, job in active:
            if job.done():
                try:
                    outcome[str(run_dir)] = job.result()
                except Exception as error:  # a crashed process: record it, keep the others going
                    store.update_status(
                        run_dir, state="failed", error=f"job crashed: {error}".splitlines()[0]
                    )
                    outcome[str(run_dir)] = "failed"
                progress.note(f"[{run_dir.relative_to(results)}] {outcome[str(run_dir)]}")
                finished.append(run_dir)
            else:
                still.append((run_dir, job))
        active = still
        progress.update(finished)
    progress.close()
    return outcome
