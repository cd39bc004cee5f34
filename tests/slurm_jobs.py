"""Job functions for tests/test_slurm.py, run inside real SLURM jobs (a module, so that they unpickle there).

``count`` stands in for ``bench.launch.run_job`` where a test is about the SLURM machinery rather than
training: it follows the loop's contract (status.json states; on SIGTERM/SIGUSR2 finish the current step,
checkpoint, return "preempted"; resume from the checkpoint) but each step is a sleep, so the tests are fast.
Its instructions are in <run_dir>/plan.json: {"steps": N, "step_s": seconds, "fail_at": step or null}.
Every step appends one line to steps.log, so a test sees duplicated or missing steps after a requeue.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from bench import store


def count(run_dir: str, threads: int = 0) -> str:
    run = Path(run_dir)
    plan = json.loads((run / "plan.json").read_text())
    checkpoint = store.read_json(run / "ckpt.json") or {"step": 0}
    step = checkpoint["step"]
    store.update_status(run, state="running", step=step, pid=os.getpid(), error=None)
    with (run / "starts.log").open("a") as log:  # one line per start: when, and from which source tree
        log.write(
            json.dumps({"t": time.time(), "step": step, "bench": str(Path(store.__file__).parent)}) + "\n"
        )
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in _SIGNALS}
    try:
        while step < plan["steps"]:
            if caught:
                store.atomic_write_json(run / "ckpt.json", {"step": step})
                store.update_status(run, state="preempted", step=step, pid=None)
                return "preempted"
            time.sleep(plan["step_s"])
            if step == plan.get("fail_at"):
                store.update_status(
                    run, state="failed", step=step, pid=None, error=f"non-finite loss at step {step}"
                )
                return "failed"
            step += 1
            with (run / "steps.log").open("a") as log:
                log.write(f"{step}\n")
            store.atomic_write_json(run / "ckpt.json", {"step": step})
            store.update_status(run, step=step)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    store.update_status(run, state="done", step=step, pid=None)
    with (run / "ends.log").open("a") as log:
        log.write(json.dumps({"t": time.time()}) + "\n")
    return "done"


_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)
