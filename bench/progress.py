"""Progress of one run: a bar on a terminal, plain periodic lines in batch jobs (SLURM logs)."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

LINE_EVERY_S = 30.0


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
            f"fps {rate:.0f} eval {self.last_eval:.1f} eta {_duration(eta)}",
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


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )
