"""Run ownership: leases in the store, real processes contending for them, and `bench run` commands that
share a results directory (inline, and against the dev SLURM cluster for a queued run).

Timing: waits poll against generous deadlines (a loaded 2-core machine); the TTLs are tiny (--set).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, bench
from test_slurm import DEV_PROFILE, cluster  # noqa: F401  (cluster: the dev SLURM cluster fixture)

from bench import store

# ---- the store: atomic acquire and take-over between real processes ----------------------------------

CONTENDER = """
import sys, time
from pathlib import Path
from bench import store
run_dir, start = Path(sys.argv[1]), float(sys.argv[2])
while time.time() < start:  # all contenders leave this line together
    pass
try:
    lease = store.acquire_lease(run_dir, 60.0)
except store.LeaseHeld:
    print("held")
else:
    print("won " + lease["token"], flush=True)
    # Stay alive: a holder on this host whose process is gone frees its lease at once, so a contender that
    # started late on a loaded machine would otherwise win too.
    time.sleep(max(0.0, start + 15 - time.time()))
"""


def _contend(run_dir: Path, n: int) -> list[str]:
    start = time.time() + 3.0  # after every interpreter has started, even on a busy machine
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONTENDER, str(run_dir), str(start)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(n)
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(out.strip())
    return outs


def _stale_lease(run_dir: Path, **fields: object) -> None:
    """A lease as another host leaves it when it dies: not renewed for far longer than its TTL."""
    old = time.time() - 3600
    lease = {"token": "t-old", "host": "elsewhere", "pid": 4242, "pid_ns": None, "job_id": None,
             "since": old, "heartbeat": old, "ttl_s": 5.0, **fields}  # fmt: skip
    store.atomic_write_json(run_dir / store.LEASE, lease)


@pytest.mark.parametrize("stale", [False, True], ids=["free", "expired"])
def test_exactly_one_of_many_processes_acquires(tmp_path: Path, stale: bool) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if stale:  # take-over of an expired lease is the same compare-and-swap
        _stale_lease(run_dir)
    outs = _contend(run_dir, 4)
    winners = [o for o in outs if o.startswith("won ")]
    assert len(winners) == 1 and outs.count("held") == 3, outs
    assert store.read_json(run_dir / store.LEASE)["token"] == winners[0].split()[1]


def test_a_fresh_lease_is_respected_and_a_dead_local_holder_frees_the_run_at_once(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from bench import store; "
         "store.acquire_lease(Path(sys.argv[1]), 600.0); print('held', flush=True); time.sleep(600)", str(run_dir)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(store.LeaseHeld, match=rf"running on host \S+ \(pid {holder.pid}\) since "):
            store.acquire_lease(run_dir, 600.0)
        assert list(store.lease_owners([run_dir])) == [run_dir]
    finally:
        holder.kill()  # kill -9: no chance to release
        holder.wait()
    # same host and its process is gone: no need to wait out the 600 s TTL
    assert store.lease_owners([run_dir]) == {}
    assert store.acquire_lease(run_dir, 600.0)["pid"] == os.getpid()


def test_held_lease_is_renewed_past_its_ttl_and_released(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    held = store.HeldLease(run_dir, store.acquire_lease(run_dir, 0.6))
    first = held.lease["heartbeat"]
    _wait(lambda: store.read_json(run_dir / store.LEASE)["heartbeat"] > first + 1.0, 30, "two renewals")
    held.check()  # still ours: renewed, not expired
    assert store.lease_owners([run_dir]).keys() == {run_dir}
    held.release()
    assert not (run_dir / store.LEASE).exists() and store.lease_owners([run_dir]) == {}


def test_a_taken_over_lease_is_lost_by_its_old_holder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    held = store.HeldLease(run_dir, store.acquire_lease(run_dir, 0.6))
    held._stop.set()  # the holder stalls: its heartbeat stops (a stopped process, a hung filesystem)
    held._thread.join()
    _wait(lambda: not store.lease_owners([run_dir]), 30, "the lease to expire")
    taker = store.acquire_lease(run_dir, 60.0)
    with pytest.raises(store.LeaseLost, match="not renewed"):
        held.check()
    with pytest.raises(store.LeaseLost, match="taken over"):
        store.renew_lease(run_dir, held.lease)
    store.release_lease(run_dir, held.lease)  # not its lease any more: left alone
    assert store.read_json(run_dir / store.LEASE)["token"] == taker["token"]


def test_a_queued_job_lease_counts_as_owned_when_slurm_cannot_be_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _stale_lease(run_dir, pid=None, host=None, job_id="77_3")  # handed to a job at submission, long ago
    monkeypatch.setenv("PATH", "/nonexistent")  # no squeue, no sinfo: the job's state is unknown here
    with pytest.raises(store.LeaseHeld, match="queued as SLURM job 77_3 since "):
        store.acquire_lease(run_dir, 60.0)
    # the job's own process takes it over (same job id), whatever its age
    assert store.acquire_lease(run_dir, 60.0, job_id="77_3")["pid"] == os.getpid()


# ---- `bench run` commands sharing a results directory ----------------------------------------------------

PENDULUM = ("run", "--suite", "gym", "--tasks", "Pendulum-v1", "--agents", "dreamerv3", "--preset", "smoke",
            "--set", "log.tensorboard=false", "--set", "log.progress=lines")  # fmt: skip


def _wait(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def _status(run: Path) -> dict:
    return store.read_status(run)


def _eval_steps(run: Path) -> list[int]:
    return sorted(set(pd.read_parquet(run / "eval.parquet")["step"]))


def test_two_commands_on_one_sweep_train_each_run_exactly_once(tmp_path: Path) -> None:
    results = tmp_path / "results"
    args = (*PENDULUM, "--seeds", "2", "--set", "run.steps=64", "--set", "run.eval_every=32",
            "--set", "run.prefill=16", "--results", str(results))  # fmt: skip
    first, second = _popen(*args), _popen(*args)  # at once: both plan both runs, the leases decide
    errs = [_finish(first)[1], _finish(second)[1]]
    runs = sorted(store.iter_run_dirs(results))
    assert len(runs) == 2
    for run in runs:
        run_id = store.read_json(run / "spec.json")["id"]
        trained = [err for err in errs if f"[{run_id}] done: 64 frames" in err]
        assert len(trained) == 1, errs  # one command trained it; the other skipped it or found it done
        assert _status(run)["state"] == "done" and _eval_steps(run) == [0, 32, 64]
        assert not (run / store.LEASE).exists()  # released at the end
    assert sum("skipped" in err for err in errs) >= 1, errs


def test_stopped_holder_loses_the_run_after_its_ttl_and_the_taker_finishes_it(tmp_path: Path) -> None:
    results = tmp_path / "results"
    args = (*PENDULUM, "--set", "run.steps=400", "--set", "run.eval_every=200", "--set", "run.prefill=16",
            "--set", "run.lease_ttl_s=3", "--set", "run.checkpoint_every_s=1", "--results", str(results))  # fmt: skip
    holder = _popen(*args)
    try:
        _wait(lambda: any(_status(r).get("step", 0) >= 100 for r in store.iter_run_dirs(results)), 300,
              "the first command to train")  # fmt: skip
        (run,) = store.iter_run_dirs(results)
        holder.send_signal(signal.SIGSTOP)  # alive but silent, like a hung or unreachable node
        shown = json.loads(bench("status", "--results", str(results), "--json").stdout)[0]
        if shown["state"] == "running" and "owner" in shown:  # the lease may already have expired
            assert f"(pid {holder.pid})" in shown["owner"]
        lease = store.read_json(run / store.LEASE)
        _wait(lambda: time.time() > lease["heartbeat"] + 3, 60, "the TTL to pass")
        taker = bench(*args)
        assert taker.returncode == 0, taker.stderr[-3000:]
        assert "skipped" not in taker.stderr and "done: 400 frames" in taker.stderr
        assert _status(run)["state"] == "done" and _eval_steps(run) == [0, 200, 400]
        finished = {
            p: p.read_bytes() for p in (run / "eval.parquet", run / "train.parquet", run / "status.json")
        }
        checkpoint = (run / "ckpt" / "state.pt").read_bytes()
    finally:
        holder.send_signal(signal.SIGCONT)
    out, err = _finish(holder)
    assert "stopped without writing more" in err and "finished: 1 skipped" in out
    assert {p: p.read_bytes() for p in finished} == finished  # the old holder wrote nothing after waking
    assert (run / "ckpt" / "state.pt").read_bytes() == checkpoint


def test_kill_9_then_the_next_command_resumes_and_status_shows_the_owner(tmp_path: Path) -> None:
    results = tmp_path / "results"
    args = (*PENDULUM, "--set", "run.steps=400", "--set", "run.eval_every=200", "--set", "run.prefill=16",
            "--set", "run.checkpoint_every_s=1", "--results", str(results))  # fmt: skip
    holder = _popen(*args)
    _wait(lambda: any(_status(r).get("step", 0) >= 100 for r in store.iter_run_dirs(results)), 300,
          "the first command to train")  # fmt: skip
    (run,) = store.iter_run_dirs(results)
    shown = bench("status", "--results", str(results))
    assert re.search(rf"running on host \S+ \(pid {holder.pid}\) since ", shown.stdout), shown.stdout
    second = bench(*args)  # while the first lives: skipped, nothing written
    assert second.returncode == 0 and f"(pid {holder.pid})" in second.stderr and "skipped" in second.stderr
    holder.kill()
    holder.communicate()
    rows = json.loads(bench("status", "--results", str(results), "--json").stdout)
    assert rows[0]["state"] == "stalled" and "owner" not in rows[0]
    resumed = bench(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "skipped" not in resumed.stderr and _status(run)["state"] == "done"
    assert _eval_steps(run) == [0, 200, 400]


# ---- a run queued in the dev SLURM cluster -------------------------------------------------------------


@pytest.mark.slurm
def test_a_queued_slurm_run_is_not_trained_by_an_inline_command(
    cluster: list[str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    import yaml

    from bench import slurm

    # a job that stays PENDING: it may not begin for an hour
    profile = yaml.safe_load(DEV_PROFILE.read_text())
    profile["sbatch_extra"] = {"begin": "now+3600"}
    (tmp_path / "later.yaml").write_text(yaml.safe_dump(profile))
    results = tmp_path / "results"
    args = (*PENDULUM, "--set", "run.steps=64", "--set", "run.eval_every=32", "--set", "run.prefill=16",
            "--set", "run.lease_ttl_s=1", "--results", str(results))  # fmt: skip
    submitted = bench(*args, "--executor", "slurm", "--profile", str(tmp_path / "later.yaml"))
    assert submitted.returncode == 0, submitted.stderr
    cluster.append(re.search(r"job array (\d+)", submitted.stdout).group(1))
    (run,) = store.iter_run_dirs(results)
    job = _status(run)["slurm"]["job_id"]
    lease = store.read_json(run / store.LEASE)
    assert lease["job_id"] == job and lease["pid"] is None  # held by the queued job from submission
    _wait(lambda: time.time() > lease["heartbeat"] + 2, 30, "the lease's heartbeat to age past its TTL")
    assert slurm.job_states([job])[job]["state"] == "PENDING"

    inline = bench(*args)
    assert inline.returncode == 0, inline.stderr
    assert f"queued as SLURM job {job} since " in inline.stderr and "skipped" in inline.stderr
    assert _status(run)["state"] == "pending" and not (run / "ckpt").exists()
    assert f"queued as SLURM job {job}" in bench("status", "--results", str(results)).stdout

    slurm.cancel([job])  # once the job has ended the run is free again
    _wait(lambda: slurm.job_states([job]).get(job, {}).get("state") == "CANCELLED", 60, "the cancel")
    resumed = bench(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "skipped" not in resumed.stderr and _status(run)["state"] == "done"
