"""One run: env <-> agent, replay, train ratio, evaluation, logging, checkpoints and exact resume.

Counting: ``agent_step`` counts policy steps; env frames = agent_step x action repeat. The budget and the
eval schedule are in env frames (the unit the protocols speak in); every row records both.

Envs: ``run.envs`` envs step together (bench/vec_env.py), one batched policy call for all of them; each
feeds its own replay stream, and a loop iteration adds ``envs`` policy steps (the train ratio counts them
all). Evaluation plays its episodes on up to ``envs`` envs at once.

One iteration of ``_train_loop``: the Collector acts and fills the replay, the Updater trains as the train
ratio allows, the Loggers write rows; evaluation, checkpoints and the preemption check sit around them.

Resume: a checkpoint holds the agent (nets, optimizers, balancer), the replay buffer, every RNG, the
counters, the policy's recurrent state and how many resets each env has made. Resumed envs redo their
resets and the actions of their current episode (read from the replay), so a simulator that draws its
randomness at resets continues exactly; a resumed run then produces the same rows as an uninterrupted one.
Rows written after the last checkpoint are dropped on resume and produced again, so eval.parquet stays
strictly increasing in step with no duplicates, and the run ends exactly at its budget.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import agents
from bench import store
from bench.progress import Progress
from bench.replay import Replay
from bench.vec_env import make_vec_env

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


def _batch_obs(observations: list[dict[str, Any]], keys: list[str]) -> dict[str, np.ndarray]:
    return {key: np.stack([np.asarray(obs[key]) for obs in observations]) for key in keys}


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
        self.counters = {"agent_step": 0, "updates": 0, "episodes": 0, "train_debt": 0.0, "next_eval": 0}
        self.counters["pretrained"] = False  # the pretrain burst is done
        self.counters["eval_seed"] = -1  # of the eval envs, fixed when they are first made
        self.counters["eval_resets"] = []  # each eval env's resets so far
        self.eval_rows: list[dict[str, Any]] = []
        self.train_rows: list[dict[str, Any]] = []
        self.num_envs = self.cfg_run["envs"]
        self.envs = self._make_envs("train", self.seed, self.num_envs)
        self.repeat = self.envs.action_repeat
        self.eval_envs: Any = None
        self.obs: list[dict[str, Any]] | None = None  # each env's current observation; None: reset them
        self.policy_state: Any = None  # the train-mode policy's recurrent state over the envs
        self.lease: store.HeldLease | None = None  # set by train(): the run's owner writes, no one else
        try:  # the env workers stop with the run, also when it cannot start
            self._check_schedule()
            self.obs_keys = list(self.envs.obs_space.spaces)
            self.agent = agents.make(
                self.spec["agent"],
                self.envs.obs_space,
                self.envs.act_space,
                config["agent"],
                self.device,
                self.spec["suite"],
            )
            self.per = self.agent.prioritized  # (alpha, beta): the agent asks for PER
            self.replay = Replay(
                self.cfg_run["replay_capacity"],
                self.cfg_run["replay_chunk"],
                per=self.per,
                streams=self.num_envs,
                sampling=self.cfg_run["replay_sampling"],
                ends=self.cfg_run["replay_ends"],
                mark_first=self.cfg_run["replay_mark_first"],
            )
            self.resumed = self._load_checkpoint()
        except BaseException:
            self.close()
            raise

    def _check_schedule(self) -> None:
        """With several envs a loop iteration is envs x action repeat frames: the budget and the eval
        interval must be whole iterations, so the run ends at its budget and evaluates on schedule."""
        frames = self.num_envs * self.repeat
        steps, every = self.cfg_run["steps"], self.cfg_run["eval_every"]
        if self.num_envs > 1 and (steps % frames or every % frames):
            raise ValueError(
                f"run.steps={steps} and run.eval_every={every} must be multiples of run.envs x action repeat "
                f"= {frames} frames"
            )

    def _make_envs(self, mode: str, seed: int, count: int) -> Any:
        spec = self.spec
        timeout = self.cfg_run["env_timeout_s"]
        return make_vec_env(spec["suite"], spec["task"], seed, self.config["env"], mode, count, timeout)

    def _restore_envs(self, saved: dict[str, Any] | None) -> None:
        """Put the training envs where the checkpoint left them (see the module docstring). A checkpoint
        without env state, or an episode longer than its replay stream, starts new episodes instead, from
        seeds of their own so that they do not replay the run's first episodes."""
        episodes = [self.replay.current_episode(stream) for stream in range(self.num_envs)]
        if saved is None or any(episode is None for episode in episodes):
            self.envs.close()
            self.envs = self._make_envs(
                "train", self.seed + 7919 * self.counters["agent_step"], self.num_envs
            )
            return
        self.obs = self.envs.restore(saved["resets"], [episode["action"][1:] for episode in episodes])
        for index, (obs, episode) in enumerate(zip(self.obs, episodes)):
            if not all(np.array_equal(obs[key], episode[key][-1]) for key in self.obs_keys):
                print(
                    f"[{self.spec['id']}] env {index} did not come back to its checkpointed observation (its "
                    "simulator draws randomness outside resets): this resume is not exact",
                    file=sys.stderr,
                )
        self.policy_state = saved["policy_state"]

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
            "envs": {"resets": list(self.envs.resets), "policy_state": self.policy_state},
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
            self.counters = {**self.counters, **state["counters"]}  # counters added since keep their defaults
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
        self._restore_envs(state.get("envs"))
        # Rows produced after this checkpoint will be produced again: drop them.
        self.eval_rows = _read_rows(self.dir / "eval.parquet")[: state["eval_rows"]]
        self.train_rows = _read_rows(self.dir / "train.parquet")[: state["train_rows"]]
        return True

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self) -> float:
        """``eval_episodes`` eval-mode episodes, up to ``envs`` at once; rows to eval.parquet; mean return."""
        episodes = self.cfg_run["eval_episodes"]
        if self.eval_envs is None:
            count = max(1, min(self.num_envs, episodes))
            if self.counters["eval_seed"] < 0:
                self.counters["eval_seed"] = (
                    self.seed + self.cfg_run["eval_seed_offset"] + self.counters["agent_step"]
                )
            self.eval_envs = self._make_envs("eval", self.counters["eval_seed"], count)
            if self.counters["eval_resets"]:  # resumed: the eval envs go on with their next episodes
                self.eval_envs.restore(self.counters["eval_resets"], [[]] * count)
        returns = []
        for first in range(0, episodes, self.eval_envs.num_envs):
            count = min(self.eval_envs.num_envs, episodes - first)
            for offset, result in enumerate(eval_episodes(self.eval_envs, count, self.agent, self.obs_keys)):
                self.eval_rows.append(
                    {
                        "step": self.frames,
                        "agent_step": self.counters["agent_step"],
                        "episode": first + offset,
                    }
                    | result
                )
                returns.append(result["return"])
        self.counters["eval_resets"] = list(self.eval_envs.resets)
        self.check_lease()
        store.atomic_write_parquet(self.dir / "eval.parquet", pd.DataFrame(self.eval_rows))
        return float(np.mean(returns)) if returns else float("nan")

    def close(self) -> None:
        self.envs.close()
        if self.eval_envs is not None:
            self.eval_envs.close()


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


