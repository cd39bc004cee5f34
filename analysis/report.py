"""`bench report`: load runs and published scores, normalise, aggregate with CIs, draw, write md + html.

The answer comes first. Per suite (agents are compared within a suite, on the tasks they all have): a summary
table ranking the agents by IQM with 95% CIs (mean, median, optimality gap beside it) and the probability
that each agent improves on one baseline agent, then the sample-efficiency figure (IQM). Details follow,
collapsed in report.html: every aggregate's intervals, performance profiles, every pairwise probability of
improvement, the loss-scale diagnostic from train.parquet, and one section per task (mean final score of
each agent with its CI, the task's learning curves, and optional extra images such as imagination strips).
Normalised scores are shown in percent (human-normalised 136.4%), raw returns as they are.

Extra images per (suite, task, agent label) go in through ``build_report(..., task_images=...)``: a mapping
``{(suite, task, label): path}`` (PNG, GIF, JPEG or WebP) whose images appear, captioned with the label, in
that task's section (embedded in report.html, linked from report.md). The label is the report's agent label:
a results run's variant directory (``harmonydream``, ``dreamerv3-1a2b3c4d``) or a published file's
``method (origin)``.
"""

from __future__ import annotations

import base64
import html
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import catalogue, plots, stats
from analysis.bootstrap import Scores
from analysis.load import AnalysisWarning, load, load_train
from analysis.normalise import Reference, add_scores
from analysis.published import load_published
from analysis.scores import curve_scores, final_scores

PROFILE_POINTS = 101
MILESTONES = (0.25, 0.5, 0.75, 1.0)  # fractions of the curve's steps shown in the sample-efficiency table
SUMMARY_METRICS = ("iqm", "mean", "median", "optimality_gap")
METRIC_NAMES = {"iqm": "IQM", "mean": "mean", "median": "median", "optimality_gap": "optimality gap"}
IMAGE_TYPES = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
IMAGE_TYPES[".webp"] = "image/webp"

TaskImages = Mapping[tuple[str, str, str], str | Path]  # (suite, task, agent label) -> image file


@dataclass
class SuiteReport:
    """What one suite's part of the report shows; tables hold fractions, formatting happens on writing."""

    suite: str
    score_name: str
    percent: bool  # a normalised score, shown in percent
    notes: list[str]  # what the reader must know to read the summary (tasks left out, no comparison)
    summary: pd.DataFrame  # one row per label, ranked by IQM: <metric>, <metric>_lower, <metric>_upper, ...
    baseline: str | None  # the label P(improvement) is measured against; None when agents are not compared
    baseline_reason: str
    milestones: pd.DataFrame  # label, step, estimate, lower, upper: the IQM curve at a few steps
    improvement: pd.DataFrame  # every ordered pair: x, y, estimate, lower, upper
    per_task: pd.DataFrame  # label, task, estimate, lower, upper, runs
    lead_figure: Path | None
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, png) for the details
    task_figures: dict[str, Path] = field(default_factory=dict)
    detail_notes: list[str] = field(default_factory=list)


