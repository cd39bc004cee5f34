"""Results store: layout, atomic writes, run status, and run ownership (leases).

Every file is written to a temporary name in the same directory and renamed over the old one, so a reader
(or a run killed mid-write) only ever sees a complete old or a complete new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from bench.config import ConfigError

MARKER = ".harmonybench"  # marks a directory as a results root


def atomic_write_bytes(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Write ``path`` whole or not at all. ``exclusive``: only if it does not exist yet (a hard link fails
    on an existing name, atomically, also on NFS); returns whether this call wrote it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if not exclusive:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_create_json(path: Path, obj: Any) -> bool:
    """Write ``path`` as JSON unless it exists (two writers: exactly one wins); returns whether this did."""
    return atomic_write_bytes(path, _json_bytes(obj), exclusive=True)


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n").encode()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, _json_bytes(obj))


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
    try:  # created in place, not renamed from a temporary: another command checking the root meanwhile
        fd = os.open(root / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # sees no stray file
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(b"harmonybench results root\n")


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


# ---- leases: who owns a run ----------------------------------------------------------------------------
#
# A run is trained by at most one process at a time: the holder of <run>/lease.json (host, pid, SLURM job,
# heartbeat time, TTL). Every read-check-write of a lease happens under an fcntl lock on <run>/.lease.lock,
# so take-over of an expired lease is a compare-and-swap even between hosts on a shared filesystem (POSIX
# locks reach the server on NFS); the lease itself is written atomically, so a reader never sees half of
# one. A lease is owned while its heartbeat is younger than its TTL, or while the SLURM job named in it is
# queued or running (a queued run holds its lease from submission, when no process is renewing it). It
# expires when its holder stops renewing it (kill -9, a lost node), at once when the holder was on this
# host and its process is gone.

LEASE = "lease.json"
LEASE_LOCK = ".lease.lock"
LOCK_WAIT_S = 10.0  # a lock held longer than this belongs to a stuck process: treat the run as owned
_THREAD_LOCK = threading.Lock()  # fcntl locks are per process: they do not keep this process's threads apart


class LeaseHeld(Exception):
    """Another process or SLURM job owns the run; ``holder`` is its lease (None: its lock is stuck)."""

    def __init__(self, run_dir: Path, holder: dict[str, Any] | None) -> None:
        self.holder = holder
        what = describe_holder(holder) if holder else f"its lease lock {run_dir / LEASE_LOCK} is held"
        super().__init__(what)


class LeaseLost(RuntimeError):
    """The lease this process held was taken over, or not renewed within its TTL: stop writing."""


def slurm_job_id() -> str | None:
    """This process's SLURM job as `squeue` names it (array task: ARRAY_TASK), None outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def _pid_namespace() -> str | None:
    # Two containers may share a hostname but not their process ids.
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def lease_ttl(run_dir: Path) -> float:
    """The run's ``run.lease_ttl_s`` from its spec.json (the harness default without one)."""
    from bench.config import HARNESS_DEFAULTS

    spec = read_json(run_dir / "spec.json") or {}
    run = (spec.get("config") or {}).get("run") or {}
    return float(run.get("lease_ttl_s", HARNESS_DEFAULTS["run"]["lease_ttl_s"]))


def describe_holder(lease: dict[str, Any]) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease.get("since", 0)))
    if lease.get("pid") is None and lease.get("job_id"):
        return f"queued as SLURM job {lease['job_id']} since {since}"
    job = f", SLURM job {lease['job_id']}" if lease.get("job_id") else ""
    age = max(0.0, time.time() - lease.get("heartbeat", 0))
    return f"running on host {lease.get('host')} (pid {lease.get('pid')}{job}) since {since}, heartbeat {age:.0f}s ago"


