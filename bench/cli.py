"""`bench run | sweep | plan | status | cancel | report | render | imagine | list` — parsing and printing only.

User mistakes print one line (`bench: error: ...`) and exit 2 with nothing written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, NoReturn

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering unless the user chose otherwise

import agents  # noqa: E402
import suites  # noqa: E402
from bench import config as cfg  # noqa: E402
from bench import store  # noqa: E402
from bench.progress import format_duration, run_eta, run_rate, sweep_rate_eta  # noqa: E402
from bench.replay import check_sampling  # noqa: E402
from bench.spec import RunSpec, expand  # noqa: E402


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _fail(message: str) -> NoReturn:
    print(f"bench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


# --- run / sweep / plan ------------------------------------------------------------------------------
def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--suite", required=True, help="suite name (bench list suites)")
    p.add_argument(
        "--tasks", default="", help="comma-separated tasks, or 'all' (default: the suite's paper tasks)"
    )
    p.add_argument(
        "--agents", required=True, help="comma-separated agent names, or 'all' (bench list agents)"
    )
    p.add_argument("--seeds", type=int, default=1, help="number of seeds, 0..N-1 (default 1)")
    p.add_argument("--preset", default=cfg.DEFAULT_PRESET, help=f"one of {', '.join(cfg.PRESETS)}")
    p.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    p.add_argument(
        "--sweep", dest="sweeps", action="append", default=[], metavar="KEY=V1,V2", help="grid axis"
    )
    p.add_argument("--executor", default="inline", choices=["inline", "local", "slurm"])
    p.add_argument("--jobs", type=int, default=0, help="parallel runs for --executor local (default: cores)")
    p.add_argument("--profile", default="", help="SLURM profile YAML (with --executor slurm)")
    p.add_argument("--results", default="results", help="results directory (default ./results)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print each planned run's resolved config as YAML, write nothing",
    )


def _specs(args: argparse.Namespace) -> list[RunSpec]:
    if args.suite not in suites.names():
        raise cfg.ConfigError(f"unknown suite '{args.suite}'; valid: {', '.join(suites.names())}")
    suite = suites.get(args.suite)
    if args.tasks == "all":
        tasks = suite.tasks()
    elif args.tasks:
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    else:
        tasks = list(suite.default_tasks)
    names = (
        list(agents.ALL) if args.agents == "all" else [a.strip() for a in args.agents.split(",") if a.strip()]
    )
    if args.seeds < 1:
        raise cfg.ConfigError(f"--seeds {args.seeds}: must be at least 1")
    if not tasks or not names:
        raise cfg.ConfigError("no tasks or no agents given")
    specs = expand(args.suite, tasks, names, range(args.seeds), args.preset, args.sets, args.sweeps)
    return specs


def _resolve_all(specs: list[RunSpec], skip_incompatible: bool) -> dict[RunSpec, dict[str, Any]]:
    """Resolve and check every config (suite env options, agent values) before anything is written.

    An agent that cannot read the suite's observations or act in its action space (TD-MPC on Atari's
    discrete actions, DreamerPro on state-only gym) is refused; with ``--agents all`` (``skip_incompatible``)
    its runs are left out instead, one line per agent and reason. The returned dict holds the kept runs.
    """
    configs: dict[RunSpec, dict[str, Any]] = {}
    verdicts: dict[tuple[str, str, Any], str | None] = {}  # (agent, task, overrides) -> reason to skip
    discrete: dict[str, bool] = {}
    skipped: dict[tuple[str, str], list[str]] = defaultdict(list)  # (agent, reason) -> tasks
    for spec in specs:
        config = spec.resolve()
        key = (spec.agent, spec.task, spec.overrides)
        if key not in verdicts:
            suite = suites.get(spec.suite)
            try:
                suite.check_config(spec.task, config["env"])
                agents.check_config(spec.agent, config["agent"], spec.suite)
                check_sampling(config["run"], bool(config["agent"].get("per")))
            except ValueError as error:
                raise cfg.ConfigError(str(error).splitlines()[0]) from None
            if config["run"]["steps"] <= 0 or config["run"]["eval_every"] <= 0:
                raise cfg.ConfigError("run.steps and run.eval_every must be positive")
            if spec.task not in discrete:
                discrete[spec.task] = suite.discrete_actions(spec.task)
            try:
                keys = suites.observation_keys(config["env"])
                agents.check_observations(spec.agent, keys, config["agent"], spec.suite)
                agents.check_actions(spec.agent, discrete[spec.task], spec.suite)
                verdicts[key] = None
            except ValueError as error:
                reason = str(error).splitlines()[0]
                if not skip_incompatible:
                    raise cfg.ConfigError(f"{spec.agent} on {spec.suite}/{spec.task}: {reason}") from None
                verdicts[key] = reason
                skipped[(spec.agent, reason)].append(spec.task)
        if verdicts[key] is None:
            configs[spec] = config
    planned = {spec.task for spec in specs}
    for (agent, reason), tasks in skipped.items():
        unique = list(dict.fromkeys(tasks))
        where = (
            f"all {len(unique)} tasks" if set(unique) == planned and len(unique) > 3 else ", ".join(unique)
        )
        print(f"skipped {agent} on {specs[0].suite} ({where}): {reason}", file=sys.stderr)
    if not configs:
        raise cfg.ConfigError("no agent given can run on these tasks (see the skipped lines above)")
    return configs


def _classify(specs: list[RunSpec], results: Path) -> dict[RunSpec, dict[str, Any]]:
    return {spec: store.read_status(spec.run_dir(results)) for spec in specs}


def _print_plan(
    specs: list[RunSpec], statuses: dict[RunSpec, dict[str, Any]], configs: dict, full: bool
) -> None:
    counts = Counter(s["state"] for s in statuses.values())
    shown = specs if full or len(specs) <= 40 else specs[:20]
    for spec in shown:
        st = statuses[spec]
        budget = configs[spec]["run"]["steps"]
        pair = agents.resolve(spec.agent, spec.suite).pair
        print(f"  {spec.run_id:<60} {pair:<20} {st['state']:<9} {st.get('step', 0):>9}/{budget} frames")
    if len(shown) < len(specs):
        print(f"  ... and {len(specs) - len(shown)} more")
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    print(f"{len(specs)} runs: {summary}")


def cmd_run(args: argparse.Namespace, plan_only: bool = False) -> int:
    specs = _specs(args)
    suite = suites.get(args.suite)
    suite.check_available()
    configs = _resolve_all(specs, skip_incompatible=args.agents == "all")
    specs = [spec for spec in specs if spec in configs]
    if args.print_config:
        _print_configs(specs, configs)
        return 0
    if any(config["log"]["wandb"] for config in configs.values()):
        from bench import wandb_sink

        wandb_sink.check_installed()
    results = Path(args.results)
    store.check_results_root(results)
    profile = None
    if args.executor == "slurm" or plan_only:
        if args.profile:
            from bench import slurm

            profile = _user_call(slurm.load_profile, args.profile)
        elif args.executor == "slurm":
            raise cfg.ConfigError("--executor slurm needs --profile slurm/profiles/NAME.yaml")
    statuses = _classify(specs, results)
    if plan_only:
        _print_plan(specs, statuses, configs, full=False)
        from bench import slurm

        todo = [s for s in specs if statuses[s]["state"] != "done"]
        print(
            slurm.estimate_hours(
                todo, configs, profile, ms_per_update=_update_ms(todo, configs, profile, args.measure)
            )
        )
        return 0
    if args.dry_run:
        _print_plan(specs, statuses, configs, full=True)
        print("dry run: nothing written")
        return 0
    if args.jobs < 0:
        raise cfg.ConfigError(f"--jobs {args.jobs}: must be positive")
    ttl = min(config["run"]["lease_ttl_s"] for config in configs.values())
    if ttl <= 0:
        raise cfg.ConfigError(f"run.lease_ttl_s={ttl:g}: must be positive (seconds)")

    store.init_results_root(results)
    unfinished = [spec for spec in specs if statuses[spec]["state"] != "done"]
    owners = store.lease_owners(spec.run_dir(results) for spec in unfinished)
    todo = []
    for spec in unfinished:
        owner = owners.get(spec.run_dir(results))
        if owner:  # another command, host or SLURM job has it; the run itself re-checks when it starts
            print(f"  {spec.run_id}: {store.describe_holder(owner)} — skipped", file=sys.stderr)
            continue
        todo.append(spec)
    _print_plan(specs, statuses, configs, full=False)
    run_dirs = [_prepare(spec, results, configs[spec]) for spec in todo]
    if not run_dirs:
        print("nothing to do: every run is done" + (" or owned elsewhere" if owners else ""))
        return 0
    print(f"running {len(run_dirs)} run(s) with the {args.executor} executor")
    if args.executor == "slurm":
        from bench import slurm

        array_id = slurm.submit(run_dirs, profile, results)
        if array_id is None:
            print("nothing submitted: other commands took every run meanwhile")
            return 0
        print(
            f"submitted job array {array_id} ({len(run_dirs)} runs); follow it with: bench status --results {results}"
        )
        return 0
    from bench import launch

    if args.executor == "local":
        outcome = launch.run_local(run_dirs, args.jobs or (os.cpu_count() or 1), results)
    else:
        outcome = launch.run_inline(run_dirs)
    counts = Counter(outcome.values())
    print("finished: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    for run_dir, state in outcome.items():
        if state == "failed":
            error = store.read_status(Path(run_dir)).get("error")
            print(f"  failed: {Path(run_dir).relative_to(results)}: {error}")
    return 1 if counts.get("failed") else 0


def _print_configs(specs: list[RunSpec], configs: dict[RunSpec, dict[str, Any]]) -> None:
    """Every planned run's resolved config, one YAML document each (the run id in a comment)."""
    import yaml

    for spec in specs:
        print(f"--- # {spec.run_id}")
        print(yaml.safe_dump(configs[spec], sort_keys=False, default_flow_style=False), end="")


