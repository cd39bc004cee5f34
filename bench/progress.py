"""Progress a user can plan by: one run's bar (a terminal) or periodic lines (batch jobs, SLURM logs), the
aggregate of many runs under the local executor, and the measured rate and ETA that `bench status` shows."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench import store

LINE_EVERY_S = 30.0
RATE_ROWS = 10  # the recent train.parquet rows that set a run's measured rate


class Progress:
    def __init__(self, run_id: str, budget: int, mode: str = "auto", start: int = 0) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode
        self.run_id = run_id
        self.budget = budget
        self.start_step = start
        self.step = start
        self.started = time.monotonic()
        self.last_line = 0.0
        self.last_eval = float("nan")
        self.bar = None
        if mode == "bar":
            self.bar = tqdm(total=budget, initial=start, desc=run_id, unit="frame", dynamic_ncols=True)

    def _rate(self) -> float:
        return (self.step - self.start_step) / max(time.monotonic() - self.started, 1e-9)

    def update(self, step: int, last_eval: float) -> None:
        self.last_eval = last_eval
        if self.bar is not None:
            self.bar.update(step - self.step)
            self.step = step
            self.bar.set_postfix(eval=f"{last_eval:.1f}", refresh=False)
            return
        self.step = step
        now = time.monotonic()
        if self.mode == "lines" and now - self.last_line >= LINE_EVERY_S:
            self.last_line = now
            self._line()

    def _line(self) -> None:
        rate = self._rate()
        eta = (self.budget - self.step) / rate if rate > 0 else float("inf")
        print(
            f"[{self.run_id}] step {self.step}/{self.budget} ({100 * self.step / max(self.budget, 1):.0f}%) "
            f"fps {rate:.0f} eval {self.last_eval:.1f} eta {format_duration(eta)}",
            file=sys.stderr,
            flush=True,
        )

    def eval(self, value: float) -> None:
        self.last_eval = value
        if self.mode == "lines":
            self._line()

    def close(self, message: str) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.mode != "none":
            print(f"[{self.run_id}] {message}", file=sys.stderr, flush=True)


def format_duration(seconds: float) -> str:
    """``?`` when unknown, else the two leading units: 42s, 3m07s, 5h02m, 2d03h."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def recent_rate(steps: Sequence[float], fps: Sequence[float], rows: int = RATE_ROWS) -> float:
    """Env frames per second over a run's last ``rows`` train rows: their frames over their time. A row's
    ``fps`` was measured over the frames since the row before it (evals and checkpoints included), so its
    time is those frames / fps; the time a run lay dead between a kill and its resume never counts."""
    frames = seconds = 0.0
    for index in range(max(len(steps) - rows, 0), len(steps)):
        delta = steps[index] - (steps[index - 1] if index else 0)
        if delta > 0 and fps[index] > 0:
            frames += delta
            seconds += delta / fps[index]
    return frames / seconds if seconds > 0 else 0.0


def eta_seconds(remaining: float, rate: float, elapsed: float = 0.0) -> float:
    """Seconds until ``remaining`` frames are done at ``rate`` frames/s, when they were counted ``elapsed``
    seconds ago by a run that kept going; 0 when nothing remains, inf without a rate."""
    if remaining <= 0:
        return 0.0
    if rate <= 0:
        return math.inf
    return max(remaining / rate - elapsed, 0.0)


def run_rate(run_dir: Path) -> float:
    """The measured rate of one run from its train.parquet (0 before its first row)."""
    import pyarrow.parquet as pq  # here only: `bench status` stays fast for runs without rows

    try:
        table = pq.read_table(run_dir / "train.parquet", columns=["step", "fps"])
    except (FileNotFoundError, OSError, KeyError):
        return 0.0
    return recent_rate(table.column("step").to_pylist(), table.column("fps").to_pylist())


def run_eta(status: dict[str, Any], rate: float, now: float) -> float:
    """The ETA in seconds of one run from its status.json and measured rate: a running run's step is as of
    its last update, a stalled or preempted one's ETA is what it needs once resumed; inf for a failed run."""
    state = status.get("state")
    if state == "done":
        return 0.0
    if state == "failed":
        return math.inf
    remaining = (status.get("budget") or 0) - (status.get("step") or 0)
    elapsed = now - status["updated"] if state == "running" and status.get("updated") else 0.0
    return eta_seconds(remaining, rate, elapsed)


def sweep_rate_eta(runs: Sequence[tuple[dict[str, Any], float]], now: float) -> tuple[float, float]:
    """For (status, measured rate) pairs: the frames/s they make now (the sum over the running ones) and the
    ETA of all their unfinished frames at that rate (0 when none remain, inf when none runs)."""
    rate = remaining = 0.0
    for status, run_rate in runs:
        state = status.get("state")
        if state in ("done", "failed"):
            continue
        left = (status.get("budget") or 0) - (status.get("step") or 0)
        if state == "running":
            rate += run_rate
            if status.get("updated"):
                left -= run_rate * (now - status["updated"])  # its step is as of its last update
        remaining += max(left, 0.0)
    return rate, eta_seconds(remaining, rate)


class SweepProgress:
    """The aggregate of many runs (the local executor): runs finished, frames, rate and ETA, read from each
    run's status.json; a bar on a terminal, a line every LINE_EVERY_S otherwise."""

    def __init__(self, run_dirs: Sequence[Path], mode: str | None = None) -> None:
        if mode is None:  # the runs' own log.progress setting
            spec = store.read_json(run_dirs[0] / "spec.json") if run_dirs else None
            mode = spec["config"]["log"]["progress"] if spec else "auto"
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode = mode
        self.run_dirs = list(run_dirs)
        self.finished: set[Path] = set()
        self.budget = {d: store.read_status(d).get("budget") or 0 for d in self.run_dirs}
        self.total = sum(self.budget.values())
        self.steps = self._steps()
        self.start_frames = sum(self.steps.values())
        self.started = time.monotonic()
        self.last_line = self.started
        self.bar = None
        if mode == "bar":
            self.bar = tqdm(
                total=self.total,
                initial=self.start_frames,
                desc="all runs",
                dynamic_ncols=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} frames{postfix}",  # tqdm adds ", "
            )

    def _steps(self) -> dict[Path, int]:
        return {d: min(store.read_status(d).get("step") or 0, self.budget[d]) for d in self.run_dirs}

    def summary(self) -> str:
        """Runs finished, the frame rate since this command started, and the ETA of the unfinished runs."""
        frames = sum(self.steps.values())
        rate = max(frames - self.start_frames, 0) / max(time.monotonic() - self.started, 1e-9)
        remaining = sum(self.budget[d] - step for d, step in self.steps.items() if d not in self.finished)
        return (
            f"runs {len(self.finished)}/{len(self.run_dirs)} finished, {rate:.1f} frames/s, "
            f"eta {format_duration(eta_seconds(remaining, rate))}"
        )

    def update(self, finished: Sequence[Path] = ()) -> None:
        self.finished.update(finished)
        self.steps = self._steps()
        now = time.monotonic()
        if self.bar is not None:
            self.bar.n = sum(self.steps.values())
            self.bar.set_postfix_str(self.summary(), refresh=False)
            self.bar.refresh()
        elif self.mode == "lines" and (now - self.last_line >= LINE_EVERY_S or finished):
            self.last_line = now
            self.note(f"[all runs] {sum(self.steps.values())}/{self.total} frames, {self.summary()}")

    def note(self, message: str) -> None:
        """A line (a run's outcome) that leaves the bar intact."""
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
