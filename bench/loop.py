"""One run: env <-> agent, replay, train ratio, evaluation, logging, checkpoints and exact resume.

Counting: ``agent_step`` counts policy steps; env frames = agent_step x action repeat. The budget and the
eval schedule are in env frames (the unit the protocols speak in); every row records both.

Resume: a checkpoint holds the agent (nets, optimizers, balancer), the replay buffer, every RNG and the
counters. Rows written after the last checkpoint are dropped on resume and produced again, so eval.parquet
stays strictly increasing in step with no duplicates, and the run ends exactly at its budget.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import traceback
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import agents
import suites
from bench import store
from bench.progress import Progress
from bench.replay import Replay

CHECKPOINT = "state.pt"


class NonFiniteLoss(RuntimeError):
    pass


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored: damaged, or not data-only (a pickle that would run code)."""


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _rng_state(np_rng: np.random.Generator) -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np_rng.bit_generator.state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], np_rng: np.random.Generator) -> None:
    random.setstate(state["python"])
    np_rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _batch_obs(obs: dict[str, Any], keys: list[str]) -> dict[str, np.ndarray]:
    return {key: np.asarray(obs[key])[None] for key in keys}


def _random_action(space: Any, rng: np.random.Generator) -> np.ndarray:
    if hasattr(space, "n"):
        one_hot = np.zeros(space.n, np.float32)
        one_hot[rng.integers(space.n)] = 1.0
        return one_hot
    return rng.uniform(-1.0, 1.0, size=space.shape).astype(np.float32)


class _StopFlag:
    """SIGTERM/SIGUSR2 (SLURM preemption or time limit) ask the loop to checkpoint and return."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGUSR2):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class Run:
    """The state of one training run; ``train`` drives it."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = run_dir
        self.spec = store.read_json(run_dir / "spec.json")
        if self.spec is None:
            raise FileNotFoundError(f"{run_dir}: no spec.json")
        config = self.spec["config"]
        self.config = config
        self.cfg_run = config["run"]
        self.seed = int(self.spec["seed"])
        if self.cfg_run["threads"] > 0:
            torch.set_num_threads(self.cfg_run["threads"])
        self.device = _device(self.cfg_run["device"])
        random.seed(self.seed)
        torch.manual_seed(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self.suite = suites.get(self.spec["suite"])
        self.counters = {"agent_step": 0, "updates": 0, "episodes": 0, "train_debt": 0.0, "next_eval": 0}
        self.eval_rows: list[dict[str, Any]] = []
        self.train_rows: list[dict[str, Any]] = []
        env = self._make_env("train", self.seed)
        self.env = env
        self.repeat = env.action_repeat
        self.obs_keys = list(env.obs_space.spaces)
        self.agent = agents.make(
            self.spec["agent"], env.obs_space, env.act_space, config["agent"], self.device
        )
        self.per = getattr(self.agent, "prioritized", None)  # (alpha, beta): the agent asks for PER
        self.replay = Replay(self.cfg_run["replay_capacity"], self.cfg_run["replay_chunk"], per=self.per)
        self.eval_env: Any = None
        self.lease: store.HeldLease | None = None  # set by train(): the run's owner writes, no one else
        self.resumed = self._load_checkpoint()
        if self.resumed:
            # A fresh episode after a resume: reseed so it does not replay the run's first episodes.
            self.env.close()
            self.env = self._make_env("train", self.seed + 7919 * self.counters["agent_step"])

    def _make_env(self, mode: str, seed: int) -> Any:
        return self.suite.make(self.spec["task"], seed, self.config["env"], mode)

    @property
    def frames(self) -> int:
        return self.counters["agent_step"] * self.repeat

    # --- checkpoints ----------------------------------------------------------------------------
    def _ckpt_dir(self) -> Path:
        return self.dir / "ckpt"

    def check_lease(self) -> None:
        """LeaseLost once this process no longer owns the run: it must write nothing more."""
        if self.lease is not None:
            self.lease.check()

    def save_checkpoint(self) -> None:
        self.check_lease()
        ckpt = self._ckpt_dir()
        replay_meta = self.replay.save(ckpt / "replay")
        state = {
            "agent": self.agent.state_dict(),
            "counters": dict(self.counters),
            "replay": _map_arrays(replay_meta, torch.from_numpy),  # tensors: loadable with weights_only
            "rng": _rng_state(self.np_rng),
            "eval_rows": len(self.eval_rows),
            "train_rows": len(self.train_rows),
        }
        buffer = _to_bytes(state)
        store.atomic_write_bytes(ckpt / CHECKPOINT, buffer)
        self.replay.prune(ckpt / "replay")
        self._last_ckpt = time.monotonic()

    def _load_checkpoint(self) -> bool:
        path = self._ckpt_dir() / CHECKPOINT
        self._last_ckpt = time.monotonic()
        if not path.exists():
            return False
        state = read_checkpoint(path, self.device)
        try:
            self.agent.load_state_dict(state["agent"])
            self.counters = state["counters"]
            _set_rng_state(state["rng"], self.np_rng)
            replay = _map_arrays(state["replay"], lambda t: t.cpu().numpy(), torch.Tensor)
        except Exception as error:  # readable, but not what this run saved: one line naming the file
            raise CheckpointError(f"damaged checkpoint {path}: {_load_error(error)}") from None
        try:
            self.replay.load(self._ckpt_dir() / "replay", replay)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise CheckpointError(
                f"damaged replay files in {self._ckpt_dir() / 'replay'}: {_load_error(error)}"
            ) from None
        # Rows produced after this checkpoint will be produced again: drop them.
        self.eval_rows = _read_rows(self.dir / "eval.parquet")[: state["eval_rows"]]
        self.train_rows = _read_rows(self.dir / "train.parquet")[: state["train_rows"]]
        return True

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self) -> float:
        if self.eval_env is None:
            seed = self.seed + self.cfg_run["eval_seed_offset"] + self.counters["agent_step"]
            self.eval_env = self._make_env("eval", seed)
        returns = []
        for episode in range(self.cfg_run["eval_episodes"]):
            total, length, success = 0.0, 0, None
            for action, obs in eval_episode(self.eval_env, self.agent, self.obs_keys):
                if action is None:  # the reset
                    continue
                total += float(obs["reward"])
                length += 1
                if "success" in obs:
                    success = bool(success) or bool(obs["success"])
            self.eval_rows.append(
                {
                    "step": self.frames,
                    "agent_step": self.counters["agent_step"],
                    "episode": episode,
                    "return": total,
                    "success": float("nan") if success is None else float(success),
                    "length": length,
                }
            )
            returns.append(total)
        self.check_lease()
        store.atomic_write_parquet(self.dir / "eval.parquet", pd.DataFrame(self.eval_rows))
        return float(np.mean(returns)) if returns else float("nan")


