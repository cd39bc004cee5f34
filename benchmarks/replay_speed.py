"""Replay speed: sampling uniform, prioritized (sum/max trees), and the full-pass draw TDMPC does
(np.random.choice over every priority) as the baseline, side by side, median ms per batch; and the cost of
adding a step with and without priorities (mean us over the fill).

    python benchmarks/replay_speed.py [--capacities 100000 1000000] [--batch 256] [--length 6]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.replay import Replay

STEP = {"state": np.zeros(24, np.float32), "action": np.zeros(6, np.float32), "reward": np.float32(0.0)}
PER = (0.6, 0.4)  # TDMPC default.yaml per_alpha, per_beta


def full_pass_draw(priority: np.ndarray, batch: int, rng: np.random.Generator) -> np.ndarray:
    """TDMPC helper.py ReplayBuffer.sample: p^alpha normalised over every slot, then np.random.choice."""
    probs = priority.astype(np.float64) ** PER[0]
    probs /= probs.sum()
    starts = rng.choice(len(probs), size=batch, p=probs)
    weight = (len(probs) * probs[starts]) ** -PER[1]
    return weight / weight.max()


def median_ms(repeats: int, fn, *args) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--capacities", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=256)  # TDMPC pixels.yaml batch_size 256
    parser.add_argument("--length", type=int, default=6)  # horizon 5 + 1
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"batch {args.batch} x {args.length}, state steps, median of {args.repeats}")
    header = f"{'capacity':>10}{'uniform ms':>12}{'trees ms':>10}{'full pass ms':>14}{'full/trees':>12}"
    print(header + f"{'add us':>8}{'add+tree us':>13}")
    for capacity in args.capacities:
        uniform, prioritized = Replay(capacity), Replay(capacity, per=PER)
        add_us = []
        for buffer in (uniform, prioritized):
            start = time.perf_counter()
            for _ in range(capacity):
                buffer.add(STEP)
            add_us.append(1e6 * (time.perf_counter() - start) / capacity)
        starts = np.arange(capacity - args.length)
        prioritized.update_priorities(starts, rng.uniform(0.1, 5.0, len(starts)))
        priority = prioritized.priority.copy()
        u = median_ms(args.repeats, uniform.sample, args.batch, args.length, rng)
        t = median_ms(args.repeats, prioritized.sample, args.batch, args.length, rng)
        f = median_ms(args.repeats, full_pass_draw, priority, args.batch, rng)
        row = f"{capacity:>10}{u:>12.2f}{t:>10.2f}{f:>14.2f}{f / t:>11.1f}x"
        print(row + f"{add_us[0]:>8.1f}{add_us[1]:>13.1f}", flush=True)


if __name__ == "__main__":
    main()
