"""Sum and max segment trees over replay slots: prioritized sampling in O(log N) per draw.

Drawing in proportion to p^alpha by a full pass over a million priorities costs tens of milliseconds per
update; a tree keeps every partial sum, so a draw descends one path and a priority change climbs one.
The max tree gives the largest current priority, which new steps receive (TDMPC helper.py ReplayBuffer).
"""

from __future__ import annotations

import numpy as np


class PriorityTrees:
    def __init__(self, capacity: int, alpha: float) -> None:
        self.alpha = alpha
        self.depth = max(1, int(np.ceil(np.log2(capacity))))
        self.size = 1 << self.depth  # leaves; node i has children 2i and 2i + 1, the root is node 1
        self.sums = np.zeros(2 * self.size, np.float64)  # of p^alpha
        self.maxes = np.zeros(2 * self.size, np.float32)  # of p

    @property
    def total(self) -> float:
        return float(self.sums[1])

    @property
    def max(self) -> float:
        return float(self.maxes[1])

    @property
    def priorities(self) -> np.ndarray:
        return self.maxes[self.size :]

    def mass(self, slots: np.ndarray) -> np.ndarray:
        """p^alpha of these slots."""
        return self.sums[np.asarray(slots) + self.size]

    def set(self, slots: np.ndarray, priorities: np.ndarray) -> None:
        node = np.asarray(slots, np.int64) + self.size
        self.maxes[node] = priorities
        self.sums[node] = np.asarray(priorities, np.float64) ** self.alpha
        for _ in range(self.depth):
            node = np.unique(node >> 1)
            self._pull(node)

    def set_one(self, slot: int, priority: float) -> None:
        """``set`` for one slot (a new step) in plain scalar steps: numpy's per-call cost on 1-element
        arrays made ``set`` ~100x slower than the rest of adding a step."""
        sums, maxes, node = self.sums, self.maxes, slot + self.size
        maxes[node], sums[node] = priority, float(priority) ** self.alpha
        node >>= 1
        while node:
            left = 2 * node
            sums[node] = sums[left] + sums[left + 1]
            maxes[node] = max(maxes[left], maxes[left + 1])
            node >>= 1

    def rebuild(self, priorities: np.ndarray) -> None:
        """Set every leaf at once (a checkpoint load), then every parent level by level."""
        self.maxes[:] = 0.0
        self.sums[:] = 0.0
        self.maxes[self.size : self.size + len(priorities)] = priorities
        self.sums[self.size : self.size + len(priorities)] = np.asarray(priorities, np.float64) ** self.alpha
        for level in range(self.depth - 1, -1, -1):
            self._pull(np.arange(1 << level, 2 << level))

    def _pull(self, node: np.ndarray) -> None:
        """Recompute these parents from their two children."""
        self.sums[node] = self.sums[2 * node] + self.sums[2 * node + 1]
        self.maxes[node] = np.maximum(self.maxes[2 * node], self.maxes[2 * node + 1])

    def find(self, targets: np.ndarray) -> np.ndarray:
        """The slot whose prefix-sum interval holds each target in [0, total)."""
        node = np.ones(len(targets), np.int64)
        rest = np.asarray(targets, np.float64).copy()
        for _ in range(self.depth):
            left = 2 * node
            right = rest >= self.sums[left]
            rest -= np.where(right, self.sums[left], 0.0)
            node = left + right
        return node - self.size
