"""The SLURM executor against a real single-node SLURM (slurm/dev-cluster.sh start), not a mock.

Profile, plan and CLI-error tests need no cluster. The cluster tests use the dev profile; the ones about
the SLURM machinery (parallelism, states, requeue, cancel, snapshots) run ``tests/slurm_jobs.count``, a
fast stand-in with the loop's signal contract; the end-to-end tests run the real `bench run` smoke runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import submitit
from conftest import REPO, bench

from bench import slurm, store
from bench.spec import RunSpec

DEV_PROFILE = REPO / "slurm" / "profiles" / "dev.yaml"
JOBS_MODULE = REPO / "tests" / "slurm_jobs.py"
FAKE = "slurm_jobs:count"
DEV_CONF = Path(os.environ.get("HB_SLURM_DIR", "/tmp/harmonybench-slurm")) / "etc" / "slurm.conf"


# ---- no cluster needed -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dev.yaml", "example-gpu.yaml"])
def test_shipped_profiles_load(name: str) -> None:
    profile = slurm.load_profile(REPO / "slurm" / "profiles" / name)
    assert profile.name == name.removesuffix(".yaml")
    assert profile.array_parallelism >= 1 and profile.time_min >= 60


def _write_profile(tmp_path: Path, **changes: object) -> Path:
    import yaml

    raw = yaml.safe_load(DEV_PROFILE.read_text())
    for key, value in changes.items():
        if value is ...:
            raw.pop(key)
        else:
            raw[key] = value
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"partition": ...}, "missing key 'partition'"),
        ({"max_requeues": ...}, "missing key 'max_requeues'"),
        ({"gpus": 1}, "unknown key 'gpus'"),
        ({"array_parallelism": 0}, "'array_parallelism': 0"),
        ({"cpus_per_job": "two"}, "'cpus_per_job': 'two'"),
        ({"mem_gb": -1}, "'mem_gb': -1"),
        ({"setup": "module load cuda"}, "'setup'"),
        ({"sbatch_extra": {"array": "0-3"}}, "sbatch_extra sets 'array'"),
        ({"seconds_per_step": {"dreamerv3": 0}}, "'seconds_per_step'"),
    ],
)
def test_bad_profile_is_one_line_naming_the_key(tmp_path: Path, changes: dict, named: str) -> None:
    with pytest.raises(ValueError) as error:
        slurm.load_profile(_write_profile(tmp_path, **changes))
    message = str(error.value)
    assert named in message and "\n" not in message
    assert (
        "valid keys" in message or "required" in message or "expected" in message or "not allowed" in message
    )


def test_profile_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        slurm.load_profile(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- partition\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        slurm.load_profile(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("partition: [dev\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        slurm.load_profile(tmp_path / "broken.yaml")


def test_estimate_is_runs_times_budget_times_seconds_per_step() -> None:
    profile = dataclasses.replace(
        slurm.load_profile(DEV_PROFILE), gpus_per_job=2, seconds_per_step={"tdmpc": 0.01}
    )
    specs = [
        RunSpec("gym", "Pendulum-v1", agent, seed, "smoke")
        for agent in ("dreamerv3", "tdmpc")
        for seed in range(3)
    ]
    specs.append(RunSpec("gym", "Pendulum-v1", "harmonydream", 0, "smoke"))
    configs = {spec: spec.resolve() for spec in specs}
    dv3 = configs[specs[0]]
    estimate = slurm.estimate_hours(specs, configs, profile, ms_per_update={"dreamerv3": 50.0, "tdmpc": 1e6})
    rows = {r["agent"]: r for r in estimate.rows}
    # measured: seconds per update x updates per frame (train ratio / replayed steps per update / repeat)
    per_frame = 0.05 * dv3["run"]["train_ratio"] / (dv3["agent"]["batch_size"] * dv3["agent"]["batch_length"])
    assert rows["dreamerv3"]["hours"] == pytest.approx(3 * dv3["run"]["steps"] * per_frame / 3600)
    assert rows["dreamerv3"]["source"] == "measured" and rows["dreamerv3"]["runs"] == 3
    # the profile's own number (this cluster) beats a measurement made elsewhere
    assert rows["tdmpc"]["source"] == "profile"
    assert rows["tdmpc"]["hours"] == pytest.approx(3 * configs[specs[3]]["run"]["steps"] * 0.01 / 3600)
    assert rows["harmonydream"]["hours"] is None and estimate.unknown == ["harmonydream"]
    assert estimate.gpu_hours == pytest.approx(2 * (rows["dreamerv3"]["hours"] + rows["tdmpc"]["hours"]))
    text = str(estimate)
    assert "GPU-hours" in text and "unknown" in text and f"{estimate.gpu_hours:.2g} GPU-hours" in text


def test_planner_counts_tdmpc_updates_as_the_agent_replays_them() -> None:
    # TD-MPC on pixels replays horizon + frame_stack steps per sequence and updates once per agent step
    config = RunSpec("dmc", "cartpole_balance", "tdmpc", 0, "paper").resolve()
    expected = 1 / config["env"]["action_repeat"]
    assert slurm.updates_per_frame("tdmpc", "dmc", config) == pytest.approx(expected)


def test_sacct_array_ranges_expand() -> None:
    assert slurm._expand_ids("12_[3-5,7%2]") == ["12_3", "12_4", "12_5", "12_7"]
    assert slurm._expand_ids("12_4") == ["12_4"] and slurm._expand_ids("9") == ["9"]


def test_cli_bad_profile_exits_2_and_submits_nothing(tmp_path: Path) -> None:
    results = tmp_path / "results"
    profile = _write_profile(tmp_path, time_limit=5)
    done = bench(*_SMOKE_RUN, "--executor", "slurm", "--profile", str(profile), "--results", str(results))
    assert done.returncode == 2, done.stderr
    assert "unknown key 'time_limit'" in done.stderr and "Traceback" not in done.stderr
    assert not (results / ".snapshots").exists() and not list(results.rglob("status.json"))


def test_submit_without_a_reachable_cluster_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch is not installed (slurm/dev-cluster.sh start installs it)")
    (tmp_path / "empty.conf").write_text("")  # a missing file makes sbatch try DNS for a minute first
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "empty.conf"))
    dirs = _fake_runs(tmp_path / "runs", [{"steps": 1, "step_s": 0.1}])
    with pytest.raises(ValueError, match="^sbatch failed: ") as error:
        slurm.submit(
            dirs, slurm.load_profile(DEV_PROFILE), tmp_path, target=FAKE, extra_modules=[JOBS_MODULE]
        )
    assert "\n" not in str(error.value)
    assert not list((tmp_path / ".snapshots").iterdir()) and "slurm" not in store.read_status(dirs[0])


# ---- against the dev cluster -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[str]]:
    """The running dev cluster (SLURM_CONF set for this process and the `bench` it starts); yields a list
    the tests append their array ids to, all cancelled at the end."""
    conf = os.environ.get("SLURM_CONF") or (str(DEV_CONF) if DEV_CONF.exists() else "")
    if not conf or shutil.which("sinfo") is None:
        pytest.skip(
            "dev SLURM cluster not running: slurm/dev-cluster.sh start; eval $(slurm/dev-cluster.sh env)"
        )
    env = {**os.environ, "SLURM_CONF": conf}
    up = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env, timeout=30)
    if up.returncode != 0 or not up.stdout.strip():
        pytest.skip(f"dev SLURM cluster not reachable with SLURM_CONF={conf}: slurm/dev-cluster.sh start")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    arrays: list[str] = []
    yield arrays
    if arrays:
        subprocess.run(["scancel", *arrays], capture_output=True, timeout=60)
    if old is None:
        os.environ.pop("SLURM_CONF")
    else:
        os.environ["SLURM_CONF"] = old


def _fake_runs(root: Path, plans: list[dict]) -> list[Path]:
    dirs = []
    for i, plan in enumerate(plans):
        run = root / f"run{i}"
        run.mkdir(parents=True)
        (run / "plan.json").write_text(json.dumps(plan))
        store.update_status(run, state="pending", step=0)
        dirs.append(run)
    return dirs


def _job_ids(dirs: list[Path]) -> list[str]:
    return [store.read_status(d)["slurm"]["job_id"] for d in dirs]


def _wait(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    every: float = 0.3,
    describe: Callable[[], str] = lambda: "",
) -> None:
    """Poll until ``condition``; the timeout is a generous deadline for a loaded 2-core machine, not a
    timing assertion (a checkpoint under load took over 60 s once). ``describe`` says where things stood."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; {describe()}")


FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}


def _all_final(ids: list[str], seen: dict[str, set[str]] | None = None) -> bool:
    states = slurm.job_states(ids)
    if seen is not None:
        for job, state in states.items():
            seen.setdefault(job, set()).add(
                state["state"] + (f":{state['reason']}" if state["reason"] else "")
            )
    return len(states) == len(ids) and all(s["state"] in FINAL for s in states.values())


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _steps(run: Path) -> list[int]:
    path = run / "steps.log"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@pytest.mark.slurm
def test_array_parallelism_states_and_one_failure(cluster: list[str], tmp_path: Path) -> None:
    profile = slurm.load_profile(DEV_PROFILE)  # array_parallelism: 2
    plans = [{"steps": 8, "step_s": 0.3, "fail_at": 3 if i == 2 else None} for i in range(4)]
    dirs = _fake_runs(tmp_path, plans)
    started = time.monotonic()
    array = slurm.submit(dirs, profile, tmp_path, target=FAKE, extra_modules=[JOBS_MODULE])
    cluster.append(array)
    assert time.monotonic() - started < 10  # returns at once; the runs take longer than that in total
    ids = _job_ids(dirs)
    assert ids == [f"{array}_{i}" for i in range(4)]
    assert all(store.read_status(d)["slurm"]["profile"] == "dev" for d in dirs)

    seen: dict[str, set[str]] = {}
    _wait(lambda: _all_final(ids, seen), 120, "the array to finish", every=0.2)
    final = slurm.job_states(ids)
    assert [final[j]["state"] for j in ids] == ["COMPLETED", "COMPLETED", "FAILED", "COMPLETED"]
    assert "nonzero exit" in final[ids[2]]["reason"]
    assert store.read_status(dirs[2])["error"] == "non-finite loss at step 3"
    assert all(_steps(d) == list(range(1, 9)) for i, d in enumerate(dirs) if i != 2)
    # the cap: never more than 2 at once, and the later tasks waited for it
    assert any("PENDING:JobArrayTaskLimit" in s for s in seen[ids[3]]), seen
    assert all(any(s.startswith("RUNNING") for s in seen[j]) for j in ids), seen
    spans = [
        (read_lines(d / "starts.log")[0]["t"], read_lines(d / "ends.log")[0]["t"])
        for d in (dirs[0], dirs[1], dirs[3])
    ]
    spans.append((read_lines(dirs[2] / "starts.log")[0]["t"], store.read_status(dirs[2])["updated"]))
    overlap = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert overlap == 2, spans
    # the jobs ran the snapshot, not the working tree
    snapshot = store.read_status(dirs[0])["slurm"]["snapshot"]
    assert read_lines(dirs[0] / "starts.log")[0]["bench"] == f"{snapshot}/bench"


