"""N environments stepped together, so that the loop makes one batched policy call per step.

``make_vec_env`` builds them from a suite: one env runs in this process (a one-env run is unchanged,
bit for bit); several run one per worker process. Each worker's image lands in shared memory and the rest
of its observation (a few scalars, the state vector) travels over a pipe: for 64x64 frames this beat
pickling whole observations over pipes and gymnasium's AsyncVectorEnv (benchmarks/vec_env_speed.py).

Episodes: ``step`` returns for each env the observation its action led to and, where that one ends the
episode (``is_last``), the first observation of the next episode, which the env has already been reset to
(``None`` elsewhere; evaluation steps without that reset). That first observation is a step of its own
(``is_first``), as with one env. ``restore`` brings fresh envs to where a checkpointed run left them.

Seeds: env ``i`` of a run seeded ``s`` is seeded ``env_seed(s, i)``: env 0 gets ``s`` itself and env i > 0
a 31-bit number drawn from ``numpy.random.SeedSequence((s, i))``, so no env of one seed repeats an env of
another seed.

Failures: a worker that raises, dies (a simulator crash, the OOM killer, a kill) or does not answer within
``step_timeout_s`` raises ``WorkerError`` naming the worker and carrying its traceback or exit status; the
other workers are then stopped. Workers start with 'forkserver' by default: a forked child inherits the
parent's torch thread pools and EGL context, which are not fork-safe (tried: after the parent had rendered
a dmc frame with MUJOCO_GL=egl, forked workers hung at their first render; forkserver and spawn workers
rendered the frames of an in-process env).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
import traceback
from multiprocessing import connection, shared_memory
from typing import Any

import numpy as np

import suites

START_METHODS = ("forkserver", "spawn", "fork")
TRANSPORTS = ("shm", "pipe")
IMAGE = "image"


class WorkerError(RuntimeError):
    """An env worker raised, died or hung. The message names the worker and carries what it said."""


def env_seed(seed: int, index: int) -> int:
    """The seed of env ``index`` of a run seeded ``seed`` (see the module docstring)."""
    if index == 0:
        return seed
    return int(np.random.SeedSequence((seed, index)).generate_state(1)[0] >> 1)


def make_vec_env(
    suite: str,
    task: str,
    seed: int,
    env_config: dict[str, Any],
    mode: str,
    num_envs: int,
    step_timeout_s: float = 600.0,
    start_method: str = "forkserver",
    transport: str = "shm",
) -> InProcessEnvs | WorkerEnvs:
    """``num_envs`` envs of ``suite``/``task``, env i seeded ``env_seed(seed, i)``."""
    if num_envs < 1:
        raise ValueError(f"num_envs={num_envs}: must be at least 1")
    if num_envs == 1:
        return InProcessEnvs(suites.get(suite).make(task, seed, env_config, mode))
    specs = [(suite, task, env_seed(seed, i), env_config, mode) for i in range(num_envs)]
    return WorkerEnvs(specs, step_timeout_s, start_method, transport)


def _serve(env: Any, command: tuple) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """One command on one env, in this process or a worker: (observation, first observation of the next
    episode where the env was reset after ``is_last``, else None)."""
    if command[0] == "step":  # ("step", action, autoreset)
        obs = env.step(command[1])
        return obs, env.reset() if obs["is_last"] and command[2] else None
    if command[0] == "reset":
        return env.reset(), None
    # ("restore", resets, actions): a fresh env redoes its resets, then the actions of its current episode
    obs = None
    for _ in range(command[1]):
        obs = env.reset()
    for action in command[2]:
        obs = env.step(action)
    return obs, None


class _Envs:
    """What both kinds share: ``resets`` counts each env's resets (``restore`` needs them), and the calls
    that select envs. ``_call(commands)`` runs {env index: command} and returns {env index: reply}."""

    num_envs: int

    def _call(self, commands: dict[int, tuple]) -> dict[int, tuple]:
        raise NotImplementedError

    def reset(self, indices: list[int] | None = None) -> list[dict[str, Any] | None]:
        """Reset the envs ``indices`` (default all): their first observations, None for the others."""
        indices = range(self.num_envs) if indices is None else indices
        replies = self._call({i: ("reset",) for i in indices})
        for i in replies:
            self.resets[i] += 1
        return [replies[i][0] if i in replies else None for i in range(self.num_envs)]

    def step(
        self, actions: Any, active: list[bool] | None = None, autoreset: bool = True
    ) -> tuple[list[dict[str, Any] | None], list[dict[str, Any] | None]]:
        """Step the envs (those ``active``, default all) with their actions: (observations, first
        observations of the next episode where one ended and ``autoreset``), None for inactive envs."""
        active = [True] * self.num_envs if active is None else active
        replies = self._call({i: ("step", actions[i], autoreset) for i in range(self.num_envs) if active[i]})
        for i, (_, first) in replies.items():
            self.resets[i] += first is not None
        obs = [replies[i][0] if i in replies else None for i in range(self.num_envs)]
        return obs, [replies[i][1] if i in replies else None for i in range(self.num_envs)]

    def restore(self, resets: list[int], actions: list[np.ndarray]) -> list[dict[str, Any] | None]:
        """Bring fresh envs to where envs of the same seeds were after ``resets[i]`` resets and then the
        ``actions[i]`` of the current episode: exact when a simulator draws its randomness at resets only
        (dm_control, DMCR, Meta-World). Returns each env's current observation (None if never reset)."""
        if any(self.resets):
            raise RuntimeError("restore needs freshly made envs")
        replies = self._call({i: ("restore", resets[i], list(actions[i])) for i in range(self.num_envs)})
        self.resets = [int(r) for r in resets]
        return [replies[i][0] for i in range(self.num_envs)]