def _update_ms(
    specs: list[RunSpec], configs: dict[RunSpec, dict[str, Any]], profile: Any, measure: bool
) -> dict[str, float]:
    """Milliseconds per update by agent for the estimate: timed here with ``--measure``, else the shipped
    measurement of the profile's device kind (a GPU when its jobs get one)."""
    from bench import speed

    if measure:
        measured = {}
        for spec in specs:
            if spec.agent not in measured:
                discrete = suites.get(spec.suite).discrete_actions(spec.task)
                measured[spec.agent] = speed.measure(spec.agent, configs[spec], discrete, spec.suite)
                print(f"measured {spec.agent}: {measured[spec.agent]:.0f} ms per update on this machine")
        return measured
    measurements = speed.shipped()
    wanted = "cuda" if profile and profile.gpus_per_job else "cpu"
    device = wanted if wanted in measurements else "cpu"
    record = measurements[device]
    print(
        f"update times: the {device} measurement shipped with harmonybench ({record['hardware']}, "
        f"{record['preset']} preset, {record['measured']}); --measure times them here"
    )
    if any(spec.preset != record["preset"] for spec in specs):
        print(f"  no shipped time for other presets than {record['preset']}: run `bench plan --measure`")
    if device != wanted:
        print(
            "  no GPU measurement is shipped, so these CPU times overstate a GPU job: run `bench plan --measure`"
            " on a GPU node or set seconds_per_step in the profile"
        )
    table, out = record["ms_per_update"], {}
    for spec in specs:  # the table is keyed by what a name means on the suite: <backbone>+<balancer>
        if spec.preset != record["preset"]:  # a smaller model's update costs far less: leave it unknown
            continue
        entry = agents.resolve(spec.agent, spec.suite)
        fixed = f"{entry.backbone}+fixed"
        if spec.agent not in out and (entry.pair in table or fixed in table):
            out[spec.agent] = table.get(entry.pair, table.get(fixed))
            if entry.pair not in table:
                print(f"  {entry.pair} was not measured: {spec.agent} uses {fixed}'s time")
    return out


