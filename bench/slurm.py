"""SLURM executor: cluster profiles, one submitit job array per `bench run`, job states, cancel, plan.

Submission never blocks: ``submit`` takes each run's lease, snapshots the source, submits the array held,
records each run's job id in its status.json, hands each lease to its job (the run counts as owned while
the job is queued or running, and the job's process takes the lease over when it starts), releases the
array and returns its id. ``bench status`` asks ``job_states`` (one squeue call; sacct only for jobs the
controller has forgotten); each job trains its run directory through ``bench.launch.run_job``, imported
from the snapshot.

Signals and requeue (SLURM sends SIGUSR2 ``signal_delay_s`` before the time limit; ``scancel``, an
external ``scontrol requeue`` and scheduler preemption send SIGTERM):
- submitit installs its handlers when the job starts (SIGUSR2: ``checkpoint()`` + requeue + exit; SIGTERM:
  logged). They cover only the start-up before training, where nothing beyond the last checkpoint is lost.
- While training, the loop's own handlers replace them: on either signal it finishes the update, writes a
  checkpoint and returns "preempted", then restores submitit's handlers.
- Then ``SlurmRun`` ignores both signals (so submitit's handler cannot requeue a second time) and decides in
  plain code: if SLURM still lists the job RUNNING (time limit, or submitit's ``job._interrupt()``) it
  requeues it with ``scontrol requeue`` unless the profile's ``max_requeues`` is spent; if SLURM is already
  ending it (cancelled, or requeued/preempted by SLURM itself) it leaves the decision to SLURM — a cancelled
  job must stay cancelled, and SLURM would requeue even a finished job if asked.
A restarted job resumes from the run's checkpoint (replay buffer and counters included).
"""

from __future__ import annotations

import importlib
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
import yaml

import agents
from bench import store

RUN_JOB = "bench.launch:run_job"
SNAPSHOT_PACKAGES = ("bench", "agents", "suites", "analysis")
SOURCE_ROOT = Path(__file__).resolve().parents[1]

# ---- profiles ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """One cluster's submission settings, read from slurm/profiles/NAME.yaml."""

    name: str
    partition: str | None
    account: str | None
    qos: str | None
    gpus_per_job: int
    cpus_per_job: int
    mem_gb: float
    time_min: int
    constraint: str | None
    array_parallelism: int
    max_requeues: int
    setup: tuple[str, ...]
    sbatch_extra: Mapping[str, Any]
    signal_delay_s: int = 120
    seconds_per_step: Mapping[str, float] = field(default_factory=dict)


def _optional_str(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() != "")


