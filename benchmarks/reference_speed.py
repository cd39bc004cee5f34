"""Seconds per training update, ours against the PyTorch reference implementations, on this CPU.

One update is what the agent does per train call: the world-model loss and step, then imagination and the
actor and critic steps. Pairs, each side at its paper configuration for the same task, on the same random
replay-shaped batches (64x64 images, 6 continuous actions, like cheetah_run):

* ``dv2``: our ``dreamerv2`` at the dmcr paper preset (deter 1024, units 400, cnn depth 48, batch 16x50)
  against thuml/HarmonyDream's wmlib-torch DreamerV2 with ``configs/dreamerv2.yaml`` defaults +
  ``dmc_remastered``, trained as its ``examples/train_dreamerv2.py`` does: ``DreamerV2.train`` through
  ``CarryOverState`` on float32 tensors (its ``next_batch`` cast);
* ``harmony``: our ``harmonydream`` (dmcr) against the same with ``harmony: True``;
* ``dv3``: our ``dreamerv3`` at the dmc paper preset (size S: deter 512, units 512, cnn depth 32, batch
  16x64) against NM512/dreamerv3-torch ``configs.yaml`` defaults + ``dmc_vision`` (size S),
  ``Dreamer._train`` on numpy batches (what its dataset yields).

Both sides run fp32 with torch.compile off (our preset's setting; NM512's ``compile: True`` is switched off,
HarmonyDream's ``precision: 16`` is CUDA-only) and the same number of torch threads. Each side times itself in
its own Python (the references pin their own packages): a subprocess builds the agent, runs the warm-up
updates, times the next ones and prints JSON: wall and process CPU seconds per update and the world-model
part alone (until imagination starts). Implementations alternate (ours, reference, ours, ...) in rounds
because a shared machine drifts; the table reports medians over all timed updates and the ratio ours /
reference, with a 2048x2048 fp32 matmul's GFLOP/s and the load average at the start and the end.

The references are not part of this repository. Check them out and make a Python that imports them
unpatched on a CPU (the commits last measured: HarmonyDream 0a22e33, dreamerv3-torch 6ef8646)::

    git clone https://github.com/thuml/HarmonyDream <hd>
    git clone https://github.com/NM512/dreamerv3-torch <nm512>
    python3.11 -m venv <refvenv> && <refvenv>/bin/pip install torch==2.13.0 "numpy<2" \\
        "ruamel.yaml==0.17.21" gym==0.26.2 torchtyping "typeguard<3" einops scipy \\
        opencv-python-headless imageio tensorboard cloudpickle tqdm

    .venv/bin/python benchmarks/reference_speed.py --ref-python <refvenv>/bin/python --hd <hd> --nm512 <nm512>

Each update takes seconds to tens of seconds on a few cores: the defaults (1 warm-up + 2 timed updates per
subprocess, 2 rounds) took 35 minutes on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ACTIONS = 6  # cheetah_run
IMAGE = 64
# pair -> (our agent, our suite, reference implementation, batch length)
PAIRS = {
    "dv2": ("dreamerv2", "dmcr", "hd", 50),
    "harmony": ("harmonydream", "dmcr", "hd-harmony", 50),
    "dv3": ("dreamerv3", "dmc", "nm512", 64),
}
REFERENCE_NAMES = {
    "hd": "HarmonyDream DV2",
    "hd-harmony": "HarmonyDream DV2+harmony",
    "nm512": "NM512 dreamerv3-torch",
}


# ----------------------------------------------------------------------------------- inside a subprocess


def time_updates(
    train: Callable[[dict[str, np.ndarray]], Any],
    batches: list[dict[str, np.ndarray]],
    warmup: int,
    marks: dict,
) -> list[dict[str, float]]:
    """Per timed update: wall and process CPU seconds, and wall seconds until ``marks["wm_done"]`` (set by the
    caller's hook when the world-model step has finished)."""
    out = []
    for index, batch in enumerate(batches):
        marks.clear()
        start, cpu = time.perf_counter(), time.process_time()
        train(batch)  # on a CPU every op has finished when it returns
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        if index >= warmup:
            out.append({"wall": wall, "cpu": cpu, "wm": marks.get("wm_done", float("nan")) - start})
    return out


def ours(agent_name: str, suite: str, marks: dict) -> Callable[[dict[str, np.ndarray]], Any]:
    """Our agent at the paper preset of ``suite``; the mark is set when imagination begins."""
    import torch

    import agents
    from bench import speed

    config = agents.default_config(agent_name, "paper", suite)["agent"]
    obs_space, act_space = speed.synthetic_spaces(["image"], IMAGE, 0, ACTIONS, discrete=False)
    agent = agents.make(agent_name, obs_space, act_space, config, torch.device("cpu"), suite)
    losses = agent.ac.losses

    def imagination(*args: Any, **kwargs: Any) -> Any:
        marks["wm_done"] = time.perf_counter()
        return losses(*args, **kwargs)

    agent.ac.losses = imagination
    return agent.train


def harmonydream(root: Path, harmony: bool, marks: dict) -> Callable[[dict[str, np.ndarray]], Any]:
    """wmlib-torch DreamerV2 with configs/dreamerv2.yaml defaults + dmc_remastered (+ harmony), trained as its
    examples/train_dreamerv2.py does: CarryOverState(agent.train) on float32 tensors of CHW images."""
    import gym
    import ruamel.yaml as yaml
    import torch

    sys.path.insert(0, str(root / "wmlib-torch"))
    import wmlib
    from wmlib import utils
    from wmlib.agents import dreamerv2

    configs = yaml.safe_load((root / "wmlib-torch" / "configs" / "dreamerv2.yaml").read_text())
    config = utils.Config(configs["defaults"]).update(configs["dmc_remastered"]).update({"harmony": harmony})
    obs_space = {"image": gym.spaces.Box(0, 255, (IMAGE, IMAGE, 3), np.uint8)}
    act_space = {"action": gym.spaces.Box(-1, 1, (ACTIONS,), np.float32)}
    agent = dreamerv2.DreamerV2(config, obs_space, act_space, utils.Counter(0))
    agent.init_optimizers()
    train_iter = agent.wm.train_iter

    def world_model(*args: Any, **kwargs: Any) -> Any:
        result = train_iter(*args, **kwargs)
        marks["wm_done"] = time.perf_counter()
        return result

    agent.wm.train_iter = world_model
    train = wmlib.CarryOverState(agent.train)

    def step(batch: dict[str, np.ndarray]) -> Any:
        return train({k: torch.from_numpy(v).to(torch.float32) for k, v in batch.items()})

    return step


def nm512(root: Path, marks: dict) -> Callable[[dict[str, np.ndarray]], Any]:
    """dreamerv3-torch's Dreamer with configs.yaml defaults + dmc_vision on the CPU, compile off."""
    import types

    import gym
    import ruamel.yaml as yaml

    sys.path.insert(0, str(root))
    import dreamer

    configs = yaml.safe_load((root / "configs.yaml").read_text())
    config: dict[str, Any] = {}
    for name in ("defaults", "dmc_vision"):  # dreamer.py's recursive_update
        for key, value in configs[name].items():
            config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    config.update(device="cpu", compile=False, num_actions=ACTIONS)
    obs_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (IMAGE, IMAGE, 3), np.uint8)})
    act_space = gym.spaces.Box(-1, 1, (ACTIONS,), np.float32)
    agent = dreamer.Dreamer(
        obs_space, act_space, argparse.Namespace(**config), types.SimpleNamespace(step=0), None
    )
    wm_train = agent._wm._train

    def world_model(*args: Any, **kwargs: Any) -> Any:
        result = wm_train(*args, **kwargs)
        marks["wm_done"] = time.perf_counter()
        return result

    agent._wm._train = world_model
    return agent._train


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    arrays = np.load(args.batches)
    count = 1 + max(int(k.split("/")[0]) for k in arrays.files)
    batches = [
        {k.split("/")[1]: arrays[k] for k in arrays.files if k.startswith(f"{i}/")} for i in range(count)
    ]
    marks: dict[str, float] = {}
    if args.child == "ours":
        train = ours(args.agent, args.suite, marks)
    else:
        here = Path(__file__).resolve().parent  # benchmarks/envs.py would shadow NM512's envs package
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
        if args.child == "nm512":
            train = nm512(args.root, marks)
        else:
            train = harmonydream(args.root, args.child == "hd-harmony", marks)
            for batch in batches:  # its replay stores CHW images
                batch["image"] = np.ascontiguousarray(batch["image"].transpose(0, 1, 4, 2, 3))
    updates = time_updates(train, batches, args.warmup, marks)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "updates": updates}))