def _prepare(spec: RunSpec, results: Path, config: dict[str, Any]) -> Path:
    from bench import launch

    return launch.prepare(spec, results, config)


# --- status / cancel ---------------------------------------------------------------------------------
def _existing_results(path: str) -> Path:
    results = Path(path)
    if not results.is_dir():
        raise cfg.ConfigError(f"--results {results}: no such directory")
    if not (results / store.MARKER).exists():
        raise cfg.ConfigError(
            f"--results {results}: not a harmonybench results directory (no {store.MARKER})"
        )
    return results


def _collect(results: Path) -> list[dict[str, Any]]:
    rows = []
    run_dirs = list(store.iter_run_dirs(results))
    owners = store.lease_owners(run_dirs)
    for run_dir in run_dirs:
        suite, task, variant, seed = run_dir.relative_to(results).parts
        status = store.read_status(run_dir)
        if run_dir in owners:
            status["owner"] = store.describe_holder(owners[run_dir])
        elif status.get("state") == "running":
            status["state"] = "stalled"  # no one owns it any more: the next `bench run` resumes it
        rows.append(
            {
                "suite": suite,
                "task": task,
                "variant": variant,
                "seed": seed,
                "run_dir": str(run_dir),
                **status,
            }
        )
    return rows


def _attach_slurm(rows: list[dict[str, Any]]) -> None:
    ids = [
        r["slurm"]["job_id"] for r in rows if isinstance(r.get("slurm"), dict) and r["slurm"].get("job_id")
    ]
    if not ids:
        return
    from bench import slurm

    states = slurm.job_states(ids)
    for row in rows:
        job = row.get("slurm")
        if isinstance(job, dict) and job.get("job_id") in states:
            row["slurm_state"] = states[job["job_id"]]