def _int_at_least(low: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _sbatch_options(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in value.items()
    )


def _speeds(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and _positive_number(v) for k, v in value.items()
    )


# key -> (check, what a valid value is, required)
PROFILE_KEYS: dict[str, tuple[Any, str, bool]] = {
    "partition": (_optional_str, "a partition name or null (the cluster default)", True),
    "account": (_optional_str, "an account name or null", True),
    "qos": (_optional_str, "a QOS name or null", True),
    "gpus_per_job": (_int_at_least(0), "an int >= 0", True),
    "cpus_per_job": (_int_at_least(1), "an int >= 1", True),
    "mem_gb": (_positive_number, "a number of GB > 0", True),
    "time_min": (_int_at_least(1), "minutes, an int >= 1", True),
    "constraint": (_optional_str, "a node feature expression or null", True),
    "array_parallelism": (_int_at_least(1), "an int >= 1 (array tasks running at once)", True),
    "max_requeues": (_int_at_least(0), "an int >= 0", True),
    "setup": (_str_list, "a list of shell lines (module load, env activation), possibly []", True),
    "sbatch_extra": (_sbatch_options, "a mapping of extra sbatch options, possibly {}", True),
    "signal_delay_s": (_int_at_least(10), "seconds, an int >= 10 (SIGUSR2 before the time limit)", False),
    "seconds_per_step": (_speeds, "a mapping agent -> seconds per env frame on this cluster", False),
}
# sbatch options the harness sets itself; a profile must not override them through sbatch_extra
MANAGED_SBATCH = {"array", "output", "error", "signal", "time", "job-name", "hold", "chdir", "open-mode"}


def load_profile(path: str | Path) -> Profile:
    """Read and check a profile; ValueError (one line naming the key and the valid keys) when it is bad."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"SLURM profile {path}: no such file (profiles live in slurm/profiles/*.yaml)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"SLURM profile {path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ValueError(
            f"SLURM profile {path}: expected a mapping of keys; valid keys: {', '.join(PROFILE_KEYS)}"
        )
    unknown = sorted(set(raw) - set(PROFILE_KEYS))
    if unknown:
        raise ValueError(
            f"SLURM profile {path}: unknown key '{unknown[0]}'; valid keys: {', '.join(PROFILE_KEYS)}"
        )
    missing = [k for k, (_, _, required) in PROFILE_KEYS.items() if required and k not in raw]
    if missing:
        raise ValueError(
            f"SLURM profile {path}: missing key '{missing[0]}'; required: {', '.join(k for k, v in PROFILE_KEYS.items() if v[2])}"
        )
    for key, value in raw.items():
        check, valid, _ = PROFILE_KEYS[key]
        if not check(value):
            raise ValueError(f"SLURM profile {path}: bad value for '{key}': {value!r}; expected {valid}")
    clash = sorted({k.replace("_", "-") for k in raw["sbatch_extra"]} & MANAGED_SBATCH)
    if clash:
        raise ValueError(
            f"SLURM profile {path}: sbatch_extra sets '{clash[0]}', which the harness sets itself; "
            f"not allowed there: {', '.join(sorted(MANAGED_SBATCH))}"
        )
    values = dict(raw)
    values["setup"] = tuple(raw["setup"])
    values["sbatch_extra"] = dict(raw["sbatch_extra"])
    return Profile(name=path.stem, **values)


# ---- submission --------------------------------------------------------------------------------------


def _require(command: str) -> None:
    if shutil.which(command) is None:
        raise ValueError(
            f"SLURM is not available here: '{command}' is not on PATH (for a local cluster: slurm/dev-cluster.sh start)"
        )


def snapshot_source(dest: Path, extra_modules: Sequence[Path] = ()) -> Path:
    """Copy the harness packages (and extra top-level modules) so queued jobs run the code as submitted."""
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in SNAPSHOT_PACKAGES:
        shutil.copytree(SOURCE_ROOT / package, dest / package, ignore=ignore)
    for module in extra_modules:
        shutil.copy2(module, dest / Path(module).name)
    store.atomic_write_json(dest / "SNAPSHOT.json", {"source": str(SOURCE_ROOT), "created": time.time()})
    return dest


def _executor(profile: Profile, folder: Path, snapshot: Path) -> submitit.SlurmExecutor:
    executor = submitit.SlurmExecutor(folder=str(folder / "%j"), max_num_timeout=profile.max_requeues)
    optional = {"partition": profile.partition, "account": profile.account, "qos": profile.qos,
                "constraint": profile.constraint}  # fmt: skip
    # The job runs from the snapshot: cwd comes first on sys.path for `python -m submitit.core._submit`.
    setup = [*profile.setup, f"cd {shlex.quote(str(snapshot))}",
             f"export PYTHONPATH={shlex.quote(str(snapshot))}${{PYTHONPATH:+:$PYTHONPATH}}"]  # fmt: skip
    executor.update_parameters(
        job_name="harmonybench",
        time=profile.time_min,
        cpus_per_task=profile.cpus_per_job,
        mem=f"{math.ceil(profile.mem_gb * 1024)}M",
        array_parallelism=profile.array_parallelism,
        signal_delay_s=profile.signal_delay_s,
        setup=setup,
        # held until every run's job id is in its status.json, so no job races that write
        additional_parameters={**profile.sbatch_extra, "hold": True},
        **({"gpus_per_node": profile.gpus_per_job} if profile.gpus_per_job else {}),
        **{k: v for k, v in optional.items() if v is not None},
    )
    return executor


def submit(
    run_dirs: Sequence[Path],
    profile: Profile,
    results_root: Path,
    *,
    target: str = RUN_JOB,
    extra_modules: Sequence[Path] = (),
) -> str | None:
    """Submit one job array over ``run_dirs`` (parallelism capped by the profile); returns the array id,
    or None when another command took every run meanwhile. Each run's lease passes to its queued job.

    ``target`` ("module:function", called with (run_dir, threads)) and ``extra_modules`` exist for tests.
    """
    if not run_dirs:
        raise ValueError("nothing to submit: no run directories")
    _require("sbatch")
    results_root = Path(results_root).resolve()
    leases = _lease_all([Path(d).resolve() for d in run_dirs])
    if not leases:
        return None
    run_dirs = list(leases)
    try:
        return _submit_leased(run_dirs, leases, profile, results_root, target, extra_modules)
    except BaseException:
        for run_dir, lease in leases.items():  # no job took them: leave the runs free
            store.release_lease(run_dir, lease)
        raise


def _lease_all(run_dirs: Sequence[Path]) -> dict[Path, dict[str, Any]]:
    """Own every run before submitting it (a run another command owns meanwhile is left out, with a line)."""
    leases = {}
    for run_dir in run_dirs:
        try:
            leases[run_dir] = store.acquire_lease(run_dir, store.lease_ttl(run_dir))
        except store.LeaseHeld as held:
            print(f"  {run_dir}: {held} — skipped", file=sys.stderr)
    return leases


def _submit_leased(
    run_dirs: list[Path],
    leases: dict[Path, dict[str, Any]],
    profile: Profile,
    results_root: Path,
    target: str,
    extra_modules: Sequence[Path],
) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    snapshot = snapshot_source(results_root / ".snapshots" / stamp, extra_modules)
    executor = _executor(profile, results_root / ".slurm", snapshot)
    try:
        with executor.batch():
            jobs = [
                executor.submit(SlurmRun(str(d), profile.max_requeues, profile.cpus_per_job, target))
                for d in run_dirs
            ]
    except submitit.core.utils.UncompletedJobError as error:  # sbatch refused: say why in one line
        shutil.rmtree(snapshot, ignore_errors=True)
        lines = [line for line in str(error).splitlines() if line.strip()]
        hint = (
            ""
            if os.environ.get("SLURM_CONF")
            else '; SLURM_CONF is not set (dev cluster: eval "$(slurm/dev-cluster.sh env)")'
        )
        raise ValueError(f"sbatch failed: {lines[-1] if lines else error}{hint}") from None
    array_id = jobs[0].job_id.split("_")[0]
    try:
        for run_dir, job in zip(run_dirs, jobs):
            record = {"job_id": job.job_id, "array_id": array_id, "profile": profile.name,
                      "snapshot": str(snapshot), "log": str(job.paths.stdout), "submitted": time.time()}  # fmt: skip
            store.update_status(run_dir, slurm=record)
            store.release_lease(run_dir, leases[run_dir], to_job=job.job_id)  # the queued job owns it now
    except BaseException:
        subprocess.run(["scancel", array_id], capture_output=True, timeout=60)
        raise
    _scontrol("release", array_id)
    return array_id


def _scontrol(*args: str) -> str:
    done = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"scontrol {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


# ---- the job -----------------------------------------------------------------------------------------


class SlurmRun(submitit.helpers.Checkpointable):
    """One array task: train one run directory, and requeue it when the loop reports a preemption.

    ``checkpoint()`` (inherited) resubmits the same call; submitit uses it only before training starts.
    """

    def __init__(self, run_dir: str, max_requeues: int, threads: int, target: str = RUN_JOB) -> None:
        self.run_dir = run_dir
        self.max_requeues = max_requeues
        self.threads = threads
        self.target = target

    def __call__(self) -> str:
        restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)  # set by SLURM on every requeued start
        _merge_slurm_record(Path(self.run_dir), restarts=restarts, node=os.uname().nodename)
        module, name = self.target.split(":")
        outcome = getattr(importlib.import_module(module), name)(self.run_dir, self.threads)
        for signum in (signal.SIGUSR2, signal.SIGTERM):  # from here on, only this code decides
            signal.signal(signum, signal.SIG_IGN)
        if outcome == "failed":
            error = store.read_status(Path(self.run_dir)).get("error") or "see the run's error.log"
            raise RuntimeError(f"run failed: {error}")  # SLURM marks the task FAILED; the log says why
        if outcome == "preempted":
            self._requeue(restarts)
        return outcome

    def _requeue(self, restarts: int) -> None:
        job_id = store.slurm_job_id()
        if _live_state(os.environ["SLURM_JOB_ID"]) != "RUNNING":
            print(f"job {job_id} is being ended by SLURM; not requeueing it myself", file=sys.stderr)
            return
        if restarts >= self.max_requeues:
            message = (f"not requeued: {restarts} requeue(s) already (profile max_requeues={self.max_requeues}); "
                       "`bench run` again resumes it from its checkpoint")  # fmt: skip
            store.update_status(Path(self.run_dir), error=message)
            raise RuntimeError(message)
        _merge_slurm_record(Path(self.run_dir), requeues=restarts + 1)
        _scontrol("requeue", job_id)
        print(f"requeued job {job_id} ({restarts + 1} of at most {self.max_requeues})", file=sys.stderr)
        raise SystemExit(-1)  # as submitit does: no result file, SLURM restarts the task


def _live_state(raw_job_id: str) -> str:
    try:
        out = _scontrol("show", "job", raw_job_id)
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return "UNKNOWN"
    for token in out.split():
        if token.startswith("JobState="):
            return token.split("=", 1)[1]
    return "UNKNOWN"


def _merge_slurm_record(run_dir: Path, **fields: Any) -> None:
    record = dict(store.read_status(run_dir).get("slurm") or {})
    record.update(fields)
    store.update_status(run_dir, slurm=record)


# ---- states and cancel -------------------------------------------------------------------------------

FINISHED_REASONS = {
    "FAILED": "nonzero exit",
    "TIMEOUT": "time limit reached",
    "OUT_OF_MEMORY": "out of memory",
    "NODE_FAIL": "node failure",
    "CANCELLED": "cancelled",
    "PREEMPTED": "preempted by the scheduler",
    "BOOT_FAIL": "node boot failure",
    "DEADLINE": "deadline reached",
}


ENDED = {"COMPLETED", *FINISHED_REASONS}


def _expand_ids(job_id: str) -> list[str]:
    """sacct's '12_[3-5,7%2]' (array tasks not started yet) -> ['12_3', '12_4', '12_5', '12_7']."""
    if "_[" not in job_id:
        return [job_id]
    array, ranges = job_id.split("_[", 1)
    ids = []
    for part in ranges.rstrip("]").split("%")[0].split(","):
        low, _, high = part.partition("-")
        ids += [f"{array}_{i}" for i in range(int(low), int(high or low) + 1)]
    return ids


def job_states(job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """job id -> {"state": PENDING|RUNNING|REQUEUED|COMPLETED|FAILED|CANCELLED|TIMEOUT|..., "reason",
    "restarts"}; {} when SLURM is not reachable.

    One squeue call asks the controller, which knows every job of the last MinJobAge seconds live;
    jobs it has forgotten come from one sacct call. (sacct alone lags: under load it listed tasks as
    PENDING after they had run and finished.)
    """
    if not job_ids:
        return {}
    arrays = ",".join(sorted({j.split("_")[0] for j in job_ids}))
    wanted = set(job_ids)
    found = _controller_states(arrays)
    if wanted - set(found):
        found = {**_accounting_states(arrays), **found}
    return {job: _describe(*found[job]) for job in wanted if job in found}


def jobs_alive(job_ids: Sequence[str]) -> dict[str, bool | None]:
    """job id -> still queued or running (True), ended or forgotten (False), or None when SLURM cannot
    be asked from here (not installed, controller down)."""
    states = job_states(job_ids)
    reachable = bool(states) or bool(_run_quietly(["sinfo", "-h", "-o", "%P"]).strip())
    return {
        job: (states[job]["state"] not in ENDED) if job in states else (False if reachable else None)
        for job in job_ids
    }


def _run_quietly(command: list[str]) -> str:
    """stdout of a SLURM query, or "" when the tool is missing or the cluster does not answer."""
    if shutil.which(command[0]) is None:
        return ""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def _controller_states(arrays: str) -> dict[str, tuple[str, str, int, str]]:
    fields = "JobArrayID:|,State:|,Reason:|,RestartCnt"  # -r: one line per array task
    out = _run_quietly(["squeue", "-h", "-r", "-t", "all", "-O", fields, "-j", arrays])
    found = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 4 and parts[3].isdigit():
            found[parts[0]] = (parts[1], parts[2], int(parts[3]), "")
    return found


def _accounting_states(arrays: str) -> dict[str, tuple[str, str, int, str]]:
    # -D lists every start of a requeued job, oldest first: the earlier ones count the restarts
    out = _run_quietly(["sacct", "-X", "-D", "-n", "-P", "-o", "JobID,State,Reason,ExitCode", "-j", arrays])
    history: dict[str, list[list[str]]] = defaultdict(list)
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 4:
            for job in _expand_ids(parts[0]):
                history[job].append([(parts[1].split() or ["UNKNOWN"])[0], *parts[2:]])
    found = {}
    for job, records in history.items():
        state, reason, exit_code = records[-1]
        restarts = sum(r[0] in ("REQUEUED", "PREEMPTED") for r in records[:-1])
        found[job] = (state, reason, restarts, exit_code)
    return found


def _describe(state: str, reason: str, restarts: int, exit_code: str) -> dict[str, Any]:
    reason = "" if reason in ("None", "NonZeroExitCode") else reason  # the latter: FAILED says it
    if state == "PENDING" and restarts:
        return {
            "state": "REQUEUED",
            "reason": f"requeued {restarts}x, waiting: {reason}",
            "restarts": restarts,
        }
    if state in FINISHED_REASONS:
        detail = [
            FINISHED_REASONS[state],
            reason,
            f"exit code {exit_code}" if exit_code not in ("", "0:0") else "",
        ]
        return {"state": state, "reason": ", ".join(d for d in detail if d), "restarts": restarts}
    if state != "PENDING" and restarts:
        reason = ", ".join(r for r in (f"requeued {restarts}x", reason) if r)
    return {"state": state, "reason": reason, "restarts": restarts}


def cancel(job_ids: Sequence[str]) -> None:
    """scancel the jobs; the loop checkpoints on the SIGTERM, so `bench run` can resume them later."""
    if not job_ids:
        return
    _require("scancel")
    done = subprocess.run(["scancel", *job_ids], capture_output=True, text=True, timeout=60)
    # already-finished jobs are fine; anything else (no controller, bad id) is reported
    errors = [line for line in done.stderr.splitlines() if "already completing or completed" not in line]
    if done.returncode != 0 and errors:
        raise RuntimeError(f"scancel failed: {errors[0]}")


# ---- plan --------------------------------------------------------------------------------------------


@dataclass
class Estimate:
    """The compute a set of runs needs: per agent, runs x budget x seconds per env frame."""

    rows: list[dict[str, Any]]
    gpus_per_job: int
    profile: str | None

    @property
    def job_hours(self) -> float:
        return sum(r["hours"] for r in self.rows if r["hours"] is not None)

    @property
    def gpu_hours(self) -> float:
        return self.job_hours * self.gpus_per_job

    @property
    def unknown(self) -> list[str]:
        return [r["agent"] for r in self.rows if r["hours"] is None]

    def __str__(self) -> str:
        lines = [
            f"estimated compute (profile: {self.profile or 'none'}, {self.gpus_per_job} GPU(s) per job):"
        ]
        for r in self.rows:
            if r["hours"] is None:
                cost = "unknown: no speed (bench plan --measure, or seconds_per_step in the profile)"
            else:
                cost = (
                    f"{r['seconds_per_step']:.4g} s/frame ({r['source']}) -> {_hours(r['hours'])} job-hours"
                )
            lines.append(f"  {r['agent']:<28} {r['runs']:>4} runs, {r['frames']:>12,} frames  {cost}")
        total = f"  total: {_hours(self.job_hours)} job-hours"
        if self.gpus_per_job:
            total += f" = {_hours(self.gpu_hours)} GPU-hours"
        if self.unknown:
            total += f" (without {', '.join(self.unknown)})"
        return "\n".join([*lines, total])


def _hours(hours: float) -> str:
    """One decimal from an hour up; two significant digits below (a smoke sweep is minutes, not 0.0 h)."""
    return f"{hours:.1f}" if hours >= 1 else f"{hours:.2g}"


def updates_per_frame(agent: str, suite: str, config: Mapping[str, Any]) -> float:
    """Updates per env frame: train_ratio replayed steps per agent step (DV3 convention) over the steps one
    update replays (as the agent module counts them: batch x sequence), over action_repeat frames."""
    replayed = agents.replayed_steps_per_update(agent, dict(config["agent"]), suite)
    return config["run"]["train_ratio"] / replayed / config["env"].get("action_repeat", 1)


def estimate_hours(
    specs: Sequence[Any],
    configs: Mapping[Any, Mapping[str, Any]],
    profile: Profile | None = None,
    *,
    ms_per_update: Mapping[str, float],
) -> Estimate:
    """Compute for the runs ``specs`` (RunSpec-like: ``.agent``) with configs ``configs[spec]``:
    runs x budget (env frames) x seconds per frame, per agent.

    Seconds per frame come from the profile (that cluster's own number) or else from the measured update
    time (``ms_per_update``: bench.speed's shipped measurements or ``bench plan --measure``) times the
    run's updates per frame; env
    stepping is left out (updates dominate on a GPU). An agent with neither is listed as unknown.
    """
    measured = dict(ms_per_update)
    own = dict(profile.seconds_per_step) if profile else {}
    rows: dict[str, dict[str, Any]] = {}
    for spec in specs:
        config, agent = configs[spec], spec.agent
        row = rows.setdefault(
            agent, {"agent": agent, "runs": 0, "frames": 0, "hours": 0.0, "source": "profile"}
        )
        row["runs"] += 1
        row["frames"] += int(config["run"]["steps"])
        if agent in own:
            seconds = own[agent]
        elif agent in measured:
            seconds = measured[agent] / 1000 * updates_per_frame(agent, spec.suite, config)
            row["source"] = "measured"
        else:
            seconds, row["source"] = None, "none"
        row["hours"] = (
            None
            if seconds is None or row["hours"] is None
            else row["hours"] + config["run"]["steps"] * seconds / 3600
        )
    for row in rows.values():
        row["seconds_per_step"] = (
            None if row["hours"] is None else row["hours"] * 3600 / max(row["frames"], 1)
        )
    ordered = [rows[a] for a in sorted(rows)]
    return Estimate(ordered, profile.gpus_per_job if profile else 0, profile.name if profile else None)
