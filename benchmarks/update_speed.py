"""Milliseconds per training update (world model + actor-critic) on this machine, fp32 by default.

Rows are agent names as ``agents.make`` understands them, so new backbones (TD-MPC, DreamerPro) and any
``<backbone>+<balancer>`` pair are one more row. Balancer rows report their overhead relative to the same
backbone with fixed weights.

    .venv/bin/python benchmarks/update_speed.py            # paper sizes: DV2 at HD's DMCR preset, DV3 size S
    .venv/bin/python benchmarks/update_speed.py --quick    # the small preset, for a fast look
    .venv/bin/python benchmarks/update_speed.py --device cuda --precision bf16 --compile scan --cuda-graphs --flops

``--flops`` counts the FLOPs of one update (torch's flop formulas: matmuls and convolutions) and reports
the achieved rate against this device's measured dense matmul rate in the same precision (8192^2 on a GPU,
2048^2 on a CPU) -- the share of the hardware an update uses.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

import agents
from bench import speed


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


def time_row(
    row: Row, preset: str, warmup: int, repeats: int, device: torch.device, knobs: dict[str, Any], flops: bool
) -> tuple[float, float, float, float]:
    """(wall ms, process CPU ms) per update, wall ms per planning call for planning agents (else NaN), and
    the FLOPs of one update (NaN unless ``flops``)."""
    config = agents.default_config(row.agent, preset, row.suite)["agent"]
    config.update({key: value for key, value in knobs.items() if key in config})  # TD-MPC: fp32, no compile
    config["balancer"].update(row.balancer)
    obs_space, act_space = speed.synthetic_spaces(["image"], 64, 0, 6, discrete=False)  # cheetah_run: 6 dims
    agent = agents.make(row.agent, obs_space, act_space, config, device, row.suite)
    wall, cpu_ms = speed.time_updates(agent, obs_space, act_space, warmup, repeats)
    counted = float("nan")
    if flops:
        rng = np.random.default_rng(1)
        batch = speed.random_batch(obs_space, act_space, agent.batch_size, agent.batch_length, rng)
        with FlopCount() as counter:
            agent.train(batch)
        counted = float(counter.total)
    plan_ms = float("nan")
    if row.agent == "tdmpc":  # the policy plans: one call per env step
        obs = {"image": np.zeros((1, 64, 64, 3), np.uint8)}
        agent.policy(obs, None, "eval")
        start = time.perf_counter()
        for _ in range(repeats):
            agent.policy(obs, None, "eval")  # returns numpy actions: the planning call has finished
        plan_ms = (time.perf_counter() - start) / repeats * 1000
    return wall, cpu_ms, plan_ms, counted


class FlopCount(TorchDispatchMode):
    """FLOPs of the ops torch has formulas for (FlopCounterMode's, without its module hooks, which fail on
    modules whose outputs need no gradient, as the frozen world model's in imagination)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of a square dense matmul on ``device``: the rate the update's counted FLOPs are set against."""
    size = 8192 if device.type == "cuda" else 2048
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    rounds = 20 if device.type == "cuda" else 3
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(rounds):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * rounds / (time.perf_counter() - start)


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
    parser.add_argument("--compile", default="off", choices=["off", "step", "scan"], help="agent.compile")
    parser.add_argument("--cuda-graphs", action="store_true", help="agent.cuda_graphs (needs --compile scan)")
    parser.add_argument("--flops", action="store_true", help="count FLOPs; report the share of matmul peak")
    parser.add_argument(
        "--save",
        action="store_true",
        help=f"record ms per update and this hardware in {speed.SPEED_FILE} (shipped; read by `bench plan`)",
    )
    args = parser.parse_args()
    preset = args.preset or ("small" if args.quick else "paper")
    repeats = 2 if args.quick else args.repeats
    if args.save and (preset != "paper" or args.compile != "off"):
        parser.error(
            "--save records the paper preset without compile only (what `bench plan` estimates from)"
        )
    if args.cuda_graphs and args.compile != "scan":
        parser.error("--cuda-graphs needs --compile scan")
    knobs = {"precision": args.precision, "compile": args.compile, "cuda_graphs": args.cuda_graphs}
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = [r for r in ROWS if not args.rows or r.label in args.rows or r.agent in args.rows]
    device = torch.device(args.device)
    print(
        f"preset={preset} device={device} precision={args.precision} compile={args.compile} "
        f"cuda_graphs={args.cuda_graphs} threads={torch.get_num_threads()} warmup={args.warmup} repeats={repeats}"
    )
    peak = float("nan")
    if args.flops:
        dtype = (
            torch.bfloat16
            if args.precision == "bf16"
            else torch.float16
            if args.precision == "fp16"
            else None
        )
        peak = matmul_rate(device, dtype or torch.float32)
        print(f"dense matmul: {peak / 1e12:.1f} TFLOP/s ({(dtype or torch.float32)})")
    flop_head = f"{'GFLOP':>9}{'TFLOP/s':>9}{'of peak':>9}" if args.flops else ""
    print(
        f"{'agent':<22}{'suite':<7}{'batch':>8}{'ms/update':>12}{'cpu ms':>10}{'vs fixed':>10}{'plan ms':>10}"
        + flop_head
    )
    times: dict[str, float] = {}
    measured: dict[str, float] = {}
    for row in rows:
        config = agents.default_config(row.agent, preset, row.suite)["agent"]
        ms, cpu_ms, plan_ms, flops = time_row(row, preset, args.warmup, repeats, device, knobs, args.flops)
        # The cost of an update, for the overhead ratios and for `bench plan` (--save): CPU time on a CPU
        # (less sensitive to other load than wall time, though not immune: at load 12 on 2 cores two-thread
        # spin-waits doubled it, so --save on a quiet machine); on a GPU the host mostly waits, so wall time
        times[row.label] = cpu_ms if device.type == "cpu" else ms
        # keyed <backbone>+<balancer>, what a name means on a suite; nashmtl: the first row, update_every 1
        measured.setdefault(agents.resolve(row.agent, row.suite).pair, round(times[row.label]))
        ratio = f"{times[row.label] / times[row.baseline]:.2f}x" if row.baseline in times else ""
        # TD-MPC: horizon + 1 steps for the losses and k - 1 before them for the first frame stack
        length = config.get("batch_length", config.get("horizon", 0) + config.get("frame_stack", 1))
        shape = f"{config['batch_size']}x{length}"
        plan = "" if plan_ms != plan_ms else f"{plan_ms:.0f}"
        rate = flops / (ms / 1000)
        flop_cells = f"{flops / 1e9:>9.0f}{rate / 1e12:>9.2f}{rate / peak:>9.0%}" if args.flops else ""
        print(
            f"{row.label:<22}{row.suite:<7}{shape:>8}{ms:>12.0f}{cpu_ms:>10.0f}{ratio:>10}{plan:>10}"
            + flop_cells,
            flush=True,
        )
    if args.save:
        record = {
            "hardware": speed.hardware(str(device)),
            "torch": torch.__version__,
            "preset": preset,
            "precision": args.precision,
            "threads": torch.get_num_threads(),
            "time": "process CPU time" if device.type == "cpu" else "wall time",
            "load_average": round(os.getloadavg()[0], 1),
            "measured": time.strftime("%Y-%m-%d"),
            "command": shlex.join(["benchmarks/update_speed.py", *sys.argv[1:]]),
            "ms_per_update": measured,
        }
        speed.save(str(device), record)
        print(f"saved: {speed.SPEED_FILE}")


if __name__ == "__main__":
    main()