def eval_episodes(envs: Any, count: int, agent: Any, obs_keys: list[str]) -> list[dict[str, Any]]:
    """One eval-mode episode on each of the first ``count`` envs, stepped together (an env whose episode
    ended waits for the others): each one's return, success (NaN where the suite has none) and length."""
    obs = envs.reset(list(range(count)))[:count]
    results = [{"return": 0.0, "success": None, "length": 0} for _ in range(count)]
    live = [True] * count + [False] * (envs.num_envs - count)
    state = None
    while any(live):
        actions, state = agent.policy(_batch_obs(obs, [*obs_keys, "is_first"]), state, "eval")
        stepped, _ = envs.step(actions, active=live, autoreset=False)
        for index, result in enumerate(results):
            if live[index]:
                obs[index] = now = stepped[index]
                result["return"] += float(now["reward"])
                result["length"] += 1
                if "success" in now:
                    result["success"] = bool(result["success"]) or bool(now["success"])
                live[index] = not now["is_last"]
    for result in results:
        result["success"] = float("nan") if result["success"] is None else float(result["success"])
    return results


def eval_episode(
    env: Any, agent: Any, obs_keys: list[str]
) -> Iterator[tuple[np.ndarray | None, dict[str, Any]]]:
    """One episode of the agent's eval-mode policy from a reset: (None, first observation), then (action,
    the observation it led to) for every step, the last with ``is_last``."""
    obs = env.reset()
    yield None, obs
    state = None
    while not obs["is_last"]:
        actions, state = agent.policy(_batch_obs([obs], [*obs_keys, "is_first"]), state, "eval")
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
            run.close()