# --------------------------------------------------------------------------------------- the driver


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Median GFLOP/s of a size x size fp32 matmul: how fast this machine is right now."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def write_batches(path: Path, length: int, count: int) -> None:
    """``count`` random replay batches of 16 x ``length`` in cheetah_run-like spaces (bench.speed's)."""
    from bench import speed

    obs_space, act_space = speed.synthetic_spaces(["image"], IMAGE, 0, ACTIONS, discrete=False)
    rng = np.random.default_rng(0)
    arrays = {}
    for index in range(count):
        for key, value in speed.random_batch(obs_space, act_space, 16, length, rng).items():
            arrays[f"{index}/{key}"] = value
    np.savez(path, **arrays)


def commit_of(directory: Path, given: str) -> str:
    if given:
        return given
    out = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip()[:12] if out.returncode == 0 else "unknown (not a git checkout; give --*-commit)"


def run_child(command: list[str], threads: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        print(f"failed ({out.returncode}): {' '.join(command)}")
        sys.exit(1)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bad_input(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ref-python", type=Path, help="a Python that imports the references (docstring)")
    parser.add_argument("--hd", type=Path, help="a thuml/HarmonyDream checkout (holds wmlib-torch)")
    parser.add_argument("--nm512", type=Path, help="an NM512/dreamerv3-torch checkout")
    parser.add_argument("--hd-commit", default="", help="its commit, when --hd is not a git work tree")
    parser.add_argument("--nm512-commit", default="", help="its commit, when --nm512 is not a git work tree")
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), help=f"of {', '.join(PAIRS)}")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates per subprocess")
    parser.add_argument("--repeats", type=int, default=2, help="timed updates per subprocess")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    # internal: one side's timing, in a subprocess
    parser.add_argument("--child", choices=["ours", "hd", "hd-harmony", "nm512"], help=argparse.SUPPRESS)
    parser.add_argument("--agent", help=argparse.SUPPRESS)
    parser.add_argument("--suite", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    for pair in args.pairs:
        if pair not in PAIRS:
            bad_input(f"--pairs {pair!r} is invalid; valid: {', '.join(PAIRS)}")
    for name, least in (("rounds", 1), ("repeats", 1), ("threads", 1), ("warmup", 0)):
        if getattr(args, name) < least:
            bad_input(f"--{name}={getattr(args, name)} is invalid; valid: an integer >= {least}")
    if args.ref_python is None or not os.access(args.ref_python, os.X_OK):
        bad_input(
            f"--ref-python={args.ref_python} is invalid; valid: a Python that imports the references (see --help)"
        )
    roots = {}
    if {"dv2", "harmony"} & set(args.pairs):
        if args.hd is None or not (args.hd / "wmlib-torch" / "wmlib" / "agents" / "dreamerv2.py").is_file():
            bad_input(f"--hd={args.hd} is invalid; valid: a thuml/HarmonyDream checkout (with wmlib-torch/)")
        roots["hd"] = roots["hd-harmony"] = args.hd.resolve()
    if "dv3" in args.pairs:
        if args.nm512 is None or not (args.nm512 / "dreamer.py").is_file():
            bad_input(f"--nm512={args.nm512} is invalid; valid: an NM512/dreamerv3-torch checkout")
        roots["nm512"] = args.nm512.resolve()
    commits = {
        "hd": commit_of(args.hd, args.hd_commit) if args.hd else "",
        "nm512": commit_of(args.nm512, args.nm512_commit) if args.nm512 else "",
    }

    load_start, gflops_start = os.getloadavg(), matmul_gflops(args.threads)
    print(
        f"threads={args.threads} warmup={args.warmup} repeats={args.repeats} rounds={args.rounds} "
        f"HarmonyDream {commits['hd'] or '-'} NM512 {commits['nm512'] or '-'}\n"
        f"start: load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
        f"2048^2 fp32 matmul {gflops_start:.0f} GFLOP/s",
        flush=True,
    )
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    versions: dict[str, str] = {}
    script = str(Path(__file__).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        batch_files = {}
        for length in sorted({PAIRS[p][3] for p in args.pairs}):
            batch_files[length] = Path(tmp) / f"batches_{length}.npz"
            write_batches(batch_files[length], length, args.warmup + args.repeats)
        for round_index in range(1, args.rounds + 1):
            for pair in args.pairs:
                agent_name, suite, reference, length = PAIRS[pair]
                common = [
                    "--threads", str(args.threads), "--warmup", str(args.warmup),
                    "--batches", str(batch_files[length]),
                ]  # fmt: skip
                sides = {
                    "ours": [
                        sys.executable,
                        script,
                        "--child",
                        "ours",
                        "--agent",
                        agent_name,
                        "--suite",
                        suite,
                    ],
                    reference: [
                        str(args.ref_python),
                        script,
                        "--child",
                        reference,
                        "--root",
                        str(roots[reference]),
                    ],
                }
                for side, command in sides.items():
                    report = run_child(command + common, args.threads)
                    versions[side if side == "ours" else "reference"] = (
                        f"{report['torch']} ({report['threads']} threads)"
                    )
                    results.setdefault((pair, side), []).extend(report["updates"])
                    walls = " ".join(f"{u['wall']:.1f}" for u in report["updates"])
                    print(f"round {round_index} {pair:<8}{side:<11} s/update: {walls}", flush=True)
    load_end, gflops_end = os.getloadavg(), matmul_gflops(args.threads)

    print(
        f"\nend: load average {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}, "
        f"2048^2 fp32 matmul {gflops_end:.0f} GFLOP/s; torch ours {versions.get('ours')}, "
        f"reference {versions.get('reference')}\n"
    )
    print(f"{'implementation':<34}{'s/update':>9}{'cpu s':>8}{'wm s':>7}{'n':>4}{'ours/ref':>10}{'cpu':>7}")
    for pair in args.pairs:
        agent_name, suite, reference, _ = PAIRS[pair]
        median = {
            (side, key): statistics.median(u[key] for u in results[(pair, side)])
            for side in ("ours", reference)
            for key in ("wall", "cpu", "wm")
        }
        for side, label in (
            ("ours", f"{agent_name} ({suite}, ours)"),
            (reference, REFERENCE_NAMES[reference]),
        ):
            ratio = cpu_ratio = ""
            if side == "ours":
                ratio = f"{median[('ours', 'wall')] / median[(reference, 'wall')]:.2f}x"
                cpu_ratio = f"{median[('ours', 'cpu')] / median[(reference, 'cpu')]:.2f}x"
            print(
                f"{label:<34}{median[(side, 'wall')]:>9.1f}{median[(side, 'cpu')]:>8.1f}"
                f"{median[(side, 'wm')]:>7.1f}{len(results[(pair, side)]):>4}{ratio:>10}{cpu_ratio:>7}"
            )


if __name__ == "__main__":
    main()