def read_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """Everything ``save_checkpoint`` wrote, as data only (tensors, numbers, strings and containers): a
    pickle naming any code is refused. CheckpointError (one line naming the file) when it cannot be read."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # truncated, corrupt, unsafe or foreign
        raise CheckpointError(f"damaged checkpoint {path}: {_load_error(error)}") from None


def _map_arrays(tree: Any, convert: Any, kind: type = np.ndarray) -> Any:
    """``tree`` with every ``kind`` leaf replaced by ``convert(leaf)`` (numpy arrays <-> torch tensors)."""
    if isinstance(tree, kind):
        return convert(tree)
    if isinstance(tree, dict):
        return {key: _map_arrays(value, convert, kind) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map_arrays(value, convert, kind) for value in tree)
    return tree


def _load_error(error: Exception) -> str:
    """One line for a failed load; torch's weights-only refusal buries the reason among advice."""
    text = str(error)
    if "Weights only load failed" in text:
        named = re.search(r"GLOBAL ([\w.]+)", text)
        return f"not data-only ({'it names ' + named.group(1) if named else 'unsupported content'}), refused"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def eval_episode(
    env: Any, agent: Any, obs_keys: list[str]
) -> Iterator[tuple[np.ndarray | None, dict[str, Any]]]:
    """One episode of the agent's eval-mode policy from a reset: (None, first observation), then (action,
    the observation it led to) for every step, the last with ``is_last``."""
    obs = env.reset()
    yield None, obs
    state = None
    while not obs["is_last"]:
        actions, state = agent.policy(_batch_obs(obs, [*obs_keys, "is_first"]), state, "eval")
        obs = env.step(actions[0])
        yield actions[0], obs


def _to_bytes(obj: Any) -> bytes:
    handle = io.BytesIO()
    torch.save(obj, handle)
    return handle.getvalue()


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return pd.read_parquet(path).to_dict("records")


def _check_finite(metrics: dict[str, float], frames: int, cause: Exception | None = None) -> None:
    for key, value in metrics.items():
        if key.startswith("loss/") and not np.isfinite(value):
            seen = f" (first seen as: {str(cause).splitlines()[0]})" if cause else ""
            raise NonFiniteLoss(f"non-finite {key} = {value} at step {frames}{seen}")