class Collector:
    """The training envs, the train-mode policy and the replay: ``step`` adds one step to each env's stream
    (and the first step of a new episode where one ended)."""

    def __init__(self, run: Run, seconds: dict[str, float]) -> None:
        self.run = run
        self.seconds = seconds  # shared: "env" and "policy" time go here

    def start(self) -> None:
        run = self.run
        if run.obs is None:  # a new run, or a resume that starts new episodes
            run.obs = run.envs.reset()
            zeros = np.zeros(_action_dim(run.envs.act_space), np.float32)
            for stream, obs in enumerate(run.obs):
                run.replay.add(_replay_step(obs, zeros, run.obs_keys), stream)
            run.policy_state = None

    def step(self) -> None:
        run, counters = self.run, self.run.counters
        started = time.perf_counter()
        if counters["agent_step"] < run.cfg_run["prefill"]:
            actions = np.stack([_random_action(run.envs.act_space, run.np_rng) for _ in run.obs])
        else:
            try:
                obs_batch = _batch_obs(run.obs, [*run.obs_keys, "is_first"])
                actions, run.policy_state = run.agent.policy(obs_batch, run.policy_state, "train")
            except (RuntimeError, ValueError) as error:
                _diagnose(run, error)
        acted = time.perf_counter()
        outcomes, firsts = run.envs.step(actions)
        self.seconds["policy"] += acted - started
        self.seconds["env"] += time.perf_counter() - acted
        counters["agent_step"] += len(outcomes)
        for stream, (obs, first, action) in enumerate(zip(outcomes, firsts, actions)):
            run.replay.add(_replay_step(obs, action, run.obs_keys), stream)
            if first is not None:
                counters["episodes"] += 1
                run.replay.add(_replay_step(first, np.zeros_like(action), run.obs_keys), stream)
            run.obs[stream] = obs if first is None else first
        if all(first is not None for first in firsts):
            run.policy_state = None  # every env starts afresh (with one env: after each episode)


class Updater:
    """Updates as the train ratio allows: replayed steps per policy step (summed over the envs), plus the
    one-off ``pretrain`` burst once training starts; PER priorities go back to the replay.

    ``run.prefetch``: when several updates are due in a row (the pretrain burst; train ratios or env counts
    that owe more than one update per loop iteration), a thread samples the next batch, pinned in page-locked
    memory on CUDA, while the current update runs. The batches are the very same (the replay does not change
    within a burst and the sampler's RNG is drawn in the same order), so results do not depend on it. With
    prioritized replay each update's priorities change the next draw: no prefetch."""

    def __init__(self, run: Run, seconds: dict[str, float]) -> None:
        self.run = run
        self.seconds = seconds  # shared: "update" time goes here
        self.metric_sums: dict[str, float] = defaultdict(float)
        self.count = 0
        self.prefetch = run.cfg_run["prefetch"] and run.per is None
        self.pin = run.device.type == "cuda"

    def after_collect(self, policy_steps: int) -> None:
        run, counters, cfg = self.run, self.run.counters, self.run.cfg_run
        batch, length = run.agent.batch_size, run.agent.batch_length
        if counters["agent_step"] < cfg["prefill"] or not run.replay.valid_starts(length).any():
            return
        if not counters["pretrained"]:  # DV2/HD/DreamerPro `pretrain`, TD-MPC's seed-step burst
            counters["train_debt"] += cfg["pretrain"]
            counters["pretrained"] = True
        counters["train_debt"] += policy_steps * cfg["train_ratio"] / (batch * length)
        due = int(counters["train_debt"])
        if due > 1 and self.prefetch:
            self._burst(due, batch, length)
            return
        while counters["train_debt"] >= 1.0:
            counters["train_debt"] -= 1.0
            self._update(self._sample(batch, length))

    def _sample(self, batch: int, length: int, pin: bool = False) -> dict[str, Any]:
        sample = self.run.replay.sample(batch, length, self.run.np_rng)
        if pin:  # page-locked: the agent's copy to the GPU runs without blocking the host
            return {key: torch.from_numpy(value).pin_memory() for key, value in sample.items()}
        return sample

    def _burst(self, due: int, batch: int, length: int) -> None:
        with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as sampler:  # ~0.1 ms to start
            pending = sampler.submit(self._sample, batch, length, self.pin)
            for left in range(due - 1, -1, -1):
                sample = pending.result()
                if left:
                    pending = sampler.submit(self._sample, batch, length, self.pin)
                self.run.counters["train_debt"] -= 1.0
                self._update(sample)

    def _update(self, sample: dict[str, Any]) -> None:
        run = self.run
        started = time.perf_counter()
        try:
            metrics = run.agent.train(sample)
        except (RuntimeError, ValueError) as error:
            _diagnose(run, error)
        priorities = run.agent.after_update(sample, metrics)
        if priorities is not None:
            run.replay.update_priorities(sample["start"], priorities)
        self.seconds["update"] += time.perf_counter() - started
        run.counters["updates"] += 1
        _check_finite(metrics, run.frames)
        for key, value in metrics.items():
            self.metric_sums[key] += value
        self.count += 1

    def take_metrics(self) -> dict[str, float]:
        """Mean metrics and ms per update since the last call."""
        out = {key: total / self.count for key, total in self.metric_sums.items()} if self.count else {}
        self.metric_sums.clear()
        self.count = 0
        return out