@pytest.mark.slurm
def test_queued_jobs_run_the_code_as_submitted(cluster: list[str], tmp_path: Path) -> None:
    module = tmp_path / "probe_jobs.py"
    shutil.copy(JOBS_MODULE, module)
    dirs = _fake_runs(tmp_path / "runs", [{"steps": 3, "step_s": 0.1}])
    array = slurm.submit(
        dirs, slurm.load_profile(DEV_PROFILE), tmp_path, target="probe_jobs:count", extra_modules=[module]
    )
    cluster.append(array)
    module.write_text("def count(run_dir, threads=0):\n    raise RuntimeError('edited after submission')\n")
    ids = _job_ids(dirs)
    _wait(lambda: _all_final(ids), 180, "the job to finish")
    assert slurm.job_states(ids)[ids[0]]["state"] == "COMPLETED"
    assert _steps(dirs[0]) == [1, 2, 3]


@pytest.mark.slurm
def test_preempted_jobs_requeue_and_resume_cancelled_stay_cancelled(
    cluster: list[str], tmp_path: Path
) -> None:
    profile = dataclasses.replace(slurm.load_profile(DEV_PROFILE), array_parallelism=4)
    dirs = _fake_runs(tmp_path, [{"steps": 30, "step_s": 0.25} for _ in range(4)])
    cluster.append(slurm.submit(dirs, profile, tmp_path, target=FAKE, extra_modules=[JOBS_MODULE]))
    ids = _job_ids(dirs)
    _wait(lambda: all(len(_steps(d)) >= 4 for d in dirs), 180, "all four runs to be mid-way")
    # 0: the time-limit warning alone (what --signal=USR2@delay sends); 1: submitit's preemption (TERM + USR2);
    # 2: an external requeue (SLURM kills the job, then requeues it); 3: a user's cancel
    subprocess.run(["scancel", "--signal=USR2", ids[0]], check=True, timeout=30)
    submitit.SlurmJob(folder=tmp_path / ".slurm" / "%j", job_id=ids[1])._interrupt()
    subprocess.run(["scontrol", "requeue", ids[2]], check=True, timeout=30)
    slurm.cancel([ids[3]])

    seen: dict[str, set[str]] = {}
    _wait(lambda: _all_final(ids, seen), 150, "requeued jobs to finish", every=0.5)
    final = slurm.job_states(ids)
    assert [final[j]["state"] for j in ids] == ["COMPLETED", "COMPLETED", "COMPLETED", "CANCELLED"]
    assert all(any(s.startswith("REQUEUED") for s in seen[j]) for j in ids[:3]), seen
    for run, job in zip(dirs[:3], ids):
        assert final[job]["restarts"] == 1
        starts = read_lines(run / "starts.log")
        assert len(starts) == 2 and starts[1]["step"] >= 4  # resumed from its checkpoint, not from 0
        assert _steps(run) == list(range(1, 31))  # no step missing or done twice
        assert store.read_status(run)["state"] == "done"
    # the first two requeued themselves; the third was requeued by SLURM, not a second time by the job
    assert [store.read_status(d)["slurm"].get("requeues") for d in dirs[:3]] == [1, 1, None]
    cancelled = store.read_status(dirs[3])
    assert cancelled["state"] == "preempted" and len(read_lines(dirs[3] / "starts.log")) == 1