def cmd_status(args: argparse.Namespace) -> int:
    results = _existing_results(args.results)
    rows = _collect(results)
    _attach_slurm(rows)
    now = time.time()
    for row in rows:  # the measured frames/s (recent train rows) and the ETA in seconds (None: unknown)
        row["fps"] = run_rate(Path(row["run_dir"])) if row.get("state") != "pending" else 0.0
        eta = run_eta(row, row["fps"], now)
        row["eta_s"] = eta if math.isfinite(eta) else None
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    if not rows:
        print(f"no runs under {results}")
        return 0
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["suite"], row["variant"])].append(row)
    states = ["done", "running", "preempted", "stalled", "failed", "pending"]
    header = f"{'suite':<10} {'agent':<34} " + " ".join(f"{s:>9}" for s in states) + f" {'progress':>9}"
    print(header + f" {'frames/s':>9} {'eta':>7}")
    for (suite, variant), members in sorted(groups.items()):
        counts = Counter(m.get("state", "pending") for m in members)
        steps = sum(m.get("step") or 0 for m in members)
        budget = sum(m.get("budget") or 0 for m in members)
        progress = f"{100 * steps / budget:.0f}%" if budget else "-"
        print(
            f"{suite:<10} {variant:<34} "
            + " ".join(f"{counts.get(s, 0):>9}" for s in states)
            + f" {progress:>9}"
            + _rate_eta_columns(members, now)
        )
    print(f"{'all':<45}" + " " * (10 * len(states)) + f" {'':>9}" + _rate_eta_columns(rows, now))
    _print_run_rates(rows)
    jobs = [r for r in rows if r.get("slurm_state") or r.get("owner") or r.get("state") in ("failed",)]
    for row in jobs:
        job = row.get("slurm") or {}
        slurm_state = row.get("slurm_state") or {}
        where = f" job {job.get('job_id')} {slurm_state.get('state', '')} {slurm_state.get('reason', '')}".rstrip()
        where = (where if slurm_state else "") + (f" ({row['owner']})" if row.get("owner") else "")
        error = f" error: {row['error']}" if row.get("error") else ""
        print(
            f"  {row['suite']}/{row['task']}/{row['variant']}/{row['seed']}: {row.get('state')}{where}{error}"
        )
    return 0


