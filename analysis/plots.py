"""Figures from the tables of ``analysis.stats`` (and tidy frames), seaborn/matplotlib only, headless."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: CI and clusters have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402

KIND_TITLES = {"loss": "loss", "weight": "balancer weight", "weighted": "weight x loss"}
METRIC_TITLES = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}


def _palette(labels) -> dict[str, tuple]:
    labels = sorted(set(labels))
    return dict(zip(labels, sns.color_palette("colorblind", len(labels))))


def save(
    fig: plt.Figure, out_dir: str | Path, name: str, formats: tuple[str, ...] = ("png", "pdf")
) -> list[Path]:
    """Write ``name``.png and .pdf (or the given formats); returns the paths in that order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{ext}" for ext in formats]
    for path in paths:
        fig.savefig(path, bbox_inches="tight", dpi=150)
    plt.close(fig)
    return paths


def aggregate_intervals(table: pd.DataFrame, score_name: str = "normalised score") -> plt.Figure:
    """One panel per aggregate metric: a horizontal CI bar and the point estimate per label."""
    metrics = list(dict.fromkeys(table["metric"]))
    labels = sorted(table["label"].unique())
    colors = _palette(labels)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(3.2 * len(metrics), 0.45 * len(labels) + 1.2), squeeze=False
    )
    for ax, metric in zip(axes[0], metrics):
        rows = table[table["metric"] == metric].set_index("label")
        for y, label in enumerate(labels):
            if label not in rows.index:
                continue
            row = rows.loc[label]
            ax.barh(
                y, row["upper"] - row["lower"], left=row["lower"], height=0.6, color=colors[label], alpha=0.75
            )
            ax.vlines(row["estimate"], y - 0.3, y + 0.3, color="black", lw=1.5)
        ax.set_yticks(range(len(labels)), labels if ax is axes[0][0] else [""] * len(labels))
        ax.set_title(METRIC_TITLES.get(metric, metric))
        ax.grid(axis="x", alpha=0.3)
    fig.supxlabel(f"{score_name} (95% stratified-bootstrap CI)")
    fig.tight_layout()
    return fig


def sample_efficiency(
    table: pd.DataFrame, metric: str = "iqm", score_name: str = "normalised score"
) -> plt.Figure:
    """Aggregate score against env frames, with the CI as a band."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    colors = _palette(table["label"])
    for label, rows in table.groupby("label"):
        ax.plot(rows["step"], rows["estimate"], marker="o", ms=3, color=colors[label], label=label)
        ax.fill_between(rows["step"], rows["lower"], rows["upper"], color=colors[label], alpha=0.2)
    ax.set_xlabel("env frames")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 400k, 1M: env frame counts read at a glance
    ax.set_ylabel(f"{METRIC_TITLES.get(metric, metric)} {score_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def task_curve(table: pd.DataFrame, task: str, score_name: str = "score") -> plt.Figure:
    """One task's learning curves (mean over runs, CI band), one line per label; table as learning_curves'."""
    fig, ax = plt.subplots(figsize=(4.6, 2.9))
    colors = _palette(table["label"])
    for label, rows in table[table["task"] == task].groupby("label"):
        ax.plot(rows["step"], rows["estimate"], color=colors[label], label=label, lw=1.3)
        ax.fill_between(rows["step"], rows["lower"], rows["upper"], color=colors[label], alpha=0.2)
    ax.set_title(task, fontsize=10)
    ax.set_xlabel("env frames", fontsize=9)
    ax.set_ylabel(score_name, fontsize=9)
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def performance_profiles(table: pd.DataFrame, score_name: str = "normalised score") -> plt.Figure:
    """Fraction of runs above tau, with CI bands."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    colors = _palette(table["label"])
    for label, rows in table.groupby("label"):
        ax.plot(rows["tau"], rows["estimate"], color=colors[label], label=label)
        ax.fill_between(rows["tau"], rows["lower"], rows["upper"], color=colors[label], alpha=0.2)
    ax.set_xlabel(f"{score_name} (tau)")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def probability_of_improvement(table: pd.DataFrame) -> plt.Figure:
    """P(X > Y) with CIs, one row per pair; 0.5 marked."""
    fig, ax = plt.subplots(figsize=(8.5, 0.45 * len(table) + 1.2))
    names = [f"P({x} > {y})" for x, y in zip(table["x"], table["y"])]
    for i, row in enumerate(table.itertuples()):
        ax.barh(i, row.upper - row.lower, left=row.lower, height=0.6, color="tab:blue", alpha=0.6)
        ax.vlines(row.estimate, i - 0.3, i + 0.3, color="black", lw=1.5)
    ax.axvline(0.5, color="gray", ls="--", lw=1)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability of improvement (95% CI)")
    fig.tight_layout()
    return fig