class InProcessEnvs(_Envs):
    """One env in this process behind the vector interface (a one-env run makes today's calls on it)."""

    num_envs = 1

    def __init__(self, env: Any) -> None:
        self.env = env
        self.action_repeat = env.action_repeat
        self.obs_space = env.obs_space
        self.act_space = env.act_space
        self.resets = [0]

    def _call(self, commands: dict[int, tuple]) -> dict[int, tuple]:
        return {i: _serve(self.env, command) for i, command in commands.items()}

    def close(self) -> None:
        self.env.close()


def _worker(index: int, num_envs: int, spec: tuple, conn: Any, shm_name: str | None) -> None:
    """Build one env, then serve commands until ("close",). Every reply is ("ok", payload) or ("error",
    traceback text); images of the payload's two observations go to this env's two shared-memory slots."""
    shm = None
    try:
        suite, task, seed, env_config, mode = spec
        env = suites.get(suite).make(task, seed, env_config, mode)
        images = None
        if shm_name is not None:
            shm = shared_memory.SharedMemory(name=shm_name)
            images = np.ndarray((num_envs, 2, *env.obs_space[IMAGE].shape), np.uint8, shm.buf)

        def pack(obs: dict[str, Any] | None, slot: int) -> dict[str, Any] | None:
            if obs is None or images is None:
                return obs
            images[index, slot] = obs[IMAGE]
            return {key: value for key, value in obs.items() if key != IMAGE}

        conn.send(("ok", (env.action_repeat, env.obs_space, env.act_space)))
        while (command := conn.recv())[0] != "close":
            obs, first = _serve(env, command)
            conn.send(("ok", (pack(obs, 0), pack(first, 1))))
        env.close()
        conn.send(("ok", None))
    except KeyboardInterrupt:  # the parent's Ctrl-C reaches the whole process group; the parent reports it
        return
    except BaseException:  # noqa: BLE001  (everything goes back to the parent, which raises it)
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))
    finally:
        if shm is not None:
            del images
            shm.close()