def _diagnose(run: Run, error: Exception) -> None:
    """An update can leave finite losses but non-finite weights (e.g. an absurd learning rate); acting or
    the next update then fails inside a sampler first. Name what went non-finite: the loss of one more
    update if it computes, else the first non-finite parameter. The last good checkpoint stays."""
    if run.counters["updates"] == 0:
        raise error
    cause = str(error).splitlines()[0]
    batch, length = run.agent.batch_size, run.agent.batch_length
    with contextlib.suppress(RuntimeError, ValueError):
        metrics = run.agent.train(run.replay.sample(batch, length, run.np_rng))
        _check_finite(metrics, run.frames, cause=error)
    for name, value in _tensors(run.agent.state_dict()):
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise NonFiniteLoss(
                f"non-finite weights ({name}) after update {run.counters['updates']}: a loss exploded "
                f"(first seen as: {cause})"
            ) from error
    raise error


def _tensors(tree: Any, prefix: str = "") -> Any:
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from _tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            yield from _tensors(value, f"{prefix}[{index}]")


def train(run_dir: str | Path, on_preempt: Any = None) -> str:
    """Train (or resume) the run in ``run_dir`` unless another process owns it; returns the final state:
    done, failed, preempted, or skipped (owned elsewhere, or its lease was lost while training)."""
    run_dir = Path(run_dir)
    name = (store.read_json(run_dir / "spec.json") or {}).get("id", str(run_dir))
    try:
        lease = store.hold_lease(run_dir)
    except store.LeaseHeld as held:
        print(f"[{name}] {held} — skipped", file=sys.stderr)
        return "skipped"
    if store.read_status(run_dir).get("state") == "done":  # its previous owner finished it meanwhile
        lease.release()
        return "done"
    state, run = "failed", None
    try:
        store.update_status(run_dir, state="running", pid=os.getpid(), host=socket.gethostname(), error=None)
        run = Run(run_dir)
        run.lease = lease
        with _StopFlag() as stop:
            state = _train_loop(run, stop)
        if state == "preempted" and on_preempt is not None:
            on_preempt()
        return state
    except store.LeaseLost as error:  # another process owns the run now: leave its files alone
        print(f"[{name}] {error}; stopped without writing more", file=sys.stderr)
        state = "skipped"
        return state
    except (NonFiniteLoss, CheckpointError) as error:
        store.update_status(run_dir, state="failed", error=str(error), pid=None)
        return "failed"
    except Exception as error:  # the run fails; the caller's other runs go on
        (run_dir / "error.log").write_text(traceback.format_exc())
        store.update_status(run_dir, state="failed", error=f"{type(error).__name__}: {error}", pid=None)
        return "failed"
    finally:
        # a preempted SLURM job keeps the run while it is requeued; everything else frees it
        lease.release(to_job=lease.job_id if state == "preempted" else None)
        if run is not None:
            run.env.close()
            if run.eval_env is not None:
                run.eval_env.close()


