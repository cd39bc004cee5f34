"""The agent contract shared by every backbone (DreamerV2/V3, DreamerPro, TD-MPC).

The loop owns the env, the replay buffer, counters, RNG and checkpoints; an agent owns its networks,
optimizers and balancer. Agents never import the runner.

Replay batches are dicts of numpy arrays shaped (B, T, ...):
  ``image`` uint8 (B, T, H, W, C) and/or ``state`` float32, ``action`` float32 (B, T, A) — the action that
  led INTO step t (zeros where is_first), ``reward`` float32 (B, T) — the reward received on that
  transition, ``is_first``, ``is_last``, ``is_terminal`` bool (B, T).
Sequences are cut from one flat stream and may cross episode boundaries: an agent resets its recurrent
state (and previous action) wherever ``is_first`` is true.
Discrete actions are one-hot float vectors in both directions.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Agent(Protocol):
    batch_size: int  # sequences per update
    batch_length: int  # steps per sequence
    # (alpha, beta) asks the loop for prioritized replay (TD-MPC), None for uniform replay. Batches then
    # also hold ``start`` and ``weight`` (B,) importance weights for the losses.
    prioritized: tuple[float, float] | None

    def policy(self, obs: dict[str, np.ndarray], state: Any, mode: str) -> tuple[np.ndarray, Any]:
        """Actions for a batch of observations (leading dim N). ``mode``: "train" (explore) or "eval".

        ``obs`` holds the env dict's keys batched; ``state`` is None at the start and whatever the agent
        returned last time otherwise. Returns (actions float32 (N, A), new state).
        """
        ...

    def train(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One update. Returns metrics: ``loss/<group>`` for every loss term the balancer sees (raw, before
        weighting), ``weight/<group>`` for each effective weight, plus any other scalars (actor, critic, ...).
        The loop stops the run if any ``loss/*`` value is not finite."""
        ...

    def after_update(self, batch: dict[str, np.ndarray], metrics: dict[str, float]) -> np.ndarray | None:
        """Called by the loop after each ``train(batch)``: the new priority (B,) of each sequence of the
        batch when ``prioritized``, else None."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training bit for bit: nets, optimizers, balancer, EMA stats."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
