"""`bench report`: load runs and published scores, normalise, aggregate with CIs, draw, write md + html.

Per suite (agents are compared within a suite, on the tasks they all have): aggregate-metric intervals,
sample-efficiency curves (IQM), performance profiles, probability of improvement, per-task learning curves,
and, from train.parquet, the loss-scale diagnostic. Tables go to report.md; report.html embeds every PNG.
"""

from __future__ import annotations

import base64
import html
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import plots, stats
from analysis.load import AnalysisWarning, load, load_train
from analysis.normalise import Reference, add_scores
from analysis.published import load_published
from analysis.scores import curve_scores, final_scores

PROFILE_POINTS = 101


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
) -> Path:
    """Write figures (PNG + PDF), report.md and a self-contained report.html under ``out``; return the html.

    Raises ValueError with one line for user errors (missing/empty directory, unreadable published file,
    unknown agent). Runs that are corrupt or unfinished are left out with a warning and listed in the report.
    """
    frame, notes, left_out = _gather(results, published, partial)
    frame = _select_agents(frame, agents)
    scored = add_scores(frame, _reference(reference))
    out_dir = Path(out)
    fig_dir = out_dir / "figures"
    sections: list[tuple[str, list[str], list[Path]]] = []  # (title, markdown blocks, png paths)
    train = _train_frame(results, frame, partial)
    for suite, rows in scored[scored["metric"] == "score"].groupby("suite", sort=True):
        score_name = scored.attrs["normalisation"][suite]
        sections.append(_suite_section(str(suite), rows, score_name, train, fig_dir, reps, seed))
    report = _write(out_dir, notes, left_out, scored.attrs["normalisation"], sections)
    return report


def _gather(results, published, partial) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    if not results and not published:
        raise ValueError("nothing to report: give a results directory and/or --published score files")
    frames, notes, left_out = [], [], {}
    if results:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AnalysisWarning)
            runs = load(results, partial=partial)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        frames.append(runs)
        left_out = runs.attrs.get("left_out", {})
    for path in _expand(published):
        table = load_published(path)
        notes.extend(table.attrs["notes"])
        frames.append(table)
    return pd.concat(frames, ignore_index=True), notes, left_out


def _expand(published: Sequence[str]) -> list[Path]:
    """Published paths, a directory standing for the score files (*.json, *.json.gz) in it."""
    paths = []
    for path in map(Path, published):
        if path.is_dir():
            found = sorted([*path.glob("*.json"), *path.glob("*.json.gz")])
            if not found:
                raise ValueError(f"no published score files (*.json, *.json.gz) in {path}")
            paths += found
        else:
            paths.append(path)
    return paths


def _select_agents(frame: pd.DataFrame, agents: Sequence[str] | None) -> pd.DataFrame:
    if not agents:
        return frame
    known = sorted(set(frame["agent"]) | set(frame["variant"]))
    unknown = [a for a in agents if a not in known]
    if unknown:
        raise ValueError(f"unknown agent {unknown[0]!r}; available: {', '.join(known)}")
    return frame[frame["agent"].isin(agents) | frame["variant"].isin(agents)]


def _reference(reference: str | Reference | None) -> Reference | None:
    if reference is None or isinstance(reference, dict):
        return reference
    try:
        table = json.loads(Path(reference).read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"reference scores file unreadable: {reference} ({type(err).__name__})") from None
    return {suite: {task: tuple(pair) for task, pair in tasks.items()} for suite, tasks in table.items()}


def _train_frame(results, frame, partial) -> pd.DataFrame:
    if not results:
        return pd.DataFrame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)  # load() already reported the left-out runs
        train = load_train(results, partial=partial)
    return train[train["run_id"].isin(frame["run_id"])]