def build_report(
    results: str | None,
    published: Sequence[str],
    agents: Sequence[str] | None,
    out: str,
    *,
    reps: int = 50_000,
    partial: bool = False,
    reference: str | Reference | None = None,
    seed: int = 0,
    baseline: str | None = None,
    cache: str | None = None,
    skip_damaged: bool = False,
    task_images: TaskImages | None = None,
) -> Path:
    """Write figures (PNG + PDF), report.md and a self-contained report.html under ``out``; return the html.

    ``published`` holds score files, directories of them, or names from ``analysis.catalogue`` (fetched into
    ``cache`` on first use). ``baseline`` names the agent every other agent's probability of improvement is
    measured against (default: the agent with the lowest IQM in each suite). ``task_images`` adds images to
    the per-task sections (see the module doc).

    Raises ValueError with one line for user errors and damaged inputs (missing/empty directory, unreadable
    published file, unreadable spec.json / eval.parquet / train.parquet, unknown agent or baseline), before
    anything is written. ``skip_damaged`` leaves the runs with damaged files out instead, and lists them in
    the report; unfinished runs are always left out (``partial`` keeps them) and listed.
    """
    frame, notes, left_out = _gather(results, published, partial, cache, skip_damaged)
    frame = _select_agents(frame, agents)
    images = _check_images(task_images)
    scored = add_scores(frame, _reference(reference))
    train = _train_frame(results, frame, partial, skip_damaged)
    # with skip_damaged, a run whose train.parquet is damaged keeps its scores; only its losses go
    for path, why in train.attrs.get("damaged", {}).items():
        left_out[path] = f"damaged ({why}); its losses are left out of the loss-scale diagnostic"
    _check_baseline(baseline, frame)
    fig_dir = Path(out) / "figures"
    sections = []
    for suite, rows in scored[scored["metric"] == "score"].groupby("suite", sort=True):
        suite = str(suite)
        suite_train = train[train["suite"] == suite] if not train.empty else train
        sections.append(
            _analyse_suite(
                suite,
                rows,
                scored.attrs["normalisation"][suite],
                scored.attrs["normalised"][suite],
                suite_train,
                baseline,
                fig_dir,
                reps,
                seed,
            )
        )
    inputs = [f"{suite}: {how}" for suite, how in scored.attrs["normalisation"].items()] + notes
    return _write(Path(out), inputs, left_out, sections, images, reps)


# --- inputs --------------------------------------------------------------------------------------------
def _gather(results, published, partial, cache, skip_damaged) -> tuple[pd.DataFrame, list[str], dict]:
    if not results and not published:
        raise ValueError("nothing to report: give a results directory and/or --published score files")
    frames, notes, left_out = [], [], {}
    if results:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AnalysisWarning)
            runs = load(results, partial=partial)
        _refuse_damaged(runs.attrs.get("damaged", {}), skip_damaged)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        frames.append(runs)
        left_out = dict(runs.attrs.get("left_out", {}))
    for path in _expand(published, cache):
        table = load_published(path)
        notes.extend(table.attrs["notes"])
        frames.append(table)
    return pd.concat(frames, ignore_index=True), notes, left_out


def _refuse_damaged(damaged: Mapping[str, str], skip_damaged: bool) -> None:
    if damaged and not skip_damaged:
        path, why = next(iter(damaged.items()))
        more = f" (and {len(damaged) - 1} more damaged file(s))" if len(damaged) > 1 else ""
        raise ValueError(
            f"damaged input file {path}: {why}{more}; repair or remove it, or pass --skip-damaged to leave "
            "its run out"
        )


def _expand(published: Sequence[str], cache: str | None) -> list[Path]:
    """Published paths: a directory stands for the score files in it, a catalogue name for its cached copy."""
    paths = []
    for item in published:
        path = Path(item)
        if path.is_dir():
            found = sorted([*path.glob("*.json"), *path.glob("*.json.gz")])
            if not found:
                raise ValueError(f"no published score files (*.json, *.json.gz) in {path}")
            paths += found
        elif path.exists() or item not in catalogue.CATALOGUE and _looks_like_a_path(item):
            paths.append(path)  # load_published names a missing file
        else:
            paths.append(catalogue.fetch(item, cache))
    return paths


def _looks_like_a_path(item: str) -> bool:
    return os.sep in item or item.endswith((".json", ".json.gz"))


def _select_agents(frame: pd.DataFrame, agents: Sequence[str] | None) -> pd.DataFrame:
    if not agents:
        return frame
    known = sorted(set(frame["agent"]) | set(frame["variant"]))
    unknown = [a for a in agents if a not in known]
    if unknown:
        raise ValueError(f"unknown agent {unknown[0]!r}; available: {', '.join(known)}")
    return frame[frame["agent"].isin(agents) | frame["variant"].isin(agents)]


def _check_baseline(baseline: str | None, frame: pd.DataFrame) -> None:
    known = set(frame["agent"]) | set(frame["variant"])
    if baseline is not None and baseline not in known:
        raise ValueError(f"unknown baseline agent {baseline!r}; available: {', '.join(sorted(known))}")


