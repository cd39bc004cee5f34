"""DMC Remastered, re-implemented: DMC tasks whose look is drawn per episode from a visual seed.

Modes (``env.mode``):
- ``random``: a fresh visual seed in [1, 1e6] every episode, train and eval alike (HarmonyDream: HD
  wmlib-torch/wmlib/envs/dmc_remastered.py draws uniform_seed_generator(1, 1_000_000) at every reset).
- ``classic:K``: visual seed K in every episode (DMCR benchmarks.classic); K = 0 is the stock DMC look,
  and its env is plain dm_control, untouched.
- ``generalization:N``: DMCR's train/test split (benchmarks.visual_generalization): training episodes use
  the N levels 1..N, evaluation episodes unseen seeds in (N, 1e6]. DMCR starts its N training levels at a
  random offset; fixed levels make train and eval envs agree whatever seeds the harness gives them.
The visual seeds of an env come from their own generator, seeded by (seed, mode), separate from the
dynamics seed of the task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from suites import mujoco_render  # noqa: F401  (sets MUJOCO_GL before dm_control is imported below)
from suites.base import Env, Protocol, Suite
from suites.checks import check_choice, check_common, check_positive_int
from suites.dm_control_env import DMControlEnv
from suites.dmc import load_without_time_limit
from suites.dmcr_visuals import DOMAINS, FACTORS, VisualRandomiser, redrawn_texture_assets

# dmc_remastered/__init__.py registers 22 tasks in 10 domains (its README says 24).
TASKS: dict[str, tuple[str, str]] = {
    f"{domain}_{task}": (domain, task)
    for domain, tasks in {
        "ball_in_cup": ("catch",),
        "cartpole": ("balance", "balance_sparse", "swingup", "swingup_sparse"),
        "cheetah": ("run",),
        "finger": ("spin", "turn_easy", "turn_hard"),
        "fish": ("swim", "upright"),
        "hopper": ("hop", "stand"),
        "humanoid": ("run", "stand", "walk"),
        "pendulum": ("swingup",),
        "reacher": ("easy", "hard"),
        "walker": ("run", "stand", "walk"),
    }.items()
    for task in tasks
}
assert {domain for domain, _ in TASKS.values()} == set(DOMAINS)

MAX_VISUAL_SEED = 1_000_000  # DMCR: visual seeds 1..1e6


def parse_mode(mode: str) -> tuple[str, int]:
    """``random`` -> ("random", 0); ``classic:K`` -> ("classic", K); ``generalization:N`` -> (..., N)."""
    kind, _, arg = mode.partition(":")
    valid = "random, classic:K (K >= 0), generalization:N (1 <= N < 1000000)"
    if kind == "random" and not arg:
        return kind, 0
    if kind in ("classic", "generalization") and arg.isdigit():
        value = int(arg)
        if kind == "classic" or 1 <= value < MAX_VISUAL_SEED:
            return kind, value
    raise ValueError(f"bad env.mode {mode!r}; choose from: {valid}")


class VisualSeeds:
    """The visual seed of each episode, for one env under one mode."""

    def __init__(self, mode: str, seed: int, split: str) -> None:
        self.kind, self.arg = parse_mode(mode)
        self.split = split
        self._rng = np.random.default_rng([seed, 0 if split == "train" else 1])

    @property
    def fixed_stock_look(self) -> bool:
        return self.kind == "classic" and self.arg == 0

    def next(self) -> int:
        if self.kind == "classic":
            return self.arg
        if self.kind == "generalization" and self.split == "train":
            return int(self._rng.integers(1, self.arg + 1))
        low = self.arg + 1 if self.kind == "generalization" else 1
        return int(self._rng.integers(low, MAX_VISUAL_SEED + 1))


class DMCREnv(DMControlEnv):
    """A DMC env that redraws its look from the next visual seed before each reset."""

    def __init__(self, env: Any, domain: str, seeds: VisualSeeds, vary: list[str], **options: Any) -> None:
        self.seeds = seeds
        self.visual_seed = 0
        self.visuals = None
        self.randomiser = None
        if not seeds.fixed_stock_look:
            if {"bg", "floor"} & set(vary):
                from dm_control import suite

                xml, assets = getattr(suite, domain).get_model_and_assets()
                env.physics.reload_from_xml_string(xml, redrawn_texture_assets(assets, vary))
            self.randomiser = VisualRandomiser(env.physics, domain, vary)
        super().__init__(env, before_reset=self._redraw, **options)

    def _redraw(self, physics: Any) -> None:
        if self.randomiser is None:
            return
        seed = self.seeds.next()
        if self.visuals is None or seed != self.visual_seed:  # classic:K draws once
            self.visuals = self.randomiser.apply(physics, seed)
        self.visual_seed = seed


class DMCRSuite(Suite):
    name = "dmcr"
    description = "DMC Remastered: per-episode visual randomisation of 7 factors"
    # HD wmlib-torch/configs/dreamerv2.yaml dmc_remastered: steps 502000 agent steps at action_repeat 2
    # (the logger multiplies by the repeat: 1.004M env frames), eval_every 1e4 agent steps, eval_eps 10.
    # Published protocol: thuml/HarmonyDream wmlib-torch/configs/dreamerv2.yaml (dmc_remastered); QData/dmc_remastered
    protocol = Protocol(budget=1_004_000, eval_every=20_000)
    # HD README runs dmcr_cheetah_run; the paper also reports walker_run; cartpole_balance is our assumption.
    default_tasks = ("cheetah_run", "walker_run", "cartpole_balance")

    def tasks(self) -> list[str]:
        return sorted(TASKS)

    def config(self, preset: str) -> dict[str, Any]:
        check_choice("preset", preset, ("smoke", "small", "paper"))
        env = {
            "obs": "image",  # "image" | "state" | "both"
            "image_size": 64,  # HD render_size [64, 64]
            "action_repeat": 2,  # HD dmc_remastered action_repeat 2
            "render": "default" if preset == "paper" else "fast",
            "time_limit": 1000,  # env frames, the DMC episode length
            "mode": "random",  # HD: fresh visual seed every episode, train and eval
            "vary": list(FACTORS),  # HD dmcr_vary: all
        }
        runs = {
            "paper": {
                "steps": self.protocol.budget,
                "eval_every": self.protocol.eval_every,
                "eval_episodes": 10,
            },
            "small": {"steps": 100_000, "eval_every": 10_000, "eval_episodes": 5},
            "smoke": {"steps": 2_000, "eval_every": 1_000, "eval_episodes": 1},
        }
        return {"env": env, "run": runs[preset]}

    def check_config(self, task: str, env_config: dict[str, Any]) -> None:
        check_choice("dmcr task", task, self.tasks())
        check_common(env_config, ("image", "state", "both"))
        check_positive_int("env.time_limit", env_config["time_limit"])
        parse_mode(env_config["mode"])
        vary = env_config["vary"]
        if not isinstance(vary, list):
            raise ValueError(f"bad env.vary {vary!r}; expected a list of factors from: {', '.join(FACTORS)}")
        for factor in vary:
            check_choice("env.vary factor", factor, FACTORS)

    def make(self, task: str, seed: int, env_config: dict[str, Any], mode: str = "train") -> Env:
        domain, task_name = TASKS[task]
        return DMCREnv(
            load_without_time_limit(domain, task_name, seed),
            domain,
            VisualSeeds(env_config["mode"], seed, "eval" if mode == "eval" else "train"),
            list(env_config["vary"]),
            obs=env_config["obs"],
            image_size=env_config["image_size"],
            action_repeat=env_config["action_repeat"],
            render=env_config["render"],
            camera=0,  # DMCR and HD render camera 0 in every DMCR domain
            time_limit=env_config["time_limit"],
        )
