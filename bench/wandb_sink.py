"""Optional Weights & Biases mirror of a run's scalars (``--set log.wandb=true``).

The run directory stays the record (train.parquet, eval.parquet); W&B gets the same scalars as TensorBoard,
the resolved config, and one W&B run per run directory, continued across resumes: its id lives in the run
directory (wandb.json) and every start passes ``id=`` with ``resume="allow"``.

Steps. Every value is logged against ``env_frame`` (the run's env frames, the unit of the budget) declared
with ``define_metric`` as the x-axis of every metric. W&B's own ``_step`` just counts log calls, so it stays
monotonic however often a run resumes. Duplicates: rows logged after the last checkpoint and before a crash
are produced again after the resume and logged again, so W&B can hold two values at one ``env_frame``; the
later one (higher ``_step``) is the run's record, the one in eval.parquet. A kill -9 also ends W&B's local
process before it writes its buffer, so after one the resumed run sends again the checkpointed rows logged
since W&B last closed cleanly (``logged_through``); those repeat values W&B may already hold.

Offline (``WANDB_MODE=offline``) every start writes its own ``offline-run-*-<id>`` directory; ``wandb sync``
uploads them to the one run in order of start time. Files go under WANDB_DIR if set, else the run directory.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
from pathlib import Path
from typing import Any

from bench import store
from bench.config import ConfigError

ID_FILE = "wandb.json"
X_AXIS = "env_frame"


def check_installed() -> None:
    """ConfigError (one line, before anything runs) when log.wandb is asked for without the package."""
    if importlib.util.find_spec("wandb") is None:
        raise ConfigError(
            "log.wandb=true needs the wandb package, which is not installed: "
            "pip install 'harmonybench[wandb]' (or --set log.wandb=false)"
        )


class WandbSink:
    """One W&B run for one run directory: log_train, log_eval, log_config, close."""

    def __init__(self, run_dir: Path, spec: dict[str, Any]) -> None:
        import wandb  # lazily: the package is an optional extra

        self.run_dir = run_dir
        record = store.read_json(run_dir / ID_FILE) or {}
        self.run_id = record.get("id") or secrets.token_hex(6)  # a W&B run id: letters and digits
        # Frames up to which W&B surely holds every row: set when a run closes cleanly (done or preempted).
        self.logged_through = int(record.get("logged_through", -1))
        store.atomic_write_json(run_dir / ID_FILE, {"id": self.run_id, "logged_through": self.logged_through})
        log = spec["config"]["log"]
        self.run = wandb.init(
            project=log["wandb_project"],
            group=log["wandb_group"]
            or spec["id"].rsplit("/", 1)[0],  # suite/task/variant: one config's seeds
            name=spec["id"],
            tags=[spec["suite"], spec["task"], spec["agent"], spec["preset"]],
            id=self.run_id,
            resume="allow",
            dir=None if os.environ.get("WANDB_DIR") else str(run_dir),
            reinit="create_new",  # several runs in one process (the inline executor) stay apart
            settings=wandb.Settings(console="off"),  # the terminal keeps its progress bar
        )
        self.run.define_metric(X_AXIS)
        self.run.define_metric("*", step_metric=X_AXIS)

    def log_train(self, row: dict[str, Any], step: int) -> None:
        """A train.parquet row under TensorBoard's names: ``train/<key>`` unless the key has a ``/``."""
        scalars = {
            key if "/" in key else f"train/{key}": float(value)
            for key, value in row.items()
            if key not in ("step", "agent_step")
        }
        self.run.log({**scalars, X_AXIS: step})

    def log_eval(self, value: float, step: int) -> None:
        self.run.log({"eval/return": value, X_AXIS: step})

    def log_config(self, config: dict[str, Any]) -> None:
        self.run.config.update(config, allow_val_change=True)

    def close(self, frames: int) -> None:
        """Finish the W&B run (it writes everything) and record that it holds every row up to ``frames``."""
        self.run.finish()
        self.logged_through = frames
        store.atomic_write_json(self.run_dir / ID_FILE, {"id": self.run_id, "logged_through": frames})