def _check_images(task_images: TaskImages | None) -> dict[tuple[str, str, str], Path]:
    images = {key: Path(path) for key, path in (task_images or {}).items()}
    for key, path in images.items():
        if path.suffix.lower() not in IMAGE_TYPES:
            raise ValueError(f"task image {path} for {key}: not one of {', '.join(IMAGE_TYPES)}")
        if not path.is_file():
            raise ValueError(f"task image not found: {path} (for {key})")
    return images


def _reference(reference: str | Reference | None) -> Reference | None:
    if reference is None or isinstance(reference, dict):
        return reference
    try:
        table = json.loads(Path(reference).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"reference scores file unreadable: {reference} ({type(err).__name__})") from None
    return {suite: {task: tuple(pair) for task, pair in tasks.items()} for suite, tasks in table.items()}


def _train_frame(results, frame, partial, skip_damaged) -> pd.DataFrame:
    if not results:
        return pd.DataFrame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)  # load() already reported the left-out runs
        train = load_train(results, partial=partial)
    damaged = train.attrs.get("damaged", {})
    _refuse_damaged(damaged, skip_damaged)
    train = train[train["run_id"].isin(frame["run_id"])]
    train.attrs["damaged"] = damaged
    return train


# --- statistics and figures ----------------------------------------------------------------------------
def _analyse_suite(suite, rows, score_name, percent, train, baseline, fig_dir, reps, seed) -> SuiteReport:
    notes = []
    labels = sorted(rows["variant"].unique())
    tasks_of = {label: set(rows.loc[rows["variant"] == label, "task"]) for label in labels}
    common = set.intersection(*tasks_of.values())
    compared = bool(common) and len(labels) > 1
    if not common:
        notes.append("The agents share no task: each is aggregated over its own tasks, and none is compared.")
        common = set(rows["task"])
    dropped = sorted(set(rows["task"]) - common)
    if dropped:
        notes.append(
            f"Aggregates use the {len(common)} tasks all agents have; left out: {', '.join(dropped)}."
        )
    rows = rows[rows["task"].isin(common)]
    scale = 100.0 if percent else 1.0
    short = _short_name(score_name)
    unit = f"{short} (%)" if percent else short

    final = final_scores(rows)
    aggregates = stats.aggregate_table(final, SUMMARY_METRICS, reps=reps, seed=seed, progress=True)
    blocks = curve_scores(rows)
    curves = stats.curve_table(blocks, "iqm", reps=reps, seed=seed, progress=True)
    curves = _final_point_from_aggregates(curves, blocks, final, aggregates)
    summary = _summary(aggregates)

    improvement = pd.DataFrame(columns=["x", "y", "estimate", "lower", "upper"])
    chosen, reason = None, ""
    if compared:
        improvement = stats.improvement_table(final, reps=reps, seed=seed)
        chosen, reason = _baseline_label(baseline, summary, rows)
        versus = improvement[improvement["y"] == chosen].set_index("x")
        for column in ("estimate", "lower", "upper"):
            summary[f"p_{column}"] = summary["label"].map(versus[column])

    figures: list[tuple[str, Path]] = []
    detail_notes: list[str] = []
    lead = plots.save(
        plots.sample_efficiency(_scaled(curves, scale), "iqm", unit), fig_dir, f"{suite}_sample_efficiency"
    )[0]
    figures.append(
        (
            "Aggregate metrics of the final scores, 95% CIs",
            plots.save(
                plots.aggregate_intervals(_scaled(aggregates, scale), unit), fig_dir, f"{suite}_aggregates"
            )[0],
        )
    )
    profiles = stats.profile_table(final, _taus(final), reps=reps, seed=seed)
    figures.append(
        (
            "Performance profiles: fraction of runs (tasks weighing equally) scoring above each value",
            plots.save(
                plots.performance_profiles(profiles.assign(tau=profiles["tau"] * scale), unit),
                fig_dir,
                f"{suite}_profiles",
            )[0],
        )
    )
    if compared:
        figures.append(
            (
                "Probability of improvement, every ordered pair",
                plots.save(plots.probability_of_improvement(improvement), fig_dir, f"{suite}_improvement")[0],
            )
        )
    task_curves = _task_curves(rows, reps, seed)
    figures.append(
        (
            "Learning curves of every task: mean over runs, 95% CI",
            plots.save(
                plots.learning_curves(_scaled(task_curves, scale), unit), fig_dir, f"{suite}_learning_curves"
            )[0],
        )
    )
    if not train.empty:
        figures.append(
            (
                "Loss scales: each world-model loss, its balancer weight and their product (median over runs)",
                plots.save(plots.loss_scales(train), fig_dir, f"{suite}_loss_scales")[0],
            )
        )
    else:
        detail_notes.append("No train.parquet losses or weights for this suite: no loss-scale diagnostic.")
    task_figures = {
        str(task): plots.save(
            plots.task_curve(_scaled(table, scale), str(task), unit),
            fig_dir / "tasks",
            f"{suite}_{task}",
            ("png",),
        )[0]
        for task, table in task_curves.groupby("task", sort=True)
    }
    return SuiteReport(
        suite=suite,
        score_name=score_name,
        percent=percent,
        notes=notes,
        summary=summary,
        baseline=chosen,
        baseline_reason=reason,
        milestones=_milestones(curves),
        improvement=improvement,
        per_task=stats.per_task_table(final, reps=reps, seed=seed),
        lead_figure=lead,
        figures=figures,
        task_figures=task_figures,
        detail_notes=detail_notes,
    )


