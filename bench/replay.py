"""Sequence replay over one flat stream of steps, saved incrementally with the checkpoint.

Steps are stored in preallocated ring arrays (uint8 images stay uint8). Sequences are cut anywhere in the
stream and may cross episode boundaries; ``is_first`` tells the agent where to reset (as in DreamerV3).

Prioritized replay (Schaul et al. 2016, as TD-MPC uses it), when made with ``per`` = (alpha, beta): each
step holds the priority of a sequence starting there; new steps get the largest current priority; a start
is drawn with probability P = p^alpha / sum p^alpha over the valid starts (from sum/max trees) and its loss
weighted by (N P)^-beta / max over the batch, returned as ``start`` and ``weight``.

Checkpointing writes each completed chunk of ``chunk`` steps once, as an immutable file named by its global
position; the partial last chunk travels inside the checkpoint itself. A checkpoint therefore costs at most
one chunk of new data however large the buffer, and files of chunks that fell out of the buffer are removed
only after the checkpoint that no longer needs them is in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.priority_tree import PriorityTrees


class Replay:
    def __init__(self, capacity: int, chunk: int = 1024, per: tuple[float, float] | None = None) -> None:
        if capacity < 2:
            raise ValueError(f"run.replay_capacity={capacity}: must be at least 2")
        self.capacity = capacity
        self.chunk = chunk
        self.total = 0  # steps ever added; global index of the next step
        self._data: dict[str, np.ndarray] = {}
        self.per = per
        self._trees = None if per is None else PriorityTrees(capacity, per[0])

    def __len__(self) -> int:
        return min(self.total, self.capacity)

    @property
    def _oldest(self) -> int:
        return max(0, self.total - self.capacity)

    def add(self, step: dict[str, Any]) -> None:
        if not self._data:
            self._allocate(step)
        slot = self.total % self.capacity
        for key, array in self._data.items():
            array[slot] = step[key]
        if self._trees is not None:  # TDMPC: priorities start at 1, new steps take the current maximum
            self._trees.set_one(slot, self._trees.max or 1.0)
        self.total += 1

    def _allocate(self, step: dict[str, Any]) -> None:
        for key, value in step.items():
            value = np.asarray(value)
            # np.zeros maps untouched pages lazily, so a large capacity costs memory only as it fills.
            self._data[key] = np.zeros((self.capacity, *value.shape), dtype=value.dtype)

    @property
    def priority(self) -> np.ndarray | None:
        """Priority of each ring slot (0 where nothing is held yet); None without ``per``."""
        return None if self._trees is None else self._trees.priorities[: self.capacity]

    def sample(self, batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``batch`` sequences of ``length`` consecutive steps, uniformly over valid starts, or by priority
        (with ``start`` and ``weight``) when the buffer was made with ``per``."""
        if len(self) < length:
            raise ValueError(f"replay holds {len(self)} steps, fewer than a sequence of {length}")
        if self._trees is None:
            starts = rng.integers(self._oldest, self.total - length + 1, size=batch)
        else:
            starts, weight = self._prioritized_starts(batch, length, rng)
        index = (starts[:, None] + np.arange(length)[None]) % self.capacity
        out = {key: array[index] for key, array in self._data.items()}
        if self._trees is not None:
            out.update(start=starts, weight=weight)
        return out

    def _prioritized_starts(
        self, batch: int, length: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        trees, last = self._trees, self.total - length  # the newest start with a whole sequence
        starts = np.empty(0, np.int64)
        while len(starts) < batch:  # the newest length - 1 steps cannot start one yet: draw again
            slots = trees.find(rng.random(batch - len(starts)) * trees.total)
            slots = slots[trees.mass(slots) > 0]  # float rounding can end on an empty leaf
            found = self._oldest + (slots - self._oldest) % self.capacity
            starts = np.concatenate([starts, found[found <= last]])
        unstartable = np.arange(last + 1, self.total) % self.capacity
        probs = trees.mass(starts % self.capacity) / (trees.total - trees.mass(unstartable).sum())
        weight = ((len(self) - length + 1) * probs) ** -self.per[1]
        return starts, (weight / weight.max()).astype(np.float32)

    def update_priorities(self, starts: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priority of sequences starting at global steps ``starts`` (TDMPC: |TD error| + 1e-6)."""
        if self._trees is None:
            raise ValueError("update_priorities needs a Replay made with per=(alpha, beta)")
        self._trees.set(np.asarray(starts) % self.capacity, np.asarray(priorities, np.float32) + 1e-6)

    # --- persistence -------------------------------------------------------------------------------
    def _chunk_path(self, directory: Path, k: int) -> Path:
        return directory / f"chunk_{k:09d}.npz"

    def _order(self) -> np.ndarray:
        """Ring slots of the held steps, oldest first."""
        return np.arange(self._oldest, self.total) % self.capacity

    def _slice(self, start: int, stop: int) -> dict[str, np.ndarray]:
        index = np.arange(start, stop) % self.capacity
        return {key: array[index] for key, array in self._data.items()}

    def save(self, directory: Path) -> dict[str, Any]:
        """Write completed chunks not yet on disk; return the metadata (with the partial tail) to store in
        the checkpoint. Call ``prune`` after the checkpoint is in place."""
        directory.mkdir(parents=True, exist_ok=True)
        first_chunk = self._oldest // self.chunk
        complete = self.total // self.chunk
        for k in range(first_chunk, complete):
            path = self._chunk_path(directory, k)
            if not path.exists():
                tmp = path.with_name(path.stem + ".tmp.npz")
                np.savez(tmp, **self._slice(k * self.chunk, (k + 1) * self.chunk))
                tmp.replace(path)
        return {
            "capacity": self.capacity,
            "chunk": self.chunk,
            "total": self.total,
            "tail": self._slice(complete * self.chunk, self.total),
            # priorities change after they are written, so they travel whole with each checkpoint
            "priority": None if self._trees is None else self.priority[self._order()],
            "specimen": {key: (array.shape[1:], str(array.dtype)) for key, array in self._data.items()},
        }

    def prune(self, directory: Path) -> None:
        """Delete chunk files wholly older than the buffer's oldest step, and stray temporaries."""
        first_chunk = self._oldest // self.chunk
        for path in directory.glob("chunk_*.npz"):
            stem = path.name[len("chunk_") : -len(".npz")]
            if not stem.isdigit() or int(stem) < first_chunk:
                path.unlink(missing_ok=True)

    def load(self, directory: Path, meta: dict[str, Any]) -> None:
        if meta["capacity"] != self.capacity or meta["chunk"] != self.chunk:
            raise ValueError("replay capacity/chunk differ from the checkpoint's")
        self.total = 0
        self._data = {}
        if meta["specimen"]:
            self._data = {
                key: np.zeros((self.capacity, *shape), dtype=np.dtype(dtype))
                for key, (shape, dtype) in meta["specimen"].items()
            }
        self.total = meta["total"]
        oldest = self._oldest
        complete = self.total // self.chunk
        for k in range(oldest // self.chunk, complete):
            with np.load(self._chunk_path(directory, k)) as chunk:
                start = max(k * self.chunk, oldest)
                offset = start - k * self.chunk
                index = np.arange(start, (k + 1) * self.chunk) % self.capacity
                for key, array in self._data.items():
                    array[index] = chunk[key][offset:]
        tail_index = np.arange(complete * self.chunk, self.total) % self.capacity
        for key, array in self._data.items():
            array[tail_index] = meta["tail"][key]
        if self._trees is not None:
            if meta.get("priority") is None:
                raise ValueError("the checkpoint's replay has no priorities; this run samples by priority")
            priority = np.zeros(self.capacity, np.float32)
            priority[self._order()] = meta["priority"]
            self._trees.rebuild(priority)