@pytest.mark.slurm
def test_requeues_are_bounded_by_the_profile(cluster: list[str], tmp_path: Path) -> None:
    profile = dataclasses.replace(slurm.load_profile(DEV_PROFILE), max_requeues=0)
    dirs = _fake_runs(tmp_path, [{"steps": 30, "step_s": 0.2}])
    cluster.append(slurm.submit(dirs, profile, tmp_path, target=FAKE, extra_modules=[JOBS_MODULE]))
    ids = _job_ids(dirs)
    _wait(lambda: len(_steps(dirs[0])) >= 2, 180, "the run to start")
    submitit.SlurmJob(folder=tmp_path / ".slurm" / "%j", job_id=ids[0])._interrupt()
    _wait(lambda: _all_final(ids), 180, "the job to end")
    assert slurm.job_states(ids)[ids[0]]["state"] == "FAILED"
    status = store.read_status(dirs[0])
    assert status["state"] == "preempted" and "max_requeues=0" in status["error"]
    assert len((dirs[0] / "starts.log").read_text().splitlines()) == 1


def test_job_states_without_slurm_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert slurm.job_states(["1_0"]) == {}


# ---- end to end: the real `bench run` ----------------------------------------------------------------

_SMOKE_RUN = ("run", "--suite", "gym", "--tasks", "Pendulum-v1", "--agents", "dreamerv3", "--preset", "smoke")
# The smoke preset with a shorter budget and prefill, so that an array of them fits in a test.
_SHORT = ("--set", "run.steps=64", "--set", "run.eval_every=32", "--set", "run.prefill=16")