class WorkerEnvs(_Envs):
    """One env per worker process; see the module docstring."""

    def __init__(
        self,
        specs: list[tuple],
        step_timeout_s: float,
        start_method: str = "forkserver",
        transport: str = "shm",
    ) -> None:
        if start_method not in START_METHODS:
            raise ValueError(f"start_method={start_method!r}; valid: {', '.join(START_METHODS)}")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport={transport!r}; valid: {', '.join(TRANSPORTS)}")
        self.num_envs = len(specs)
        self.timeout = step_timeout_s
        self._shm: shared_memory.SharedMemory | None = None
        self._images: np.ndarray | None = None
        env_config = specs[0][3]
        if transport == "shm" and env_config.get("obs", IMAGE) in (IMAGE, "both"):
            side = env_config["image_size"]
            shape = (self.num_envs, 2, side, side, 3)
            self._shm = shared_memory.SharedMemory(create=True, size=int(np.prod(shape)))
            self._images = np.ndarray(shape, np.uint8, self._shm.buf)
        context = mp.get_context(start_method)
        if start_method == "forkserver":  # workers fork from a server that has imported the simulator once
            context.set_forkserver_preload([type(suites.get(specs[0][0])).__module__])
        self._conns, self._procs = [], []
        try:
            for index, spec in enumerate(specs):
                parent, child = context.Pipe()
                shm_name = None if self._shm is None else self._shm.name
                proc = context.Process(
                    target=_worker,
                    args=(index, self.num_envs, spec, child, shm_name),
                    name=f"env-{index}",
                    daemon=True,
                )
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
            self.action_repeat, self.obs_space, self.act_space = self._gather(list(range(self.num_envs)))[0]
            self.resets = [0] * self.num_envs
        except BaseException:
            self.close()
            raise
        if self._images is not None and self._images.shape[2:] != self.obs_space[IMAGE].shape:
            self.close()
            raise ValueError(f"env images are {self.obs_space[IMAGE].shape}, not {self._images.shape[2:]}")

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    def _call(self, commands: dict[int, tuple]) -> dict[int, tuple]:
        for i, command in commands.items():
            self._conns[i].send(command)
        replies = self._gather(list(commands))
        return {
            i: (self._unpack(i, obs, 0), self._unpack(i, first, 1)) for i, (obs, first) in replies.items()
        }

    def _unpack(self, index: int, obs: dict[str, Any] | None, slot: int) -> dict[str, Any] | None:
        if obs is None or self._images is None:
            return obs
        return {**obs, IMAGE: self._images[index, slot].copy()}

    def _gather(self, indices: list[int]) -> dict[int, Any]:
        """Each worker's payload; WorkerError on the first that raised, died or hung."""
        replies: dict[int, Any] = {}
        waiting = {self._conns[i]: i for i in indices}
        sentinels = {self._procs[i].sentinel: i for i in indices}
        deadline = time.monotonic() + self.timeout
        while waiting:
            watched = [*waiting, *(s for s, i in sentinels.items() if i in waiting.values())]
            ready = connection.wait(watched, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                late = ", ".join(f"env-{i} (pid {self._procs[i].pid})" for i in waiting.values())
                self._fail(f"env worker {late} did not answer within {self.timeout:g} s (run.env_timeout_s)")
            for handle in ready:
                if handle in waiting:
                    index = waiting.pop(handle)
                    try:
                        status, payload = handle.recv()
                    except (EOFError, OSError):
                        self._fail(self._death(index))
                    if status == "error":
                        self._fail(
                            f"env worker env-{index} (pid {self._procs[index].pid}) failed:\n{payload}"
                        )
                    replies[index] = payload
                elif sentinels[handle] in waiting.values() and not self._conns[sentinels[handle]].poll():
                    self._fail(self._death(sentinels[handle]))  # died (an answer sent first still counts)
        return replies

    def _death(self, index: int) -> str:
        proc = self._procs[index]
        proc.join(timeout=1.0)
        code = proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"env worker env-{index} (pid {proc.pid}) died ({how}) without an answer"

    def _fail(self, message: str) -> None:
        self.close(wait_s=0.0)  # a failed vector env is done: no grace for a hung worker
        raise WorkerError(message)

    def close(self, wait_s: float = 5.0) -> None:
        """Ask the workers to close their envs; kill any that has not exited after ``wait_s``."""
        for conn, proc in zip(self._conns, self._procs):
            if proc.is_alive():
                with contextlib.suppress(OSError):
                    conn.send(("close",))
        for proc in self._procs:
            proc.join(timeout=wait_s)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []
        if self._shm is not None:
            self._images = None
            self._shm.close()
            self._shm.unlink()
            self._shm = None