def learning_curves(table: pd.DataFrame, score_name: str = "score") -> plt.Figure:
    """Per-task grid: mean over runs with a CI band, one line per label. Columns: label, task, step, estimate,
    lower, upper."""
    tasks = sorted(table["task"].unique())
    cols = min(6, len(tasks))
    rows_n = int(np.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(2.6 * cols, 2.1 * rows_n + 0.6), squeeze=False)
    colors = _palette(table["label"])
    for ax, task in zip(axes.flat, tasks):
        for label, rows in table[table["task"] == task].groupby("label"):
            ax.plot(rows["step"], rows["estimate"], color=colors[label], label=label, lw=1.2)
            ax.fill_between(rows["step"], rows["lower"], rows["upper"], color=colors[label], alpha=0.2)
        ax.set_title(task, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.xaxis.get_offset_text().set_fontsize(7)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.supxlabel("env frames", y=0.06)
    fig.supylabel(score_name)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def loss_scales(train: pd.DataFrame, by: str = "variant") -> plt.Figure:
    """Each world-model loss, each balancer weight and their product over training, one column per label
    (log scale): the loss-scale imbalance that harmonious weighting addresses. Median over runs, band =
    quartiles."""
    weighted = {m.split("/", 1)[1] for m in train["metric"] if m.startswith("weight/")}
    if weighted:  # the balancer's groups only: not loss/total, loss/actor, loss/kl_dyn, ...
        groups_of = train["metric"].str.split("/", n=1).str[1]
        train = train[~train["metric"].str.startswith("loss/") | groups_of.isin(weighted)]
    train = pd.concat([train, _weighted_losses(train)], ignore_index=True)
    labels = sorted(train[by].unique())
    kinds = [k for k in ("loss", "weight", "weighted") if train["metric"].str.startswith(f"{k}/").any()]
    fig, axes = plt.subplots(
        len(kinds), len(labels), figsize=(3.6 * len(labels), 2.8 * len(kinds)), squeeze=False
    )
    groups = sorted({m.split("/", 1)[1] for m in train["metric"]})
    colors = _palette(groups)
    for col, label in enumerate(labels):
        for row, kind in enumerate(kinds):
            ax = axes[row][col]
            part = train[(train[by] == label) & train["metric"].str.startswith(f"{kind}/")]
            for metric, rows in part.groupby("metric"):
                stats = rows.groupby("step")["value"].quantile([0.25, 0.5, 0.75]).unstack()
                group = metric.split("/", 1)[1]
                ax.plot(stats.index, stats[0.5], color=colors[group], label=group)
                ax.fill_between(stats.index, stats[0.25], stats[0.75], color=colors[group], alpha=0.2)
            if (part["value"] > 0).all() and not part.empty:
                ax.set_yscale("log")
            ax.set_title(f"{label}: {KIND_TITLES[kind]}", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.supxlabel("env frames")
    fig.tight_layout()
    return fig


def _weighted_losses(train: pd.DataFrame) -> pd.DataFrame:
    """weight/<g> x loss/<g> per run and step, as metric ``weighted/<g>``: the scale each group trains at."""
    keys = ["run_id", "step"]
    losses = train[train["metric"].str.startswith("loss/")].assign(group=lambda f: f["metric"].str[5:])
    weights = train[train["metric"].str.startswith("weight/")].assign(group=lambda f: f["metric"].str[7:])
    both = losses.merge(weights[[*keys, "group", "value"]], on=[*keys, "group"], suffixes=("", "_weight"))
    both["value"] = both["value"] * both.pop("value_weight")
    return both.assign(metric="weighted/" + both.pop("group"))