def _short_name(how: str) -> str:
    """A normalisation's description as an axis label: 'human-normalised score (standard ...)' -> its head."""
    return "min-max normalised score" if how.startswith("min-max") else how.split(" (")[0]


def _summary(aggregates: pd.DataFrame) -> pd.DataFrame:
    """One row per label with every aggregate and its CI, ranked by IQM (best first)."""
    wide = aggregates.pivot(index="label", columns="metric", values=["estimate", "lower", "upper"])
    summary = pd.DataFrame(index=wide.index)
    for metric in SUMMARY_METRICS:
        summary[metric] = wide[("estimate", metric)]
        summary[f"{metric}_lower"] = wide[("lower", metric)]
        summary[f"{metric}_upper"] = wide[("upper", metric)]
    counts = aggregates.drop_duplicates("label").set_index("label")[["tasks", "runs"]]
    summary = summary.join(counts).sort_values("iqm", ascending=False, kind="stable").reset_index()
    summary.insert(0, "rank", np.arange(1, len(summary) + 1))
    return summary


def _baseline_label(baseline: str | None, summary: pd.DataFrame, rows: pd.DataFrame) -> tuple[str, str]:
    """The label every agent is compared with, and why it is that one."""
    lowest = str(summary["label"].iloc[-1])
    if baseline is None:
        return lowest, "the lowest IQM here; choose another with --baseline"
    agent_of = rows.drop_duplicates("variant").set_index("variant")["agent"]
    matches = [label for label in summary["label"] if baseline in (label, agent_of.get(label))]
    if len(matches) == 1:
        return matches[0], "chosen with --baseline"
    if not matches:
        return lowest, f"the lowest IQM here, as {baseline} is not in this suite"
    raise ValueError(f"--baseline {baseline} is ambiguous here: name one of {', '.join(matches)}")


def _final_point_from_aggregates(curves, blocks, final, aggregates) -> pd.DataFrame:
    """Where a label's last curve point holds exactly its final scores, show the final IQM there, so the
    curve, the summary and the sample-efficiency table agree (one estimate, one CI)."""
    iqm = aggregates[aggregates["metric"] == "iqm"].set_index("label")
    curves = curves.copy()
    for label, label_blocks in blocks.items():
        if not label_blocks:  # no step at which every task has a run: no curve
            continue
        steps, sample = label_blocks[-1]
        if _same_runs(Scores.from_tasks(_by_task(sample, -1)), final[label]):
            at = (curves["label"] == label) & (curves["step"] == steps[-1])
            curves.loc[at, ["estimate", "lower", "upper"]] = iqm.loc[
                label, ["estimate", "lower", "upper"]
            ].values
    return curves


def _by_task(sample: Scores, step: int) -> dict[str, np.ndarray]:
    ends = np.cumsum(sample.runs_per_task)
    return {t: sample.values[e - n : e, step] for t, n, e in zip(sample.tasks, sample.runs_per_task, ends)}


