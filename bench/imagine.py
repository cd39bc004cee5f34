"""`bench imagine` and `bench render --run`: a trained agent's eval episode, and what its world model believes.

A run is loaded read-only from its latest checkpoint (nothing in the run directory is written) onto the CPU
and plays its eval-mode policy in its own eval environment, seeded as the loop's evaluation seeds it. The
imagination (agents.openloop) observes the episode's first ``context`` steps, then predicts ``horizon``
steps open loop on the actions the policy took.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import agents
import suites
from agents.openloop import OpenLoop, open_loop
from bench import loop, store
from suites.render import upscale, with_caption, write_animation

SCALE = 4  # 64x64 observations shown at 256x256
STRIP_COLUMNS = 10
OBSERVED, IMAGINED = (120, 220, 120), (255, 140, 90)  # caption colours: context vs open loop


@dataclass
class TrainedRun:
    """A run's agent with its latest checkpoint's weights, and its eval environment."""

    dir: Path
    spec: dict[str, Any]
    agent: Any
    env: Any

    @property
    def name(self) -> str:
        return f"{self.spec['agent']} on {self.spec['suite']}/{self.spec['task']} seed {self.spec['seed']}"

    def close(self) -> None:
        self.env.close()


def load_trained(run_dir: str | Path) -> TrainedRun:
    """The run in ``run_dir`` at its latest checkpoint. ValueError (one line) for a path that is not a run,
    a run without a checkpoint, or a damaged checkpoint."""
    run_dir = Path(run_dir)
    spec = store.read_json(run_dir / "spec.json") if run_dir.is_dir() else None
    if spec is None:
        raise ValueError(
            f"{run_dir} is not a run directory (no readable spec.json); valid: results/SUITE/TASK/VARIANT/seedK"
        )
    path = run_dir / "ckpt" / loop.CHECKPOINT
    if not path.exists():
        raise ValueError(
            f"{run_dir} has no checkpoint yet (ckpt/{loop.CHECKPOINT}); valid: a run that saved one"
        )
    device = torch.device("cpu")  # short, deterministic, and possible on any machine
    try:
        state = loop.read_checkpoint(path, device)
    except loop.CheckpointError as error:
        raise ValueError(str(error)) from None
    config = spec["config"]
    if config["run"]["threads"] > 0:
        torch.set_num_threads(config["run"]["threads"])
    suite = suites.get(spec["suite"])
    suite.check_available()
    try:
        agent_step = int(state["counters"]["agent_step"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"damaged checkpoint {path}: no agent step counter") from None
    # The loop's evaluate seeds its eval env with seed + offset + the agent step at that time.
    seed = int(spec["seed"]) + config["run"]["eval_seed_offset"] + agent_step
    torch.manual_seed(seed)  # a planner (TD-MPC) samples even in eval mode: the same video every time
    env = suite.make(spec["task"], seed, config["env"], "eval")
    agent_config = dict(config["agent"])
    if (
        agent_config.get("compile", "off") != "off"
    ):  # a few hundred CPU steps: compiling costs more than it saves
        agent_config.update(compile="off", cuda_graphs=False)
    try:
        agent = agents.make(spec["agent"], env.obs_space, env.act_space, agent_config, device, spec["suite"])
        agent.load_state_dict(state["agent"])
    except (KeyError, RuntimeError) as error:  # weights of another shape or another agent
        env.close()
        raise ValueError(f"damaged checkpoint {path}: {str(error).splitlines()[0]}") from None
    return TrainedRun(run_dir, spec, agent, env)


def record_episode(run: TrainedRun) -> dict[str, np.ndarray]:
    """One eval-mode episode (the next one of the eval env) as arrays over its steps, the reset included:
    the observations, ``action`` (zeros at the reset) and ``reward``."""
    keys = list(run.env.obs_space.spaces)
    steps = list(loop.eval_episode(run.env, run.agent, keys))
    zeros = np.zeros_like(next(a for a, _ in steps if a is not None))
    episode = {key: np.stack([obs[key] for _, obs in steps]) for key in keys}
    episode["action"] = np.stack([zeros if action is None else action for action, _ in steps]).astype(
        np.float32
    )
    episode["reward"] = np.array([obs["reward"] for _, obs in steps], np.float32)
    return episode


def imagine(
    run_dir: str | Path, episodes: int = 1, context: int = 5, horizon: int = 45, out: str | Path = "imagine"
) -> list[Path]:
    """For each of ``episodes`` eval episodes write a true / predicted / |difference| video (MP4 and GIF) and
    a figure of predicted vs true rewards and values; agents without a decoder get the figure only.
    Returns the written paths. ValueError (one line) for bad arguments or a run that cannot be loaded."""
    if episodes < 1 or context < 1 or horizon < 1:
        raise ValueError(f"episodes={episodes}, context={context}, horizon={horizon}: valid: each at least 1")
    run = load_trained(run_dir)
    out = Path(out)
    written: list[Path] = []
    try:
        for index in range(episodes):
            episode = record_episode(run)
            length = len(episode["reward"])
            if length <= context:
                raise ValueError(
                    f"context={context} is too long for a {length}-step episode; valid: 1..{length - 1}"
                )
            steps = min(length, context + horizon)
            if steps < context + horizon:
                print(f"episode {index}: {length} steps, so the open loop has {steps - context} of {horizon}")
            window = {key: value[:steps] for key, value in episode.items()}
            result = open_loop(run.agent, window, context)
            print(_summary(index, episode, result))
            if result.frames is None:
                print(f"{run.spec['agent']} {_no_frames(run)}: reward and value predictions only")
            else:
                frames = comparison_frames(window["image"], result)
                written.append(write_animation(out / f"episode{index}.mp4", frames))
                written.append(write_animation(out / f"episode{index}.gif", frames))
            written.append(_reward_figure(run, episode, result, out / f"episode{index}_reward.png"))
    finally:
        run.close()
    return written


def render_run(run_dir: str | Path, out: str | Path = "episode") -> list[Path]:
    """The trained agent's next eval episode as ``out``.mp4 and ``out``.gif, its return in the caption."""
    run = load_trained(run_dir)
    try:
        if "image" not in run.env.obs_space.spaces:
            raise ValueError(
                f"{run.dir}: the run's env has no images (env.obs={_obs(run)!r}); valid: env.obs image or both"
            )
        episode = record_episode(run)
    finally:
        run.close()
    total = float(episode["reward"].sum())
    caption = f"{run.spec['agent']} {run.spec['task']}  return {total:.1f}"
    frames = [with_caption(upscale(frame, SCALE), caption) for frame in episode["image"]]
    print(f"{run.name}: eval return {total:.1f} over {len(frames) - 1} steps")
    stem = Path(out)
    return [write_animation(stem.with_suffix(suffix), frames) for suffix in (".mp4", ".gif")]