def _rate_eta_columns(runs: list[dict[str, Any]], now: float) -> str:
    """frames/s of the running runs together, and the ETA of the unfinished ones at that rate."""
    if all(run.get("state") == "done" for run in runs):
        return f" {'-':>9} {'done':>7}"
    rate, eta = sweep_rate_eta([(run, run["fps"]) for run in runs], now)
    return f" {rate:>9.1f} {format_duration(eta):>7}"


def _print_run_rates(rows: list[dict[str, Any]], limit: int = 40) -> None:
    """One line per started run, unfinished ones first: frames, measured frames/s, ETA (when resumed, for a
    stalled or preempted run)."""
    started = [r for r in rows if r.get("state") not in ("pending", "failed")]
    started.sort(key=lambda r: r.get("state") == "done")
    if not started:
        return
    print(f"{'run':<62} {'state':<9} {'frames':>17} {'frames/s':>9} {'eta':>7}")
    for row in started[:limit]:
        run_id = f"{row['suite']}/{row['task']}/{row['variant']}/{row['seed']}"
        frames = f"{row.get('step') or 0}/{row.get('budget') or 0}"
        eta_s = math.inf if row["eta_s"] is None else row["eta_s"]
        eta = "done" if row.get("state") == "done" else format_duration(eta_s)
        print(f"  {run_id:<60} {row.get('state', ''):<9} {frames:>17} {row['fps']:>9.1f} {eta:>7}")
    if len(started) > limit:
        print(f"  ... and {len(started) - limit} more (bench status --json lists every run)")


def cmd_cancel(args: argparse.Namespace) -> int:
    results = _existing_results(args.results)
    rows = [r for r in _collect(results) if _matches(r, args)]
    ids = sorted(
        {r["slurm"]["job_id"] for r in rows if isinstance(r.get("slurm"), dict) and r.get("state") != "done"}
    )
    if not ids:
        print("no SLURM jobs to cancel")
        return 0
    from bench import slurm

    slurm.cancel(ids)
    print(f"cancelled {len(ids)} job(s): {' '.join(ids)}")
    return 0


def _matches(row: dict[str, Any], args: argparse.Namespace) -> bool:
    return all(
        not wanted or row[field] in wanted.split(",")
        for field, wanted in (("suite", args.suite), ("task", args.tasks), ("variant", args.agents))
    )


