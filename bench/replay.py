"""Sequence replay over one stream of steps per env, saved incrementally with the checkpoint.

Steps are stored in preallocated ring arrays (uint8 images stay uint8). With N envs the buffer holds N
streams, each its own ring of ``capacity // N`` steps; a sequence lies within one stream, so it never
mixes envs. Sequences are cut anywhere in a stream and may cross episode boundaries; ``is_first`` tells the
agent where to reset (as in DreamerV3). Uniform sampling draws a start uniformly over every valid start of
every stream (a one-stream buffer draws exactly as before streams existed).

Episode sampling (``sampling="episodes"``), the replay of DreamerV2 and the code built on it (thuml/HarmonyDream
wmlib/core/replay.py Replay._sample_sequence, fdeng18/dreamer-pro common/replay.py sample_episodes): a
sequence never crosses an episode boundary. An episode is drawn uniformly among the complete ones wholly held
(those that reached ``is_last``; an episode counts once, whatever its length) longer than ``length``
steps, then a start within it uniformly over its ``total - length + 1`` starts plus ``ends`` more that all
fall on the last one (HD ``prioritize_ends``/``ends_priority``; DreamerPro's ``oversample_ends`` is
``ends = length - 1``). With ``mark_first`` every sequence's first step is marked ``is_first``, as HD does, so
that an update starts it from the initial state and a zero previous action whatever state it carries over.

Prioritized replay (Schaul et al. 2016, as TD-MPC uses it), when made with ``per`` = (alpha, beta): each
step holds the priority of a sequence starting there; new steps get the largest current priority; a start
is drawn with probability P = p^alpha / sum p^alpha over the valid starts (from sum/max trees) and its loss
weighted by (N P)^-beta / max over the batch, returned as ``start`` and ``weight``. A ``start`` names step t
of stream s as ``t * streams + s`` (step t itself with one stream).

Checkpointing writes each completed chunk of ``chunk`` steps of a stream once, as an immutable file named by
its stream and position; the partial last chunk travels inside the checkpoint itself. A checkpoint therefore costs at most
one chunk of new data however large the buffer, and files of chunks that fell out of the buffer are removed
only after the checkpoint that no longer needs them is in place.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from bench.priority_tree import PriorityTrees

SAMPLING = ("stream", "episodes")


def check_sampling(run: dict[str, Any], prioritized: bool = False) -> None:
    """Raise ValueError (one line) on a bad ``run.replay_sampling`` / ``run.replay_ends`` value."""
    sampling = run["replay_sampling"]
    if sampling not in SAMPLING or (prioritized and sampling != "stream"):
        valid = "stream (the agent samples by priority)" if prioritized else ", ".join(SAMPLING)
        raise ValueError(f"run.replay_sampling={sampling!r} is invalid; valid choices: {valid}")
    if run["replay_ends"] < 0:
        raise ValueError(f"run.replay_ends={run['replay_ends']} is invalid; valid: an int >= 0")


class Replay:
    def __init__(
        self,
        capacity: int,
        chunk: int = 1024,
        per: tuple[float, float] | None = None,
        streams: int = 1,
        sampling: str = "stream",
        ends: int = 0,
        mark_first: bool = False,
    ) -> None:
        check_sampling({"replay_sampling": sampling, "replay_ends": ends}, per is not None)
        if streams < 1:
            raise ValueError(f"replay streams={streams}: must be at least 1 (one per env)")
        if capacity // streams < 2:
            raise ValueError(f"run.replay_capacity={capacity}: must be at least 2 per env ({streams} envs)")
        self.capacity = capacity
        self.streams = streams
        self.stream_capacity = capacity // streams
        self.chunk = chunk
        self.totals = [0] * streams  # steps ever added to each stream; the index of its next step
        self._data: dict[str, np.ndarray] = {}
        self.per = per
        self._trees = None if per is None else PriorityTrees(capacity, per[0])
        self.sampling, self.ends, self.mark_first = sampling, ends, mark_first
        self._open: list[int | None] = [None] * streams  # per stream, where its unfinished episode starts
        self._episodes: list[deque[tuple[int, int]]] = [deque() for _ in range(streams)]  # complete, held
        self._table: tuple[int, np.ndarray] | None = None  # (length, drawable episodes): rebuilt on change

    @property
    def total(self) -> int:
        return sum(self.totals)

    def __len__(self) -> int:
        return sum(min(total, self.stream_capacity) for total in self.totals)

    def _oldest(self, stream: int) -> int:
        return max(0, self.totals[stream] - self.stream_capacity)

    def _slots(self, stream: Any, steps: Any) -> Any:
        """Ring slots of step(s) ``steps`` of stream(s) ``stream``."""
        return stream * self.stream_capacity + steps % self.stream_capacity

    def add(self, step: dict[str, Any], stream: int = 0) -> None:
        if not self._data:
            self._allocate(step)
        slot = self._slots(stream, self.totals[stream])
        for key, array in self._data.items():
            array[slot] = step[key]
        if self._trees is not None:  # TDMPC: priorities start at 1, new steps take the current maximum
            self._trees.set_one(slot, self._trees.max or 1.0)
        if self.sampling == "episodes":
            self._track_episode(stream, self.totals[stream], step["is_first"], step["is_last"])
        self.totals[stream] += 1
        episodes = self._episodes[stream]  # empty with stream sampling
        while episodes and episodes[0][0] < self._oldest(stream):  # its first steps left the ring
            episodes.popleft()
            self._table = None

    def _track_episode(self, stream: int, index: int, is_first: bool, is_last: bool) -> None:
        if is_first:  # an unfinished episode before it (a resumed run's restart) is never sampled
            self._open[stream] = index
        if is_last and self._open[stream] is not None:
            self._episodes[stream].append((self._open[stream], index + 1))
            self._open[stream], self._table = None, None

    def _allocate(self, step: dict[str, Any]) -> None:
        for key, value in step.items():
            value = np.asarray(value)
            # np.zeros maps untouched pages lazily, so a large capacity costs memory only as it fills.
            self._data[key] = np.zeros((self.capacity, *value.shape), dtype=value.dtype)

    @property
    def priority(self) -> np.ndarray | None:
        """Priority of each ring slot (0 where nothing is held yet); None without ``per``."""
        return None if self._trees is None else self._trees.priorities[: self.capacity]

    def valid_starts(self, length: int) -> np.ndarray:
        """Per stream, how many of its held steps start a whole sequence of ``length`` steps (with episode
        sampling, a sequence within one complete episode)."""
        if self.sampling == "episodes":
            table = self._drawable(length)
            starts = table[:, 2] - table[:, 1] - length + 1
            return np.bincount(table[:, 0], weights=starts, minlength=self.streams).astype(np.int64)
        held = np.minimum(self.totals, self.stream_capacity)
        return np.maximum(0, held - length + 1)

    def sample(self, batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``batch`` sequences of ``length`` consecutive steps of one stream each, uniformly over the valid
        starts of all streams, by priority (with ``start`` and ``weight``) when made with ``per``, or within
        episodes with ``sampling="episodes"``."""
        if self.sampling == "episodes":
            return self._sample_episodes(batch, length, rng)
        counts = self.valid_starts(length)
        if counts.sum() == 0:
            within = f" of any of its {self.streams} streams" if self.streams > 1 else ""
            raise ValueError(f"replay holds {len(self)} steps, fewer than a sequence of {length}{within}")
        oldest = np.array([self._oldest(s) for s in range(self.streams)])
        if self._trees is None:
            draws = rng.integers(0, counts.sum(), size=batch)
            ends = np.cumsum(counts)
            stream = np.searchsorted(ends, draws, side="right")
            starts = oldest[stream] + draws - (ends - counts)[stream]
        else:
            stream, starts, weight = self._prioritized_starts(batch, length, rng, oldest, counts)
        index = self._slots(stream[:, None], starts[:, None] + np.arange(length)[None])
        out = {key: array[index] for key, array in self._data.items()}
        if self._trees is not None:
            out.update(start=starts * self.streams + stream, weight=weight)
        return out

    def _drawable(self, length: int) -> np.ndarray:
        """(stream, first step, stop) of each complete held episode of more than ``length`` steps."""
        if self._table is None or self._table[0] != length:
            # longer than a sequence: HD skips episodes of len - 1 < minlen, PRO those of len - length < 1
            rows = [(s, a, b) for s, eps in enumerate(self._episodes) for a, b in eps if b - a > length]
            self._table = (length, np.array(rows, np.int64).reshape(-1, 3))
        return self._table[1]

    def _sample_episodes(self, batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        table = self._drawable(length)
        if not len(table):
            raise ValueError(
                f"replay holds no complete episode longer than {length} steps (run.replay_sampling=episodes)"
            )
        stream, first, stop = table[rng.integers(0, len(table), size=batch)].T
        last = stop - first - length  # the latest start within the episode
        starts = first + np.minimum(rng.integers(0, last + 1 + self.ends), last)
        index = self._slots(stream[:, None], starts[:, None] + np.arange(length)[None])
        out = {key: array[index] for key, array in self._data.items()}
        if self.mark_first:
            out["is_first"][:, 0] = True
        return out

    def _prioritized_starts(
        self, batch: int, length: int, rng: np.random.Generator, oldest: np.ndarray, counts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        trees, size = self._trees, self.stream_capacity
        last = np.array(self.totals) - length  # per stream, the newest start with a whole sequence
        stream, starts = np.empty(0, np.int64), np.empty(0, np.int64)
        while len(starts) < batch:  # the newest length - 1 steps of a stream cannot start one yet: redraw
            slots = trees.find(rng.random(batch - len(starts)) * trees.total)
            slots = slots[trees.mass(slots) > 0]  # float rounding can end on an empty leaf
            owner = slots // size
            found = oldest[owner] + (slots % size - oldest[owner]) % size
            keep = found <= last[owner]
            stream, starts = np.concatenate([stream, owner[keep]]), np.concatenate([starts, found[keep]])
        unstartable = np.concatenate(
            [
                self._slots(s, np.arange(max(oldest[s], last[s] + 1), self.totals[s]))
                for s in range(self.streams)
            ]
        )
        probs = trees.mass(self._slots(stream, starts)) / (trees.total - trees.mass(unstartable).sum())
        weight = (counts.sum() * probs) ** -self.per[1]
        return stream, starts, (weight / weight.max()).astype(np.float32)

    def current_episode(self, stream: int) -> dict[str, np.ndarray] | None:
        """The held steps of ``stream`` from its newest ``is_first`` on (the episode its env is in), or None
        when that first step has left the buffer."""
        held = self._slice(stream, self._oldest(stream), self.totals[stream])
        firsts = np.flatnonzero(held["is_first"]) if held else []
        return {key: array[firsts[-1] :] for key, array in held.items()} if len(firsts) else None

    def update_priorities(self, starts: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priority of sequences at ``starts`` as ``sample`` names them (TDMPC: |TD error| + 1e-6)."""
        if self._trees is None:
            raise ValueError("update_priorities needs a Replay made with per=(alpha, beta)")
        starts = np.asarray(starts)
        slots = self._slots(starts % self.streams, starts // self.streams)
        self._trees.set(slots, np.asarray(priorities, np.float32) + 1e-6)

    # --- persistence -------------------------------------------------------------------------------
    def _chunk_prefix(self, stream: int) -> str:
        # stream 0's names are those of a one-stream buffer, so its checkpoints stay as they were
        return "chunk_" if stream == 0 else f"stream{stream}_chunk_"

    def _chunk_path(self, directory: Path, stream: int, k: int) -> Path:
        return directory / f"{self._chunk_prefix(stream)}{k:09d}.npz"

    def _order(self) -> np.ndarray:
        """Ring slots of the held steps, stream by stream, oldest first."""
        parts = [self._slots(s, np.arange(self._oldest(s), self.totals[s])) for s in range(self.streams)]
        return np.concatenate(parts)

    def _slice(self, stream: int, start: int, stop: int) -> dict[str, np.ndarray]:
        index = self._slots(stream, np.arange(start, stop))
        return {key: array[index] for key, array in self._data.items()}

    def save(self, directory: Path) -> dict[str, Any]:
        """Write completed chunks not yet on disk; return the metadata (with the partial tails) to store in
        the checkpoint. Call ``prune`` after the checkpoint is in place."""
        directory.mkdir(parents=True, exist_ok=True)
        tails = []
        for stream, total in enumerate(self.totals):
            complete = total // self.chunk
            for k in range(self._oldest(stream) // self.chunk, complete):
                path = self._chunk_path(directory, stream, k)
                if not path.exists():
                    tmp = path.with_name(path.stem + ".tmp.npz")
                    np.savez(tmp, **self._slice(stream, k * self.chunk, (k + 1) * self.chunk))
                    tmp.replace(path)
            tails.append(self._slice(stream, complete * self.chunk, total))
        return {
            "capacity": self.capacity,
            "chunk": self.chunk,
            "streams": self.streams,
            "total": self.total,
            "totals": list(self.totals),
            "tails": tails,
            # priorities change after they are written, so they travel whole with each checkpoint
            "priority": None if self._trees is None else self.priority[self._order()],
            "specimen": {key: (array.shape[1:], str(array.dtype)) for key, array in self._data.items()},
        }

    def prune(self, directory: Path) -> None:
        """Delete chunk files wholly older than their stream's oldest step, and stray temporaries."""
        for stream in range(self.streams):
            prefix = self._chunk_prefix(stream)
            first_chunk = self._oldest(stream) // self.chunk
            for path in directory.glob(f"{prefix}*.npz"):
                stem = path.name[len(prefix) : -len(".npz")]
                if not stem.isdigit() or int(stem) < first_chunk:
                    path.unlink(missing_ok=True)

    def load(self, directory: Path, meta: dict[str, Any]) -> None:
        if meta["capacity"] != self.capacity or meta["chunk"] != self.chunk:
            raise ValueError("replay capacity/chunk differ from the checkpoint's")
        if meta.get("streams", 1) != self.streams:
            raise ValueError(
                f"the checkpoint's replay has {meta.get('streams', 1)} streams, this run {self.streams}"
            )
        # a checkpoint from before streams holds one stream as "total" and "tail"
        totals, tails = meta.get("totals", [meta.get("total")]), meta.get("tails", [meta.get("tail")])
        self.totals = [0] * self.streams
        self._open, self._episodes = [None] * self.streams, [deque() for _ in range(self.streams)]
        self._table = None
        self._data = {}
        if meta["specimen"]:
            self._data = {
                key: np.zeros((self.capacity, *shape), dtype=np.dtype(dtype))
                for key, (shape, dtype) in meta["specimen"].items()
            }
        self.totals = [int(total) for total in totals]
        for stream, total in enumerate(self.totals):
            oldest = self._oldest(stream)
            complete = total // self.chunk
            for k in range(oldest // self.chunk, complete):
                with np.load(self._chunk_path(directory, stream, k)) as chunk:
                    start = max(k * self.chunk, oldest)
                    offset = start - k * self.chunk
                    index = self._slots(stream, np.arange(start, (k + 1) * self.chunk))
                    for key, array in self._data.items():
                        array[index] = chunk[key][offset:]
            tail_index = self._slots(stream, np.arange(complete * self.chunk, total))
            for key, array in self._data.items():
                array[tail_index] = tails[stream][key]
        if self.sampling == "episodes" and self._data:  # the episode index follows from the held steps' flags
            for stream in range(self.streams):
                oldest = self._oldest(stream)
                index = self._slots(stream, np.arange(oldest, self.totals[stream]))
                first, last = self._data["is_first"][index], self._data["is_last"][index]
                for offset in np.flatnonzero(first | last):
                    self._track_episode(stream, oldest + offset, first[offset], last[offset])
        if self._trees is not None:
            if meta.get("priority") is None:
                raise ValueError("the checkpoint's replay has no priorities; this run samples by priority")
            priority = np.zeros(self.capacity, np.float32)
            priority[self._order()] = meta["priority"]
            self._trees.rebuild(priority)