def _train_loop(run: Run, stop: _StopFlag) -> str:
    cfg = run.cfg_run
    counters = run.counters
    budget = cfg["steps"]
    agent = run.agent
    batch, length = agent.batch_size, agent.batch_length
    writer = _tensorboard(run)
    sink = _wandb(run)
    progress = Progress(run.spec["id"], budget, run.config["log"]["progress"], start=run.frames)
    metric_sums: dict[str, float] = defaultdict(float)
    metric_count = 0
    update_seconds = 0.0
    last_log_frames, last_log_time = run.frames, time.monotonic()
    next_log = (run.frames // cfg["log_every"] + 1) * cfg["log_every"]
    last_eval = run.eval_rows[-1]["return"] if run.eval_rows else float("nan")
    if run.eval_rows:
        recent = [r["return"] for r in run.eval_rows if r["step"] == run.eval_rows[-1]["step"]]
        last_eval = float(np.mean(recent))
    act_space = run.env.act_space

    def log_train_row() -> None:
        nonlocal metric_count, update_seconds, last_log_frames, last_log_time
        run.check_lease()
        now = time.monotonic()
        row = {
            "step": run.frames,
            "agent_step": counters["agent_step"],
            "updates": counters["updates"],
            "fps": (run.frames - last_log_frames) / max(now - last_log_time, 1e-9),
            "update_ms": 1000 * update_seconds / max(metric_count, 1),
        }
        row.update({key: total / metric_count for key, total in metric_sums.items()} if metric_count else {})
        run.train_rows.append(row)
        store.atomic_write_parquet(run.dir / "train.parquet", pd.DataFrame(run.train_rows))
        if writer is not None:
            for key, value in row.items():
                if key not in ("step", "agent_step"):
                    writer.add_scalar(key if "/" in key else f"train/{key}", value, run.frames)
        if sink is not None:
            sink.log_train(row, run.frames)
        store.update_status(run.dir, state="running", step=run.frames, budget=budget)
        metric_sums.clear()
        metric_count, update_seconds = 0, 0.0
        last_log_frames, last_log_time = run.frames, now

    obs = run.env.reset()
    run.replay.add(_replay_step(obs, np.zeros(_action_dim(act_space), np.float32), run.obs_keys))
    policy_state = None
    # The eval at the budget itself is the last one.
    while True:
        run.check_lease()
        if run.frames >= counters["next_eval"] or run.frames >= budget:
            if not (run.frames >= budget and run.eval_rows and run.eval_rows[-1]["step"] == run.frames):
                try:
                    last_eval = run.evaluate()
                except (RuntimeError, ValueError) as error:
                    _diagnose(run, error)
                progress.eval(last_eval)
                if writer is not None:
                    writer.add_scalar("eval/return", last_eval, run.frames)
                if sink is not None:
                    sink.log_eval(last_eval, run.frames)
            counters["next_eval"] = (run.frames // cfg["eval_every"] + 1) * cfg["eval_every"]
            if run.frames >= budget:
                if not run.train_rows or run.train_rows[-1]["step"] < run.frames:
                    log_train_row()
                break
            run.save_checkpoint()
        if stop.signum is not None:
            run.save_checkpoint()
            store.update_status(run.dir, state="preempted", step=run.frames, pid=None)
            if sink is not None:
                sink.close(run.frames)
            progress.close(f"preempted by signal {stop.signum} at step {run.frames}")
            return "preempted"

        if counters["agent_step"] < cfg["prefill"]:
            action = _random_action(act_space, run.np_rng)
        else:
            obs_batch = _batch_obs(obs, [*run.obs_keys, "is_first"])
            try:
                actions, policy_state = agent.policy(obs_batch, policy_state, "train")
            except (RuntimeError, ValueError) as error:
                _diagnose(run, error)
            action = actions[0]
        obs = run.env.step(action)
        counters["agent_step"] += 1
        run.replay.add(_replay_step(obs, action, run.obs_keys))
        if obs["is_last"]:
            counters["episodes"] += 1
            obs = run.env.reset()
            policy_state = None
            run.replay.add(_replay_step(obs, np.zeros_like(action), run.obs_keys))

        if counters["agent_step"] >= cfg["prefill"] and len(run.replay) >= length:
            counters["train_debt"] += cfg["train_ratio"] / (batch * length)
            while counters["train_debt"] >= 1.0:
                counters["train_debt"] -= 1.0
                sample = run.replay.sample(batch, length, run.np_rng)
                started = time.perf_counter()
                try:
                    metrics = agent.train(sample)
                except (RuntimeError, ValueError) as error:
                    _diagnose(run, error)
                if run.per is not None:
                    run.replay.update_priorities(sample["start"], agent.priorities)
                update_seconds += time.perf_counter() - started
                counters["updates"] += 1
                _check_finite(metrics, run.frames)
                for key, value in metrics.items():
                    metric_sums[key] += value
                metric_count += 1

        if run.frames >= next_log:
            log_train_row()
            next_log = (run.frames // cfg["log_every"] + 1) * cfg["log_every"]
        progress.update(run.frames, last_eval)

        if time.monotonic() - run._last_ckpt >= cfg["checkpoint_every_s"]:
            run.save_checkpoint()

    run.save_checkpoint()
    if writer is not None:
        writer.close()
    if sink is not None:
        sink.close(run.frames)
    store.update_status(run.dir, state="done", step=run.frames, budget=budget, pid=None, finished=time.time())
    progress.close(f"done: {run.frames} frames, last eval {last_eval:.1f}")
    return "done"


def _action_dim(space: Any) -> int:
    return int(space.n) if hasattr(space, "n") else int(np.prod(space.shape))


def _replay_step(obs: dict[str, Any], action: np.ndarray, keys: list[str]) -> dict[str, Any]:
    step = {key: obs[key] for key in keys}
    step["action"] = np.asarray(action, np.float32)
    step["reward"] = np.float32(obs["reward"])
    step["is_first"] = bool(obs["is_first"])
    step["is_last"] = bool(obs["is_last"])
    step["is_terminal"] = bool(obs["is_terminal"])
    return step


def _tensorboard(run: Run) -> Any:
    if not run.config["log"]["tensorboard"]:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(run.dir / "tb"), purge_step=run.frames if run.resumed else None)


def _wandb(run: Run) -> Any:
    """The W&B sink when log.wandb is on. A kill -9 loses what W&B had not written yet, so a resumed run
    sends again its checkpointed rows past the W&B run's last clean close (see bench/wandb_sink.py)."""
    if not run.config["log"].get("wandb", False):
        return None
    from bench.wandb_sink import WandbSink

    sink = WandbSink(run.dir, run.spec)
    sink.log_config(run.config)
    for row in run.train_rows:
        if row["step"] > sink.logged_through:
            sink.log_train(row, row["step"])
    evals = pd.DataFrame(run.eval_rows, columns=["step", "return"]).groupby("step")["return"].mean()
    for step, value in evals.items():
        if step > sink.logged_through:
            sink.log_eval(float(value), int(step))
    return sink
