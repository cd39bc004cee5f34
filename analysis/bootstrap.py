"""Vectorised stratified bootstrap over runs, for ragged task sets.

Conventions follow rliable (Agarwal et al. 2021, ``rliable.library.StratifiedBootstrap``): runs are resampled
with replacement *within each task*, tasks are kept fixed, and the confidence interval is the percentile
interval of the bootstrap distribution (``np.percentile``, linear interpolation, as arch's ``conf_int``).

Ragged data (tasks with different numbers of runs, which rliable rejects) are resampled the same way: task m
with n_m runs draws n_m runs from its own n_m, so every resample has exactly the shape of the data. With equal
run counts this is rliable's bootstrap.

A resample is represented by its *multiplicities*: w[b, r] = how often run r was drawn in resample b
(multinomial(n_m, 1/n_m) within each task). Every statistic in ``analysis.stats`` is a function of
(values, w), so all resamples are evaluated at once with array operations, and the point estimate is the
same function at w = 1, which keeps point estimates and resamples on one code path.

One difference from rliable, with identical marginal CIs: for learning curves rliable draws an independent
resample at every step (its index array has the data's full shape); here one resample of runs serves every
step, so a run stays a run across the curve. The CI at each step has the same distribution either way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

# Resamples x runs x steps per chunk: bounds memory (~30 MB per float64 array of that size).
CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Scores:
    """One agent's scores: the runs of each task, stacked task by task; tasks may differ in run count."""

    tasks: tuple[str, ...]
    values: np.ndarray  # (runs, steps) float64, runs of tasks[0] first
    runs_per_task: np.ndarray  # (tasks,) int

    @classmethod
    def from_tasks(cls, per_task: Mapping[str, np.ndarray]) -> Scores:
        """{task: (runs,) or (runs, steps) array} -> Scores. Steps must agree across tasks."""
        if not per_task:
            raise ValueError("no tasks to aggregate")
        tasks = tuple(per_task)
        arrays = [np.asarray(per_task[t], dtype=np.float64) for t in tasks]
        arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
        if any(len(a) == 0 for a in arrays):
            raise ValueError(f"a task has no runs: {[t for t, a in zip(tasks, arrays) if len(a) == 0]}")
        if len({a.shape[1] for a in arrays}) != 1:
            raise ValueError("tasks disagree on the number of steps")
        if any(np.isnan(a).any() for a in arrays):
            raise ValueError("scores contain NaN; drop or fill them before aggregating")
        return cls(tasks, np.concatenate(arrays), np.array([len(a) for a in arrays]))

    @classmethod
    def from_rliable(cls, scores: np.ndarray, tasks: tuple[str, ...] | None = None) -> Scores:
        """rliable's layout (runs, tasks) or (runs, tasks, steps) -> Scores."""
        scores = np.asarray(scores, dtype=np.float64)
        tasks = tasks or tuple(f"task{m}" for m in range(scores.shape[1]))
        return cls.from_tasks({t: scores[:, m] for m, t in enumerate(tasks)})

    @property
    def num_runs(self) -> int:
        return int(self.runs_per_task.sum())

    @property
    def num_steps(self) -> int:
        return self.values.shape[1]

    @property
    def task_of_run(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.tasks)), self.runs_per_task)

    def ones(self) -> np.ndarray:
        """The multiplicities of the data itself (each run once): shape (1, runs)."""
        return np.ones((1, self.num_runs))


def resample_counts(runs_per_task: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicities (reps, runs) of a stratified resample: runs drawn with replacement within each task.

    Draws run indices uniformly within each task, as rliable does, and counts them with one bincount.
    """
    total = int(runs_per_task.sum())
    offsets = np.concatenate([[0], np.cumsum(runs_per_task)[:-1]])
    task_of_draw = np.repeat(np.arange(len(runs_per_task)), runs_per_task)  # one draw per run slot
    uniform = rng.random((reps, total))  # floor(u * n) is uniform on 0..n-1 and cheaper than rng.integers
    draws = (uniform * runs_per_task[task_of_draw]).astype(np.int64) + offsets[task_of_draw]
    flat = (np.arange(reps)[:, None] * total + draws).ravel()
    return np.bincount(flat, minlength=reps * total).reshape(reps, total).astype(np.float64)


def chunked_counts(
    samples: list[Scores], reps: int, rng: np.random.Generator, progress: str | None
) -> Iterator[list[np.ndarray]]:
    """Independent resample multiplicities for each Scores in ``samples``, ``reps`` in all, in chunks."""
    width = max(s.num_runs * s.num_steps for s in samples)
    chunk = max(1, min(reps, CHUNK_ELEMENTS // max(width, 1)))
    bar = tqdm(
        total=reps, desc=progress, unit="resample", disable=progress is None, leave=False, file=sys.stderr
    )
    done = 0
    while done < reps:
        size = min(chunk, reps - done)
        yield [resample_counts(s.runs_per_task, size, rng) for s in samples]
        done += size
        bar.update(size)
    bar.close()


Statistic = Callable[..., np.ndarray]  # (values..., counts...) -> (resamples, outputs)


def interval_estimate(
    statistic: Statistic,
    samples: list[Scores],
    reps: int = 50_000,
    ci: float = 0.95,
    seed: int | None = 0,
    progress: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate and percentile CI of ``statistic(*samples_values, *counts)``.

    Returns (estimate, lower, upper), each of the statistic's output shape. ``samples`` holds one Scores per
    argument (two for a comparison such as probability of improvement, resampled independently).
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    values = [s.values for s in samples]
    estimate = statistic(*values, *[s.ones() for s in samples])[0]
    rng = np.random.default_rng(seed)
    boot = np.concatenate(
        [statistic(*values, *counts) for counts in chunked_counts(samples, reps, rng, progress)]
    )
    alpha = 100 * (1 - ci) / 2
    lower, upper = np.percentile(boot, [alpha, 100 - alpha], axis=0)
    return estimate, lower, upper