def _same_runs(a: Scores, b: Scores) -> bool:
    """The same tasks with the same scores (runs in any order)."""
    x, y = _by_task(a, -1), _by_task(b, -1)
    return x.keys() == y.keys() and all(np.array_equal(np.sort(x[t]), np.sort(y[t])) for t in x)


def _milestones(curves: pd.DataFrame) -> pd.DataFrame:
    """The IQM curve at a quarter, half, three quarters and all of the steps every label has."""
    if curves.empty:
        return curves
    shared = sorted(set.intersection(*[set(g["step"]) for _, g in curves.groupby("label")]))
    if not shared:
        return curves.iloc[0:0]
    picks = sorted({shared[max(0, int(np.ceil(q * len(shared))) - 1)] for q in MILESTONES})
    return curves[curves["step"].isin(picks)]


def _scaled(table: pd.DataFrame, scale: float) -> pd.DataFrame:
    columns = ["estimate", "lower", "upper"]
    return table.assign(**{c: table[c] * scale for c in columns})


def _taus(final: Mapping[str, Scores]) -> np.ndarray:
    low = min(float(np.min(s.values[:, -1])) for s in final.values())
    top = max(float(np.max(s.values[:, -1])) for s in final.values())
    start = min(0.0, low)
    return np.linspace(start, top if top > start else start + 1.0, PROFILE_POINTS)


def _task_curves(rows: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    """Per task and label: mean over runs at every step, with a bootstrap CI across runs."""
    parts = []
    for task, task_rows in rows.groupby("task"):
        table = stats.curve_table(curve_scores(task_rows), "mean", reps=reps, seed=seed)
        parts.append(table.assign(task=task))
    return pd.concat(parts, ignore_index=True)


# --- writing -------------------------------------------------------------------------------------------
def _value(x: float, percent: bool) -> str:
    return f"{100 * x:.1f}%" if percent else f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3f}"


def _interval(estimate: float, lower: float, upper: float, percent: bool) -> str:
    return f"{_value(estimate, percent)} [{_value(lower, percent)}, {_value(upper, percent)}]"


def _probability(row: Mapping, prefix: str = "p_") -> str:
    if f"{prefix}estimate" not in row or pd.isna(row[f"{prefix}estimate"]):
        return "baseline"
    return f"{row[f'{prefix}estimate']:.2f} [{row[f'{prefix}lower']:.2f}, {row[f'{prefix}upper']:.2f}]"


def _summary_table(s: SuiteReport) -> tuple[list[str], list[list[str]]]:
    head = ["rank", "agent", *[METRIC_NAMES[m] for m in SUMMARY_METRICS]]
    if s.baseline:
        head.append(f"P(agent > {s.baseline})")
    head.append("runs")
    rows = []
    for row in s.summary.to_dict("records"):
        cells = [str(row["rank"]), str(row["label"])]
        cells += [_interval(row[m], row[f"{m}_lower"], row[f"{m}_upper"], s.percent) for m in SUMMARY_METRICS]
        if s.baseline:
            cells.append(_probability(row))
        cells.append(str(row["runs"]))
        rows.append(cells)
    return head, rows


def _summary_caption(s: SuiteReport, reps: int) -> str:
    tasks = int(s.summary["tasks"].max())
    text = (
        f"Agents ranked by IQM of the final score (each run's last evaluation) over {tasks} task(s), "
        f"every task weighing equally; 95% stratified-bootstrap CIs ({reps:,} resamples)."
    )
    if s.baseline:
        text += (
            f" P(agent > {s.baseline}): the probability that a run of the agent scores above a run of "
            f"{s.baseline} on a task drawn at random (baseline: {s.baseline_reason})."
        )
    return text