def imagination_strip(run_dir: str | Path, out: Path, context: int = 5, horizon: int = 45) -> Path:
    """One image for a report: true, predicted and |difference| rows at evenly spaced steps of one eval
    episode, or the reward/value figure for an agent without a decoder."""
    run = load_trained(run_dir)
    try:
        episode = record_episode(run)
        steps = min(len(episode["reward"]), context + horizon)
        window = {key: value[:steps] for key, value in episode.items()}
        result = open_loop(run.agent, window, min(context, steps - 1))
        if result.frames is None:
            return _reward_figure(run, episode, result, out)
    finally:
        run.close()
    picks = np.linspace(0, steps - 1, STRIP_COLUMNS).round().astype(int)
    columns = [
        with_caption(
            np.concatenate(_rows(window["image"][t], result.frames[t]), axis=0),
            f"t={t}",
            OBSERVED if t < result.context else IMAGINED,
        )
        for t in picks
    ]
    import imageio.v2 as imageio

    out.parent.mkdir(parents=True, exist_ok=True)
    imageio.imwrite(out, np.concatenate(columns, axis=1))
    return out


def report_strips(
    results: str | Path, out: Path, wanted: list[str] | None = None
) -> dict[tuple[str, str, str], Path]:
    """One imagination strip per (suite, task, variant) under ``results``, from the first of its seeds (in
    name order) that has a checkpoint, written under ``out``; ``wanted`` keeps the variants or agents it names. A run that cannot be
    loaded is passed over with a warning line. Keys as ``bench report`` labels its agents."""
    results = Path(results)
    if not results.is_dir():
        raise ValueError(f"--imagine: results directory {results} not found; valid: a directory of runs")
    strips: dict[tuple[str, str, str], Path] = {}
    for run_dir in store.iter_run_dirs(results):
        suite, task, variant, _ = run_dir.relative_to(results).parts
        agent = (store.read_json(run_dir / "spec.json") or {}).get("agent")
        if (suite, task, variant) in strips or wanted and not {variant, agent} & set(wanted):
            continue
        if not (run_dir / "ckpt" / loop.CHECKPOINT).exists():
            continue
        try:
            strip = imagination_strip(run_dir, out / f"{suite}_{task}_{variant}.png")
        except ValueError as error:
            print(f"warning: no imagination strip from {run_dir}: {error}")
            continue
        print(f"imagination strip: {run_dir.relative_to(results)} -> {strip}")
        strips[(suite, task, variant)] = strip
    return strips