def _submit_with_bench(results: Path, *args: str) -> str:
    started = time.monotonic()
    done = bench(
        *_SMOKE_RUN, *args, "--executor", "slurm", "--profile", str(DEV_PROFILE), "--results", str(results)
    )
    assert done.returncode == 0, done.stderr
    found = re.search(r"job array (\d+)", done.stdout)
    assert found, done.stdout
    # it returned without waiting: nothing has finished yet
    assert all(store.read_status(d).get("state") != "done" for d in store.iter_run_dirs(results))
    assert time.monotonic() - started < 60
    return found.group(1)


def _status_rows(results: Path) -> list[dict]:
    done = bench("status", "--results", str(results), "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _preempted_at(run: Path) -> int | None:
    """The step at which the loop checkpointed on a signal, from the run's SLURM log (lasting, unlike the
    status, which a quick restart overwrites)."""
    log = Path(store.read_status(run)["slurm"]["log"]).with_suffix(".err")
    found = re.findall(r"preempted by signal \d+ at step (\d+)", log.read_text() if log.exists() else "")
    return int(found[-1]) if found else None


def _eval_steps(run: Path) -> list[int]:
    return pd.read_parquet(run / "eval.parquet")["step"].tolist()


@pytest.mark.slurm
def test_bench_run_array_completes_and_a_nan_run_fails_alone(cluster: list[str], tmp_path: Path) -> None:
    results = tmp_path / "results"
    # 2 seeds x KL scale {0.5, 0.4, NaN}: 6 array tasks, 2 at a time; the NaN ones fail at their first update
    array = _submit_with_bench(results, "--seeds", "2", "--sweep", "agent.kl_dyn_scale=0.5,0.4,nan", *_SHORT)
    cluster.append(array)
    runs = list(store.iter_run_dirs(results))
    assert len(runs) == 6
    ids = sorted(store.read_status(d)["slurm"]["job_id"] for d in runs)
    assert ids == sorted(f"{array}_{i}" for i in range(6))

    _wait(lambda: any(store.read_status(d).get("state") == "running" for d in runs), 120, "a run to start")
    rows = _status_rows(results)
    live = {r["slurm"]["job_id"]: r["slurm_state"]["state"] for r in rows if "slurm_state" in r}
    assert set(live) == set(ids) and "RUNNING" in live.values() and "PENDING" in live.values(), live
    assert list(live.values()).count("RUNNING") <= 2
    text = bench("status", "--results", str(results)).stdout
    assert f"{array}_" in text and "RUNNING" in text

    _wait(lambda: _all_final(ids), 600, "the array to finish", every=2)
    by_variant: dict[str, list[dict]] = {}
    for row in _status_rows(results):
        kl = store.read_json(Path(row["run_dir"]) / "spec.json")["overrides"]["agent.kl_dyn_scale"]
        by_variant.setdefault("nan" if kl != kl else "ok", []).append(row)
    assert len(by_variant["ok"]) == 4 and len(by_variant["nan"]) == 2
    for row in by_variant["ok"]:
        assert row["state"] == "done" and row["step"] == 64 and row["slurm_state"]["state"] == "COMPLETED"
        assert _eval_steps(Path(row["run_dir"])) == [0, 32, 64]
    for row in by_variant["nan"]:
        assert row["state"] == "failed" and "nan" in row["error"].lower()
        assert row["slurm_state"]["state"] == "FAILED" and "nonzero exit" in row["slurm_state"]["reason"]


@pytest.mark.slurm
def test_bench_run_preempted_mid_way_resumes_without_lost_or_repeated_evals(
    cluster: list[str], tmp_path: Path
) -> None:
    results = tmp_path / "results"
    # 400 steps leave the signal, sent after step 60, a wide margin before the run would end by itself
    longer = ("--set", "run.steps=400", "--set", "run.eval_every=100", "--set", "run.prefill=16")
    array = _submit_with_bench(results, "--seeds", "2", *longer)
    cluster.append(array)
    runs = sorted(store.iter_run_dirs(results))
    ids = [store.read_status(d)["slurm"]["job_id"] for d in runs]

    def where() -> str:
        logs = [Path(store.read_status(d)["slurm"]["log"]).with_suffix(".err") for d in runs]
        tails = [log.read_text().splitlines()[-3:] if log.exists() else "no log" for log in logs]
        return (
            f"status: {[store.read_status(d) for d in runs]}; SLURM: {slurm.job_states(ids)}; logs: {tails}"
        )

    _wait(lambda: all(store.read_status(d).get("step", 0) >= 60 for d in runs), 300, "both runs past step 60")
    submitit.SlurmJob(folder=results / ".slurm" / "%j", job_id=ids[0])._interrupt()  # submitit's preemption
    # SLURM kills the second and holds it pending: its "preempted" and REQUEUED states last until released.
    # (The first is back within seconds on an idle cluster, so only its log and restart count are lasting.)
    subprocess.run(["scontrol", "requeuehold", ids[1]], check=True, timeout=30)
    _wait(
        lambda: all(_preempted_at(run) is not None for run in runs),
        240,
        "both runs to checkpoint at the signal",
        describe=where,
    )
    preempted_at = [_preempted_at(run) for run in runs]
    assert all(60 <= step < 400 for step in preempted_at), preempted_at
    _wait(
        lambda: store.read_status(runs[1]).get("state") == "preempted",
        60,
        "the held run's status",
        describe=where,
    )
    assert store.read_status(runs[1])["step"] == preempted_at[1]

    # `bench status` follows both: the held one REQUEUED, each restarted once
    def requeued() -> bool:
        rows = {r["slurm"]["job_id"]: r["slurm_state"] for r in _status_rows(results)}
        return all(rows[j]["restarts"] == 1 for j in ids) and rows[ids[1]]["state"] == "REQUEUED"

    _wait(requeued, 120, "bench status to show the restarts", every=0.5, describe=where)
    subprocess.run(["scontrol", "release", ids[1]], check=True, timeout=30)

    _wait(lambda: _all_final(ids), 600, "the requeued runs to finish", every=2, describe=where)
    final = slurm.job_states(ids)
    for run, job in zip(runs, ids):
        assert final[job]["state"] == "COMPLETED" and final[job]["restarts"] == 1
        status = store.read_status(run)
        assert status["state"] == "done" and status["step"] == 400 and status["slurm"]["restarts"] == 1
        assert _eval_steps(run) == [0, 100, 200, 300, 400]  # each eval exactly once across the requeue
        # the second start went on from the checkpoint written at the signal, not from step 0
        log = Path(status["slurm"]["log"]).with_suffix(".err").read_text()
        at = preempted_at[runs.index(run)]
        parts = re.split(rf"preempted by signal \d+ at step {at}\b", log)
        assert len(parts) == 2, log
        resumed = [int(s) for s in re.findall(r"step (\d+)/400", parts[1])]
        assert resumed and min(resumed) > at, log