# --- list / report / render ----------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "agents":
        for name, entry in agents.AGENTS.items():
            print(f"{name:<14} {entry.description}")
        print(f"{'<b>+<bal>':<14} any backbone ({', '.join(agents.BACKBONES)}) with any balancer")
        for name, text in agents.BALANCERS.items():
            print(f"  balancer {name:<12} {text}")
    elif args.what == "suites":
        for name in suites.names():
            print(f"{name:<10} {suites.describe(name)}")
    elif args.what == "published":
        from analysis import catalogue

        print(f"published baselines for `bench report --published NAME` (cache: {catalogue.cache_dir()})")
        for entry in catalogue.CATALOGUE.values():
            print(f"{entry.name:<42} format {entry.format}  {entry.what}")
            print(f"{'':<42} {entry.url()}  sha256 {entry.sha256}")
    else:
        if not args.suite:
            raise cfg.ConfigError("bench list tasks SUITE: name a suite; valid: " + ", ".join(suites.names()))
        if args.suite not in suites.names():
            raise cfg.ConfigError(f"unknown suite '{args.suite}'; valid: {', '.join(suites.names())}")
        suite = suites.get(args.suite)
        for task in suite.tasks():
            print(f"{task}{'  (paper default)' if task in suite.default_tasks else ''}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from analysis import report

    task_images = None
    if args.imagine:
        if not args.results:
            raise cfg.ConfigError("--imagine needs a results directory (imagination comes from checkpoints)")
        from bench import imagine

        results = _existing_results(args.results)
        strips = Path(args.out) / "imagine"
        task_images = _user_call(lambda: imagine.report_strips(results, strips, _split(args.agents)))
    path = _user_call(
        lambda: report.build_report(
            args.results,
            args.published,
            _split(args.agents),
            args.out,
            reps=args.reps,
            partial=args.partial,
            reference=args.reference,
            baseline=args.baseline,
            cache=args.cache,
            skip_damaged=args.skip_damaged,
            task_images=task_images,
        )
    )
    print(f"report written: {path}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    if args.run:
        from bench import imagine

        paths = _user_call(lambda: imagine.render_run(args.run, args.out or "episode"))
        print("video written: " + ", ".join(map(str, paths)))
        return 0
    if not args.suite or not args.task:
        raise cfg.ConfigError("bench render needs --suite and --task (random actions), or --run RUN_DIR")
    if args.suite not in suites.names():
        raise cfg.ConfigError(f"unknown suite '{args.suite}'; valid: {', '.join(suites.names())}")
    suite = suites.get(args.suite)
    suite.check_available()
    config = cfg.merge(cfg.HARNESS_DEFAULTS, suite.config(args.preset))
    for text in args.sets:
        key, value = cfg.parse_assignment(text)
        if not key.startswith("env."):
            raise cfg.ConfigError(f"--set {key}: bench render takes env.* keys only")
        cfg.apply_override(config, key, cfg.parse_value(value))
    try:
        suite.check_config(args.task, config["env"])
    except ValueError as error:
        raise cfg.ConfigError(str(error).splitlines()[0]) from None
    from suites import render

    out = _user_call(
        render.render_frames,
        args.suite,
        args.task,
        args.seed,
        config["env"],
        args.episodes,
        args.out or "frames.png",
        args.gif,
    )
    print(f"frames written: {out}")
    return 0


def cmd_imagine(args: argparse.Namespace) -> int:
    from bench import imagine

    paths = _user_call(
        lambda: imagine.imagine(args.run_dir, args.episodes, args.context, args.horizon, args.out)
    )
    print("written: " + ", ".join(map(str, paths)))
    return 0


def _user_call(function: Any, *args: Any) -> Any:
    """Call a library entry point whose ValueErrors are, by contract, one-line user errors."""
    try:
        return function(*args)
    except ValueError as error:
        raise cfg.ConfigError(str(error).splitlines()[0]) from None


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bench", description="harmonybench: world-model agents x suites x seeds, and their statistics"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="expand a plan into runs, skip done ones, resume and run the rest")
    _add_run_args(run)
    sweep = sub.add_parser("sweep", help="same as run; give one or more --sweep axes")
    _add_run_args(sweep)
    plan = sub.add_parser("plan", help="what `run` would do, with the estimated compute")
    _add_run_args(plan)
    plan.add_argument(
        "--measure",
        action="store_true",
        help="time a few updates of each planned agent on this machine instead of the shipped measurements",
    )

    status = sub.add_parser("status", help="runs per suite/agent: done, running, failed, pending, progress")
    status.add_argument("--results", default="results")
    status.add_argument("--json", action="store_true")

    cancel = sub.add_parser("cancel", help="cancel the SLURM jobs of matching runs")
    cancel.add_argument("--results", default="results")
    cancel.add_argument("--suite", default="")
    cancel.add_argument("--tasks", default="")
    cancel.add_argument("--agents", default="", help="comma-separated run variants (agent directory names)")

    lister = sub.add_parser("list", help="agents, suites, the tasks of a suite, or published baselines")
    lister.add_argument("what", choices=["agents", "suites", "tasks", "published"])
    lister.add_argument("suite", nargs="?", default="")

    report = sub.add_parser("report", help="statistics and figures from a results directory")
    report.add_argument(
        "results", nargs="?", default=None, help="results directory (optional with --published)"
    )
    report.add_argument(
        "--published",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="published score files (one or more; the flag may repeat)",
    )
    report.add_argument("--agents", default=None, help="comma-separated agents to include")
    report.add_argument("--out", required=True, help="output directory for figures and report")
    report.add_argument("--reps", type=int, default=50_000, help="bootstrap resamples (default 50,000)")
    report.add_argument(
        "--partial", action="store_true", help="include unfinished runs up to their last eval"
    )
    report.add_argument(
        "--reference", default=None, help="JSON {suite: {task: [low, high]}} for min-max scores"
    )
    report.add_argument(
        "--baseline", default=None, help="agent the others' P(improvement) is against (default: lowest IQM)"
    )
    report.add_argument(
        "--cache",
        default=None,
        help="cache for published baselines named by --published (default $HARMONYBENCH_CACHE, else "
        "~/.cache/harmonybench)",
    )
    report.add_argument(
        "--skip-damaged", action="store_true", help="leave runs with damaged files out instead of stopping"
    )
    report.add_argument(
        "--imagine",
        action="store_true",
        help="add an imagination strip (bench imagine) per agent and task from runs with a checkpoint",
    )

    render = sub.add_parser(
        "render", help="a grid of observation frames (what the agent sees), or a trained agent's episode"
    )
    render.add_argument("--suite", default="")
    render.add_argument("--task", default="")
    render.add_argument(
        "--run", default="", metavar="RUN_DIR", help="a trained run's eval episode as OUT.mp4 and OUT.gif"
    )
    render.add_argument("--episodes", type=int, default=4)
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--preset", default=cfg.DEFAULT_PRESET)
    render.add_argument("--set", dest="sets", action="append", default=[], metavar="env.KEY=VALUE")
    render.add_argument("--out", default=None, help="default frames.png; with --run, episode")
    render.add_argument("--gif", default=None, help="also write one episode as a GIF/MP4 here")

    imag = sub.add_parser("imagine", help="what a trained run's world model predicts open loop, as videos")
    imag.add_argument("run_dir", metavar="RUN_DIR", help="results/SUITE/TASK/VARIANT/seedK with a checkpoint")
    imag.add_argument("--episodes", type=int, default=1, help="eval episodes (default 1)")
    imag.add_argument("--context", type=int, default=5, help="steps seen before the open loop (default 5)")
    imag.add_argument("--horizon", type=int, default=45, help="steps predicted open loop (default 45)")
    imag.add_argument("--out", default="imagine", help="output directory (default ./imagine)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from suites.base import SuiteUnavailable

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handlers = {
            "run": cmd_run,
            "sweep": cmd_run,
            "plan": lambda a: cmd_run(a, plan_only=True),
            "status": cmd_status,
            "cancel": cmd_cancel,
            "list": cmd_list,
            "report": cmd_report,
            "render": cmd_render,
            "imagine": cmd_imagine,
        }
        if args.command == "sweep" and not args.sweeps:
            raise cfg.ConfigError("bench sweep needs at least one --sweep KEY=V1,V2")
        return handlers[args.command](args)
    except UsageError as error:
        _fail(str(error))
    except (cfg.ConfigError, SuiteUnavailable) as error:
        _fail(str(error))


if __name__ == "__main__":
    sys.exit(main())