def _rows(true: np.ndarray, predicted: np.ndarray) -> list[np.ndarray]:
    difference = np.abs(true.astype(np.int16) - predicted.astype(np.int16)).astype(np.uint8)
    return [true, predicted, difference]


def comparison_frames(images: np.ndarray, result: OpenLoop) -> list[np.ndarray]:
    """One video frame per step: the true frame, the model's and their |difference|, one above the other
    and upscaled, under a caption that says whether the model observed that step or imagined it."""
    frames = []
    for t, (true, predicted) in enumerate(zip(images, result.frames)):
        column = np.concatenate([upscale(image, SCALE) for image in _rows(true, predicted)], axis=0)
        if t < result.context:
            text, color = f"t={t} observed  (true / model / |diff|)", OBSERVED
        else:
            text, color = f"t={t} imagined, open loop step {t - result.context + 1}", IMAGINED
        frames.append(with_caption(column, text, color))
    return frames


def _return_to_go(reward: np.ndarray, discount: float) -> np.ndarray:
    """Discounted sum of the rewards after each step, up to the episode's end."""
    out = np.zeros(len(reward), np.float64)
    for t in range(len(reward) - 2, -1, -1):
        out[t] = reward[t + 1] + discount * out[t + 1]
    return out


def _reward_figure(run: TrainedRun, episode: dict[str, np.ndarray], result: OpenLoop, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(len(result.reward))
    true_value = _return_to_go(episode["reward"], result.discount)[: len(steps)]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    top.plot(steps, result.true_reward, "k.-", label="true reward")
    top.plot(steps, result.reward, "C1.-", label="predicted reward")
    bottom.plot(
        steps, true_value, "k.-", label=f"discounted return after the step (gamma {result.discount:.3f})"
    )
    bottom.plot(steps, result.value, "C0.-", label="predicted value")
    for axis in (top, bottom):
        axis.axvline(result.context - 0.5, color="C3", linestyle="--", label="open loop starts")
        axis.legend(fontsize=7)
    bottom.set_xlabel("step of the eval episode")
    title = f"{run.name}: predicted vs true"
    if result.frames is None:
        title += f"\n{run.spec['agent']} {_no_frames(run)}: reward and value predictions only"
    top.set_title(title, fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _summary(index: int, episode: dict[str, np.ndarray], result: OpenLoop) -> str:
    error = np.abs(result.reward - result.true_reward)
    parts = [
        f"episode {index}: return {float(episode['reward'].sum()):.1f}",
        f"reward error (mean |pred - true|) observed {np.nanmean(error[: result.context]):.3f}, "
        f"open loop {np.nanmean(error[result.context :]):.3f}",
    ]
    if result.frames is not None:
        true = episode["image"][result.context : len(result.frames)].astype(np.float64)
        parts.append(f"frame error open loop {np.abs(true - result.frames[result.context :]).mean():.1f}/255")
    return "; ".join(parts)


def _obs(run: TrainedRun) -> str:
    return run.spec["config"]["env"].get("obs", "?")


def _no_frames(run: TrainedRun) -> str:
    if "image" not in run.env.obs_space.spaces:
        return f"sees no images (env.obs={_obs(run)!r})"
    return "has no decoder"
