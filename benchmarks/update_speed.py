"""Milliseconds per training update (world model + actor-critic) on this machine, fp32 by default.

Rows are agent names as ``agents.make`` understands them, so new backbones (TD-MPC, DreamerPro) and any
``<backbone>+<balancer>`` pair are one more row. Balancer rows report their overhead relative to the same
backbone with fixed weights.

    .venv/bin/python benchmarks/update_speed.py            # paper sizes: DV2 at HD's DMCR preset, DV3 size S
    .venv/bin/python benchmarks/update_speed.py --quick    # the small preset, for a fast look
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import agents


@dataclass
class Row:
    label: str
    agent: str
    suite: str
    baseline: str = ""  # label of the row this one is an overhead of
    balancer: dict[str, Any] = field(default_factory=dict)  # extra balancer knobs


ROWS = [
    Row("dreamerv2", "dreamerv2", "dmcr"),  # HD's DMCR preset: deter 1024, batch 16x50, 64x64 images
    Row("dreamerv3", "dreamerv3", "dmc"),  # DV3 dmc_vision: size S, batch 16x64
    Row("harmonydream", "harmonydream", "dmcr", "dreamerv2"),
    Row("uw", "uw", "dmcr", "dreamerv2"),
    Row("dwa", "dwa", "dmcr", "dreamerv2"),
    Row("nashmtl (every 1)", "nashmtl", "dmcr", "dreamerv2", {"nash_update_every": 1}),
    Row("nashmtl (every 10)", "nashmtl", "dmcr", "dreamerv2", {"nash_update_every": 10}),
    Row("dreamerpro", "dreamerpro", "dmc"),  # PRO DMC: batch 50x51, deter 200
    Row("tdmpc", "tdmpc", "metaworld"),  # the paper compares TD-MPC on visual Meta-world; + planning call
]
SPEED_FILE = Path(__file__).resolve().parent / "results" / "update_speed.json"  # read by `bench plan`


def spaces(image: int, actions: int) -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    obs = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (image, image, 3), np.uint8)})
    return obs, gym.spaces.Box(-1.0, 1.0, (actions,), np.float32)


def random_batch(batch: int, length: int, image: int, actions: int, rng: np.random.Generator) -> dict:
    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    return {
        "image": rng.integers(0, 256, (batch, length, image, image, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (batch, length, actions)).astype(np.float32),
        "reward": rng.normal(size=(batch, length)).astype(np.float32),
        "is_first": is_first,
        "is_last": np.zeros((batch, length), bool),
        "is_terminal": np.zeros((batch, length), bool),
    }


def time_row(
    row: Row, preset: str, warmup: int, repeats: int, device: torch.device, precision: str
) -> tuple[float, float, float]:
    """(wall ms, process CPU ms) per update, and wall ms per planning call for planning agents (else NaN).
    CPU time stays meaningful on a shared, loaded machine."""
    config = agents.default_config(row.agent, preset, row.suite)["agent"]
    if "precision" in config:  # TD-MPC runs in fp32 only
        config["precision"] = precision
    config["balancer"].update(row.balancer)
    obs_space, act_space = spaces(64, 6)  # cheetah_run: 6 action dims
    agent = agents.make(row.agent, obs_space, act_space, config, device)
    rng = np.random.default_rng(0)
    batches = [
        random_batch(agent.batch_size, agent.batch_length, 64, 6, rng) for _ in range(warmup + repeats)
    ]
    for batch in batches[:warmup]:
        agent.train(batch)
    start, cpu = time.perf_counter(), time.process_time()
    for batch in batches[warmup:]:
        agent.train(batch)  # returns python floats: the update has finished on the device
    wall, cpu_ms = (
        (time.perf_counter() - start) / repeats * 1000,
        (time.process_time() - cpu) / repeats * 1000,
    )
    plan_ms = float("nan")
    if row.agent == "tdmpc":  # the policy plans: one call per env step
        obs = {"image": batches[0]["image"][:1, 0]}
        agent.policy(obs, None, "eval")
        start = time.perf_counter()
        for _ in range(repeats):
            agent.policy(obs, None, "eval")  # returns numpy actions: the planning call has finished
        plan_ms = (time.perf_counter() - start) / repeats * 1000
    return wall, cpu_ms, plan_ms


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small preset, 1 warm-up + 2 timed updates")
    parser.add_argument("--preset", default="", help="override the preset (paper, small, smoke)")
    parser.add_argument("--rows", nargs="*", default=[], help="labels or agent names to run (default: all)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--save", action="store_true", help=f"write ms per update to {SPEED_FILE} for `bench plan`"
    )
    args = parser.parse_args()
    preset = args.preset or ("small" if args.quick else "paper")
    repeats = 2 if args.quick else args.repeats
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = [r for r in ROWS if not args.rows or r.label in args.rows or r.agent in args.rows]
    device = torch.device(args.device)
    print(
        f"preset={preset} device={device} precision={args.precision} threads={torch.get_num_threads()} "
        f"warmup={args.warmup} repeats={repeats}"
    )
    print(
        f"{'agent':<22}{'suite':<7}{'batch':>8}{'ms/update':>12}{'cpu ms':>10}{'vs fixed':>10}{'plan ms':>10}"
    )
    times: dict[str, float] = {}
    measured: dict[str, float] = {}
    for row in rows:
        config = agents.default_config(row.agent, preset, row.suite)["agent"]
        ms, cpu_ms, plan_ms = time_row(row, preset, args.warmup, repeats, device, args.precision)
        measured.setdefault(row.agent, ms)  # nashmtl: the first row, at its default update_every 1
        # overhead ratios from CPU time on a CPU (robust to other load on a shared machine); on a GPU the
        # host mostly waits, so wall time is the cost
        times[row.label] = cpu_ms if device.type == "cpu" else ms
        ratio = f"{times[row.label] / times[row.baseline]:.2f}x" if row.baseline in times else ""
        # TD-MPC: horizon + 1 steps for the losses and k - 1 before them for the first frame stack
        length = config.get("batch_length", config.get("horizon", 0) + config.get("frame_stack", 1))
        shape = f"{config['batch_size']}x{length}"
        plan = "" if plan_ms != plan_ms else f"{plan_ms:.0f}"
        print(
            f"{row.label:<22}{row.suite:<7}{shape:>8}{ms:>12.0f}{cpu_ms:>10.0f}{ratio:>10}{plan:>10}",
            flush=True,
        )
    if args.save:
        SPEED_FILE.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "ms_per_update": measured,
            "device": str(device),
            "preset": preset,
            "precision": args.precision,
        }
        SPEED_FILE.write_text(json.dumps(record, indent=1) + "\n")
        print(f"saved: {SPEED_FILE}")


if __name__ == "__main__":
    main()