@contextlib.contextmanager
def _lease_lock(run_dir: Path) -> Iterator[None]:
    with _THREAD_LOCK:
        fd = os.open(run_dir / LEASE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + LOCK_WAIT_S
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:  # held (EACCES/EAGAIN): poll, so a stopped holder cannot block us forever
                    if time.monotonic() > deadline:
                        raise LeaseHeld(run_dir, None) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock


def _read_lease(run_dir: Path) -> dict[str, Any] | None:
    lease = read_json(run_dir / LEASE)
    return lease if isinstance(lease, dict) and "token" in lease else None


def _process_gone(lease: dict[str, Any]) -> bool:
    return (
        lease.get("pid") is not None
        and lease.get("host") == socket.gethostname()
        and lease.get("pid_ns") == _pid_namespace()
        and not pid_alive(lease["pid"])
    )


def _fresh(lease: dict[str, Any], now: float) -> bool:
    return now - lease.get("heartbeat", 0) < lease.get("ttl_s", 0) and not _process_gone(lease)


def _owned(lease: dict[str, Any] | None, now: float, job_alive: dict[str, bool | None]) -> bool:
    """Fresh heartbeat from a live process, or a SLURM job still queued or running (unknown counts as
    alive: a queued run must not be trained twice because SLURM cannot be asked from here)."""
    if lease is None:
        return False
    if _fresh(lease, now):
        return True
    if lease.get("job_id"):
        return job_alive.get(lease["job_id"]) is not False
    return False


def _jobs_alive(leases: Iterable[dict[str, Any]], now: float) -> dict[str, bool | None]:
    ids = sorted({lease["job_id"] for lease in leases if lease.get("job_id") and not _fresh(lease, now)})
    if not ids:
        return {}
    from bench import slurm  # only when a lease names a SLURM job

    return slurm.jobs_alive(ids)


def lease_owners(run_dirs: Iterable[Path]) -> dict[Path, dict[str, Any]]:
    """The live lease of each run that has one (SLURM is asked once, for all of them)."""
    now = time.time()
    leases = {Path(d): lease for d in run_dirs if (lease := _read_lease(Path(d))) is not None}
    alive = _jobs_alive(leases.values(), now)
    return {d: lease for d, lease in leases.items() if _owned(lease, now, alive)}


def acquire_lease(run_dir: Path, ttl_s: float, job_id: str | None = None) -> dict[str, Any]:
    """Make this process the run's owner; LeaseHeld when another live holder owns it. A process of SLURM
    job ``job_id`` takes over a lease naming that job: the one its submission handed to it."""
    if ttl_s <= 0:
        raise ValueError(f"run.lease_ttl_s={ttl_s}: must be positive (seconds)")
    run_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        seen = _read_lease(run_dir)
        now = time.time()
        # SLURM is asked outside the lock; the swap below happens only if the lease is still the one judged
        alive = _jobs_alive([seen] if seen else [], now)
        with _lease_lock(run_dir):
            current = _read_lease(run_dir)
            if _stamp(current) != _stamp(seen):
                continue
            ours = bool(job_id) and current is not None and current.get("job_id") == job_id
            if not ours and _owned(current, now, alive):
                raise LeaseHeld(run_dir, current)
            now = time.time()
            lease = {"token": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid(),
                     "pid_ns": _pid_namespace(), "job_id": job_id, "since": now, "heartbeat": now,
                     "ttl_s": float(ttl_s)}  # fmt: skip
            atomic_write_json(run_dir / LEASE, lease)
            return lease
    raise LeaseHeld(run_dir, _read_lease(run_dir))  # it kept changing under us: someone is active


def _stamp(lease: dict[str, Any] | None) -> tuple[Any, Any]:
    return (lease["token"], lease.get("heartbeat")) if lease else (None, None)


def renew_lease(run_dir: Path, lease: dict[str, Any]) -> dict[str, Any]:
    """Stamp a new heartbeat on our lease; LeaseLost when it is no longer ours."""
    with _lease_lock(run_dir):
        current = _read_lease(run_dir)
        if current is None or current["token"] != lease["token"]:
            taker = describe_holder(current) if current else "nobody (the lease file was removed)"
            raise LeaseLost(f"{run_dir}: lease taken over; now held by {taker}")
        current["heartbeat"] = time.time()
        atomic_write_json(run_dir / LEASE, current)
        return current


def release_lease(run_dir: Path, lease: dict[str, Any], to_job: str | None = None) -> None:
    """Give up our lease: remove it, or hand it to SLURM job ``to_job`` (submitted, or requeued), which
    owns the run from then on while SLURM lists it as queued or running. A lease no longer ours is left."""
    with _lease_lock(run_dir):
        current = _read_lease(run_dir)
        if current is None or current["token"] != lease["token"]:
            return
        if to_job:
            atomic_write_json(
                run_dir / LEASE, {**current, "job_id": to_job, "pid": None, "heartbeat": time.time()}
            )
        else:
            (run_dir / LEASE).unlink(missing_ok=True)


class HeldLease:
    """A lease this process holds, renewed every TTL/3 by a daemon thread while the process lives (a
    training update can take longer than the TTL; the thread dies with the process, so kill -9 lets the
    lease expire). ``check()`` raises LeaseLost once the lease was taken over or went unrenewed for most of
    its TTL (a stopped or stalled process), so a holder that lost it writes nothing more."""

    def __init__(self, run_dir: Path, lease: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.lease = lease
        self._renewed = time.monotonic()  # when the last successful renewal began
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    @property
    def job_id(self) -> str | None:
        return self.lease.get("job_id")

    def _beat(self) -> None:
        while not self._stop.wait(self.lease["ttl_s"] / 3):
            started = time.monotonic()
            try:
                self.lease = renew_lease(self.run_dir, self.lease)
                self._renewed = started
            except LeaseLost as error:
                self._lost = str(error)
                return
            except (OSError, LeaseHeld):  # a filesystem hiccup or a stuck lock: retry; check() bounds it
                continue

    def check(self) -> None:
        if self._lost:
            raise LeaseLost(self._lost)
        # a margin of TTL/6 for clock skew between this host and a would-be taker
        silent = time.monotonic() - self._renewed
        if silent > self.lease["ttl_s"] * 5 / 6:
            raise LeaseLost(
                f"{self.run_dir}: lease not renewed for {silent:.0f}s (TTL {self.lease['ttl_s']:g}s)"
            )

    def release(self, to_job: str | None = None) -> None:
        self._stop.set()
        self._thread.join()
        if self._lost is None:
            release_lease(self.run_dir, self.lease, to_job)


def hold_lease(run_dir: Path) -> HeldLease:
    """Acquire the run's lease (TTL from its config) and keep it renewed; LeaseHeld when owned elsewhere."""
    return HeldLease(run_dir, acquire_lease(run_dir, lease_ttl(run_dir), slurm_job_id()))