class Loggers:
    """train.parquet rows (every ``log_every`` frames), TensorBoard, the W&B sink and the progress display.
    A row also holds ``time/<part>``: seconds spent in each part of the loop since the previous row."""

    def __init__(self, run: Run, updater: Updater, seconds: dict[str, float]) -> None:
        self.run, self.updater, self.seconds = run, updater, seconds
        self.writer = _tensorboard(run)
        self.sink = _wandb(run)
        self.progress = Progress(
            run.spec["id"], run.cfg_run["steps"], run.config["log"]["progress"], run.frames
        )
        self.last_frames, self.last_time = run.frames, time.monotonic()
        self.next_row = (run.frames // run.cfg_run["log_every"] + 1) * run.cfg_run["log_every"]
        self.last_eval = float("nan")
        if run.eval_rows:
            last = run.eval_rows[-1]["step"]
            self.last_eval = float(np.mean([r["return"] for r in run.eval_rows if r["step"] == last]))

    def after_step(self) -> None:
        run = self.run
        if run.frames >= self.next_row:
            self.train_row()
            self.next_row = (run.frames // run.cfg_run["log_every"] + 1) * run.cfg_run["log_every"]
        self.progress.update(run.frames, self.last_eval)

    def train_row(self) -> None:
        run = self.run
        run.check_lease()
        started = now = time.monotonic()
        updates, update_s = self.updater.count, self.seconds["update"]
        row = {
            "step": run.frames,
            "agent_step": run.counters["agent_step"],
            "updates": run.counters["updates"],
            "fps": (run.frames - self.last_frames) / max(now - self.last_time, 1e-9),
            "update_ms": 1000 * update_s / max(updates, 1),
        }
        row.update(self.updater.take_metrics())
        row.update({f"time/{part}": value for part, value in sorted(self.seconds.items())})
        self.seconds.clear()
        run.train_rows.append(row)
        store.atomic_write_parquet(run.dir / "train.parquet", pd.DataFrame(run.train_rows))
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("step", "agent_step"):
                    self.writer.add_scalar(key if "/" in key else f"train/{key}", value, run.frames)
        if self.sink is not None:
            self.sink.log_train(row, run.frames)
        store.update_status(run.dir, state="running", step=run.frames, budget=run.cfg_run["steps"])
        self.last_frames, self.last_time = run.frames, now
        self.seconds["log"] += time.monotonic() - started

    def eval(self, value: float) -> None:
        self.last_eval = value
        self.progress.eval(value)
        if self.writer is not None:
            self.writer.add_scalar("eval/return", value, self.run.frames)
        if self.sink is not None:
            self.sink.log_eval(value, self.run.frames)

    def close(self, message: str) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.sink is not None:
            self.sink.close(self.run.frames)
        self.progress.close(message)


@contextlib.contextmanager
def _timed(seconds: dict[str, float], part: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[part] += time.perf_counter() - started


def _train_loop(run: Run, stop: _StopFlag) -> str:
    seconds: dict[str, float] = defaultdict(float)
    cfg, counters, budget = run.cfg_run, run.counters, run.cfg_run["steps"]
    collector, updater = Collector(run, seconds), Updater(run, seconds)
    log = Loggers(run, updater, seconds)
    collector.start()
    # The eval at the budget itself is the last one.
    while True:
        run.check_lease()
        if run.frames >= counters["next_eval"] or run.frames >= budget:
            if not (run.frames >= budget and run.eval_rows and run.eval_rows[-1]["step"] == run.frames):
                with _timed(seconds, "eval"):
                    try:
                        value = run.evaluate()
                    except (RuntimeError, ValueError) as error:
                        _diagnose(run, error)
                log.eval(value)
            counters["next_eval"] = (run.frames // cfg["eval_every"] + 1) * cfg["eval_every"]
            if run.frames >= budget:
                if not run.train_rows or run.train_rows[-1]["step"] < run.frames:
                    log.train_row()
                break
            with _timed(seconds, "checkpoint"):
                run.save_checkpoint()
        if stop.signum is not None:
            run.save_checkpoint()
            store.update_status(run.dir, state="preempted", step=run.frames, pid=None)
            log.close(f"preempted by signal {stop.signum} at step {run.frames}")
            return "preempted"

        collector.step()
        updater.after_collect(run.num_envs)
        log.after_step()

        if time.monotonic() - run._last_ckpt >= cfg["checkpoint_every_s"]:
            with _timed(seconds, "checkpoint"):
                run.save_checkpoint()

    run.save_checkpoint()
    store.update_status(run.dir, state="done", step=run.frames, budget=budget, pid=None, finished=time.time())
    log.close(f"done: {run.frames} frames, last eval {log.last_eval:.1f}")
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