def _suite_section(suite, rows, score_name, train, fig_dir, reps, seed):
    blocks, figures = [], []
    labels = sorted(rows["variant"].unique())
    tasks_of = {label: set(rows.loc[rows["variant"] == label, "task"]) for label in labels}
    common = set.intersection(*tasks_of.values())
    shared = bool(common)
    if not shared:
        blocks.append(
            "The agents share no task: each is aggregated over its own tasks, and none is compared."
        )
        common = set(rows["task"])
    dropped = sorted(set(rows["task"]) - common)
    if dropped:
        blocks.append(
            f"Aggregates use the {len(common)} tasks all agents have; left out: {', '.join(dropped)}."
        )
    rows = rows[rows["task"].isin(common)]
    final = final_scores(rows)
    aggregates = stats.aggregate_table(final, reps=reps, seed=seed, progress=True)
    blocks.append(
        _md_table(
            aggregates,
            ["label", "metric"],
            f"Final {score_name} (each run's last evaluation), estimate [95% CI]",
        )
    )
    figures += plots.save(plots.aggregate_intervals(aggregates, score_name), fig_dir, f"{suite}_aggregates")[
        :1
    ]

    curves = stats.curve_table(curve_scores(rows), "iqm", reps=reps, seed=seed, progress=True)
    figures += plots.save(
        plots.sample_efficiency(curves, "iqm", score_name), fig_dir, f"{suite}_sample_efficiency"
    )[:1]
    last = curves.sort_values("step").groupby("label").tail(1)
    blocks.append(
        _md_table(
            last.assign(metric="IQM at step " + last["step"].astype(str)),
            ["label", "metric"],
            "Sample efficiency, last point",
        )
    )

    low = min(float(np.min(s.values[:, -1])) for s in final.values())
    top = max(float(np.max(s.values[:, -1])) for s in final.values())
    taus = np.linspace(min(0.0, low), top if top > min(0.0, low) else low + 1.0, PROFILE_POINTS)
    profiles = stats.profile_table(final, taus, reps=reps, seed=seed)
    figures += plots.save(plots.performance_profiles(profiles, score_name), fig_dir, f"{suite}_profiles")[:1]

    if len(final) > 1 and shared:
        improvement = stats.improvement_table(final, reps=reps, seed=seed)
        figures += plots.save(plots.probability_of_improvement(improvement), fig_dir, f"{suite}_improvement")[
            :1
        ]
        blocks.append(
            _md_table(
                improvement.assign(label="P(" + improvement["x"] + " > " + improvement["y"] + ")", metric=""),
                ["label"],
                "Probability of improvement",
            )
        )

    per_task = stats.per_task_table(final, reps=reps, seed=seed)
    blocks.append(
        _md_table(
            per_task.rename(columns={"task": "metric"}),
            ["metric", "label"],
            "Per-task final score, mean over runs [95% CI]",
        )
    )
    figures += plots.save(
        plots.learning_curves(_task_curves(rows, reps, seed), score_name), fig_dir, f"{suite}_learning_curves"
    )[:1]

    suite_train = train[train["suite"] == suite] if not train.empty else train
    if not suite_train.empty:
        figures += plots.save(plots.loss_scales(suite_train), fig_dir, f"{suite}_loss_scales")[:1]
    else:
        blocks.append("No train.parquet losses or weights for this suite: no loss-scale diagnostic.")
    return f"{suite} ({score_name})", blocks, figures


def _task_curves(rows: pd.DataFrame, reps: int, seed: int) -> pd.DataFrame:
    """Per task and label: mean over runs at every step, with a bootstrap CI across runs."""
    parts = []
    for task, task_rows in rows.groupby("task"):
        table = stats.curve_table(curve_scores(task_rows), "mean", reps=reps, seed=seed)
        parts.append(table.assign(task=task))
    return pd.concat(parts, ignore_index=True)


def _md_table(table: pd.DataFrame, keys: list[str], title: str) -> str:
    lines = [
        f"**{title}**",
        "",
        "| " + " | ".join([*keys, "estimate [95% CI]"]) + " |",
        "|" + "---|" * (len(keys) + 1),
    ]
    for row in table.itertuples(index=False):
        row = row._asdict()
        cells = [str(row[k]) for k in keys] + [
            f"{row['estimate']:.3f} [{row['lower']:.3f}, {row['upper']:.3f}]"
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write(out_dir: Path, notes, left_out, normalisation, sections) -> Path:
    md = ["# harmonybench report", ""]
    md += ["## Inputs", ""]
    md += [f"- {suite}: {how}" for suite, how in normalisation.items()]
    md += [f"- {note}" for note in notes]
    if left_out:
        md += ["", "Runs left out:", *[f"- {run}: {why}" for run, why in left_out.items()]]
    body = [
        f"<h1>harmonybench report</h1><h2>Inputs</h2><ul>{''.join(f'<li>{html.escape(line[2:])}</li>' for line in md[3:] if line.startswith('- '))}</ul>"
    ]
    if left_out:
        body.append(
            "<p>Runs left out:</p><ul>"
            + "".join(f"<li>{html.escape(r)}: {html.escape(w)}</li>" for r, w in left_out.items())
            + "</ul>"
        )
    for title, blocks, figures in sections:
        md += ["", f"## {title}", ""]
        body.append(f"<h2>{html.escape(title)}</h2>")
        for block in blocks:
            md += [block, ""]
            body.append(_md_to_html(block))
        for png in figures:
            md.append(f"![{png.stem}](figures/{png.name})")
            data = base64.b64encode(png.read_bytes()).decode()
            body.append(
                f'<figure><img alt="{png.stem}" src="data:image/png;base64,{data}"><figcaption>{png.stem} (PDF beside it)</figcaption></figure>'
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.md").write_text("\n".join(md) + "\n")
    page = out_dir / "report.html"
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"
    page.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>harmonybench report</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )
    return page


def _md_to_html(block: str) -> str:
    """The markdown this module writes (a bold title and a pipe table, or a sentence) as HTML."""
    lines = block.splitlines()
    if len(lines) < 3 or not lines[2].startswith("|"):
        return f"<p>{html.escape(block)}</p>"
    cells = [
        [html.escape(c.strip()) for c in line.strip("|").split("|")]
        for line in lines[2:]
        if not line.startswith("|---")
    ]
    head = "".join(f"<th>{c}</th>" for c in cells[0])
    rows = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in cells[1:])
    return f"<p><b>{html.escape(lines[0].strip('*'))}</b></p><table><tr>{head}</tr>{rows}</table>"
