"""Results store: layout, atomic writes, run status. See DESIGN.md "Results layout".

Every file is written to a temporary name in the same directory and renamed over the old one, so a reader
(or a run killed mid-write) only ever sees a complete old or a complete new file.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from bench.config import ConfigError

MARKER = ".harmonybench"  # marks a directory as a results root


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode())


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:  # pandas loads lazily: `status` is fast
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_status(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / "status.json") or {"state": "pending", "step": 0}


def update_status(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into status.json (atomically) and stamp the time and host."""
    status = read_status(run_dir)
    status.update(fields)
    status["updated"] = time.time()
    status.setdefault("host", socket.gethostname())
    atomic_write_json(run_dir / "status.json", status)
    return status


def check_results_root(root: Path) -> None:
    """A results root must not exist yet, be empty (a README aside) or carry our marker."""
    if not root.exists():
        return
    if not root.is_dir():
        raise ConfigError(f"--results {root}: not a directory")
    if (root / MARKER).exists():
        return
    entries = [p.name for p in root.iterdir() if p.name != "README.md"]
    if entries:
        raise ConfigError(
            f"--results {root}: not a harmonybench results directory (has {', '.join(sorted(entries)[:5])}"
            f"{' ...' if len(entries) > 5 else ''} and no {MARKER} marker); use an empty or new directory"
        )


def init_results_root(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER
    if not marker.exists():
        atomic_write_bytes(marker, b"harmonybench results root\n")


def iter_run_dirs(root: Path) -> Iterator[Path]:
    """Every run directory under root: <suite>/<task>/<variant>/seed<k> holding a spec.json."""
    for depth1 in _subdirs(root):
        for depth2 in _subdirs(depth1):
            for depth3 in _subdirs(depth2):
                for run in _subdirs(depth3):
                    if run.name.startswith("seed") and (run / "spec.json").exists():
                        yield run


def _subdirs(path: Path) -> list[Path]:
    try:
        with os.scandir(path) as it:
            return sorted(Path(e.path) for e in it if e.is_dir() and not e.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_active_elsewhere(status: dict[str, Any]) -> bool:
    """A 'running' status whose process still lives on this host (another `bench run` owns it)."""
    return (
        status.get("state") == "running"
        and status.get("host") == socket.gethostname()
        and status.get("pid") != os.getpid()
        and pid_alive(status.get("pid"))
    )
