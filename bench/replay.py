"""Sequence replay over one flat stream of steps, saved incrementally with the checkpoint.

Steps are stored in preallocated ring arrays (uint8 images stay uint8). Sequences are cut anywhere in the
stream and may cross episode boundaries; ``is_first`` tells the agent where to reset (as in DreamerV3).

Checkpointing writes each completed chunk of ``chunk`` steps once, as an immutable file named by its global
position; the partial last chunk travels inside the checkpoint itself. A checkpoint therefore costs at most
one chunk of new data however large the buffer, and files of chunks that fell out of the buffer are removed
only after the checkpoint that no longer needs them is in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class Replay:
    def __init__(self, capacity: int, chunk: int = 1024) -> None:
        if capacity < 2:
            raise ValueError(f"run.replay_capacity={capacity}: must be at least 2")
        self.capacity = capacity
        self.chunk = chunk
        self.total = 0  # steps ever added; global index of the next step
        self._data: dict[str, np.ndarray] = {}

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
        self.total += 1

    def _allocate(self, step: dict[str, Any]) -> None:
        for key, value in step.items():
            value = np.asarray(value)
            # np.zeros maps untouched pages lazily, so a large capacity costs memory only as it fills.
            self._data[key] = np.zeros((self.capacity, *value.shape), dtype=value.dtype)

    def sample(self, batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``batch`` sequences of ``length`` consecutive steps, uniformly over valid starts."""
        if len(self) < length:
            raise ValueError(f"replay holds {len(self)} steps, fewer than a sequence of {length}")
        starts = rng.integers(self._oldest, self.total - length + 1, size=batch)
        index = (starts[:, None] + np.arange(length)[None]) % self.capacity
        return {key: array[index] for key, array in self._data.items()}

    # --- persistence -------------------------------------------------------------------------------
    def _chunk_path(self, directory: Path, k: int) -> Path:
        return directory / f"chunk_{k:09d}.npz"

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
