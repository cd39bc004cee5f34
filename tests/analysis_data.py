"""Small synthetic results directories that follow the results contract, as test data for the loader.

Each run: spec.json, status.json, eval.parquet (per-episode rows) and train.parquet (loss/* and weight/*),
written with pandas/pyarrow exactly as the contract describes. Returns rise with steps, faster for agents
listed later, so tests can check orderings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "data" / "published"


def write_run(
    root: Path,
    suite: str,
    task: str,
    agent: str,
    seed: int,
    *,
    skill: float = 1.0,
    variant: str | None = None,
    overrides: dict | None = None,
    state: str = "done",
    evals: int = 5,
    eval_every: int = 1000,
    episodes: int = 3,
    action_repeat: int = 2,
    lr: float = 1e-4,
) -> Path:
    variant = variant or agent
    run = root / suite / task / variant / f"seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash((suite, task, variant, seed))) % 2**32)
    spec = {
        "id": f"{suite}/{task}/{variant}/seed{seed}",
        "suite": suite,
        "task": task,
        "agent": agent,
        "seed": seed,
        "preset": "smoke",
        "overrides": overrides or {},
        "config": {
            "env": {"task": task, "action_repeat": action_repeat},
            "agent": {"name": agent, "model_lr": lr},
            "run": {"seed": seed, "steps": evals * eval_every},
        },
        "harness_version": "0.1.0",
        "git_commit": "0" * 40,
        "packages": {},
        "host": "test",
        "created": 0,
    }
    (run / "spec.json").write_text(json.dumps(spec))
    (run / "status.json").write_text(
        json.dumps({"state": state, "step": evals * eval_every, "budget": evals * eval_every})
    )
    rows = []
    for i in range(1, evals + 1):
        for episode in range(episodes):
            ret = skill * 100 * i / evals + rng.normal(0, 5)
            success = (
                float(rng.random() < min(1.0, skill * i / evals / 2)) if suite == "metaworld" else np.nan
            )
            rows.append(
                dict(
                    step=i * eval_every,
                    agent_step=i * eval_every // action_repeat,
                    episode=episode,
                    length=500,
                )
                | {"return": ret, "success": success}
            )
    pd.DataFrame(rows).astype(
        {"step": "int64", "agent_step": "int64", "episode": "int64", "length": "int64"}
    ).to_parquet(run / "eval.parquet", index=False)
    steps = np.arange(1, evals + 1) * eval_every
    train = pd.DataFrame(
        {
            "step": steps,
            "agent_step": steps // action_repeat,
            "updates": np.arange(1, evals + 1),
            "fps": 100.0,
            "update_ms": 10.0,
            "loss/obs": 3000.0 / np.arange(1, evals + 1),
            "loss/reward": 0.5 / np.arange(1, evals + 1),
            "weight/obs": 1.0 / (3000.0 / np.arange(1, evals + 1)),
            "weight/reward": np.ones(evals),
        }
    )
    train.to_parquet(run / "train.parquet", index=False)
    return run


def make_results(
    root: Path,
    suite: str = "dmc",
    tasks=("cheetah_run", "walker_run"),
    agents=("dreamerv3", "harmonydream"),
    seeds=3,
) -> Path:
    for skill, agent in enumerate(agents, start=1):
        for task in tasks:
            for seed in range(seeds):
                write_run(root, suite, task, agent, seed, skill=float(skill))
    return root


def execute_figures_notebook(
    results: Path, published: list[Path], out: Path, workdir: Path, monkeypatch
) -> list:
    """Run analysis/figures.ipynb with nbclient on these inputs; returns the executed cells."""
    import os

    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("HB_RESULTS", str(results))
    monkeypatch.setenv("HB_PUBLISHED", os.pathsep.join(map(str, published)))
    monkeypatch.setenv("HB_OUT", str(out))
    monkeypatch.setenv("HB_REPS", "200")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(Path(__file__).resolve().parents[1] / "analysis" / "figures.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    errors = [
        o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors, errors
    return notebook.cells