def _summary_html(s: SuiteReport) -> str:
    """The summary table with each CI in small type under its estimate, so it fits a laptop screen."""
    head, rows = _summary_table(s)
    body = []
    for row in rows:
        cells = []
        for text in row:
            value, _, interval = text.partition(" [")
            ci = f"<br><small>[{html.escape(interval)}</small>" if interval else ""
            cells.append(f"<td>{html.escape(value)}{ci}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    top = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    return f"<table class='summary'><thead><tr>{top}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _milestone_table(s: SuiteReport) -> tuple[list[str], list[list[str]]]:
    steps = sorted(s.milestones["step"].unique())
    head = ["agent", *[f"IQM at {step:,} frames" for step in steps]]
    rows = []
    for label in s.summary["label"]:
        at = s.milestones[s.milestones["label"] == label].set_index("step")
        rows.append(
            [label]
            + [
                _interval(*at.loc[step, ["estimate", "lower", "upper"]], s.percent)
                if step in at.index
                else "-"
                for step in steps
            ]
        )
    return head, rows


def _improvement_table(s: SuiteReport) -> tuple[list[str], list[list[str]]]:
    rows = [[f"P({r['x']} > {r['y']})", _probability(r, "")] for r in s.improvement.to_dict("records")]
    return ["pair", "probability [95% CI]"], rows


def _task_table(s: SuiteReport, task: str) -> tuple[list[str], list[list[str]]]:
    table = s.per_task[s.per_task["task"] == task].set_index("label")
    rows = [
        [
            label,
            _interval(*table.loc[label, ["estimate", "lower", "upper"]], s.percent),
            str(table.loc[label, "runs"]),
        ]
        for label in s.summary["label"]
        if label in table.index
    ]
    return ["agent", "mean final score [95% CI]", "runs"], rows


def _md(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *["| " + " | ".join(r) + " |" for r in rows],
    ]


def _html_table(head: list[str], rows: list[list[str]], css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    top = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table{cls}><thead><tr>{top}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    mime = IMAGE_TYPES[path.suffix.lower()]
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{data}">'


def _figure(path: Path, caption: str, css: str = "") -> str:
    cls = f" class='{css}'" if css else ""
    return f"<figure{cls}>{_img(path, path.stem)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _rel(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()


def _write(out_dir: Path, inputs, left_out, sections: list[SuiteReport], images, reps: int) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = sum(int(s.summary["runs"].sum()) for s in sections)
    lede = (
        f"{len(sections)} suite(s), {runs} runs. Scores are normalised against fixed references and shown in "
        "percent where normalised."
        + (f" {len(left_out)} run(s) or file(s) left out: see Inputs at the end." if left_out else "")
    )
    md = ["# harmonybench report", "", lede]
    body = ["<h1>harmonybench report</h1>", f"<p class='lede'>{html.escape(lede)}</p>"]
    if len(sections) > 1:
        links = " · ".join(f"<a href='#{html.escape(s.suite)}'>{html.escape(s.suite)}</a>" for s in sections)
        body.append(f"<nav class='lede'>Suites: {links}</nav>")
    for s in sections:
        md += _suite_md(s, out_dir, images, reps)
        body.append(_suite_html(s, images, reps))
    md += ["", "## Inputs", "", *[f"- {line}" for line in inputs]]
    items = "".join(f"<li>{html.escape(line)}</li>" for line in inputs)
    inputs_html = f"<ul>{items}</ul>"
    if left_out:
        md += ["", "Runs left out:", *[f"- {run}: {why}" for run, why in left_out.items()]]
        gone = "".join(f"<li>{html.escape(r)}: {html.escape(w)}</li>" for r, w in left_out.items())
        inputs_html += f"<p>Runs left out:</p><ul>{gone}</ul>"
    body.append(f"<details class='inputs'><summary><h2>Inputs</h2></summary>{inputs_html}</details>")
    (out_dir / "report.md").write_text("\n".join(md) + "\n")
    page = out_dir / "report.html"
    page.write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>harmonybench report</title><style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n"
    )
    return page


def _suite_md(s: SuiteReport, out_dir: Path, images, reps: int) -> list[str]:
    md = [
        "",
        f"## {s.suite}: {s.score_name}",
        "",
        _summary_caption(s, reps),
        "",
        *_md(*_summary_table(s)),
        "",
    ]
    md += [f"{note}" for note in s.notes] + ([""] if s.notes else [])
    if s.lead_figure:
        md += [f"![sample efficiency]({_rel(s.lead_figure, out_dir)})", ""]
    if not s.milestones.empty:
        md += ["**Sample efficiency (IQM over training)**", "", *_md(*_milestone_table(s)), ""]
    md += [f"### {s.suite}: details", ""]
    if not s.improvement.empty:
        md += ["**Probability of improvement, every ordered pair**", "", *_md(*_improvement_table(s)), ""]
    for caption, png in s.figures:
        md += [f"![{caption}]({_rel(png, out_dir)})", ""]
    md += [f"{note}" for note in s.detail_notes] + ([""] if s.detail_notes else [])
    md += ["**Per task: mean final score over runs [95% CI]**", ""]
    head, rows = ["task", *_task_table(s, "")[0]], []
    for task in sorted(s.per_task["task"].unique()):
        rows += [[task, *row] for row in _task_table(s, task)[1]]
    md += _md(head, rows)
    for (suite, task, label), path in images.items():
        if suite == s.suite:
            md += ["", f"![{task}: {label}]({_rel(path, out_dir)})"]
    return md


def _suite_html(s: SuiteReport, images, reps: int) -> str:
    parts = [
        f"<section id='{html.escape(s.suite)}'><h2>{html.escape(s.suite)}: {html.escape(s.score_name)}</h2>"
    ]
    parts.append(_summary_html(s))
    parts.append(f"<p class='caption'>{html.escape(_summary_caption(s, reps))}</p>")
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in s.notes]
    if s.lead_figure:
        parts.append(_figure(s.lead_figure, "Sample efficiency: IQM over training, 95% CI", css="lead"))
    details = []
    if not s.milestones.empty:
        details.append(_html_table(*_milestone_table(s)))
    if not s.improvement.empty:
        details.append(_html_table(*_improvement_table(s)))
    details += [f"<p class='note'>{html.escape(note)}</p>" for note in s.detail_notes]
    details += [_figure(png, caption) for caption, png in s.figures]
    parts.append(
        "<details><summary>Details: all aggregates, profiles, every pairwise comparison, learning curves, "
        f"loss scales</summary>{''.join(details)}</details>"
    )
    parts.append("<h3>Per task</h3>")
    for task in sorted(s.per_task["task"].unique()):
        head, rows = _task_table(s, task)
        brief = " · ".join(f"{r[0]} {r[1].split(' [')[0]}" for r in rows)
        inner = [_html_table(head, rows)]
        if task in s.task_figures:
            inner.append(_figure(s.task_figures[task], f"{task}: mean over runs, 95% CI", css="curve"))
        for (suite, image_task, label), path in images.items():
            if suite == s.suite and image_task == task:
                inner.append(_figure(path, f"{label}: {path.name}"))
        parts.append(
            f"<details class='task'><summary><b>{html.escape(task)}</b> <span>{html.escape(brief)}</span>"
            f"</summary>{''.join(inner)}</details>"
        )
    parts.append("</section>")
    return "".join(parts)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:0 auto;padding:0 12px;line-height:1.35}"
    "h1{font-size:1.5em;margin:.5em 0 .2em}h2{font-size:1.25em;margin:1em 0 .4em}h3{font-size:1.05em}"
    ".lede,.caption,.note{color:#444;font-size:.9em;margin:.3em 0}"
    "table{border-collapse:collapse;margin:.4em 0;font-size:.88em}"
    "td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;white-space:nowrap}th{background:#f3f3f3}"
    "table.summary th{white-space:normal;max-width:14em;vertical-align:bottom}"
    "table.summary td{vertical-align:top}table.summary small{color:#555;font-weight:normal}"
    "table.summary tbody tr:first-child{font-weight:600}figure.lead img{width:560px}"
    "img{max-width:100%}figure{margin:.6em 0}figcaption{font-size:.85em;color:#555}"
    "details{margin:.3em 0;border:1px solid #e3e3e3;border-radius:4px;padding:.3em .6em}"
    "summary{cursor:pointer}summary h2{display:inline;font-size:1.1em}"
    "details.task summary span{color:#555;font-size:.9em;margin-left:.5em}"
    "details.task figure.curve img{max-width:420px}"  # extra images (imagination strips) keep full width
)
