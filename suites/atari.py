"""Atari 100K: 26 games, 100K agent steps (400K frames), repeat 4, no sticky actions, 30 noops, minimal
action set, 64x64 RGB; the score is human-normalised (suites/reference_scores.py)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from suites.base import Env, Protocol, Suite
from suites.checks import check_choice, check_common, check_positive_int
from suites.reference_scores import ATARI100K_GAMES

# ALE ROM ids where they differ from the score-table names.
_ROM_IDS = {"james_bond": "jamesbond"}


class AtariEnv(Env):
    """DV3 embodied/envs/atari.py semantics: max over the last two frames of each repeat, INTER_AREA
    resize, a random number of no-op resets in [0, noops), lives unused (losing a life is no episode
    end), episodes cut at ``time_limit`` frames (108,000 = 30 min) as a truncation."""

    def __init__(self, game: str, seed: int, env_config: dict[str, Any]) -> None:
        import cv2
        from ale_py.env import AtariEnv as ALEEnv

        self._cv2 = cv2
        self._env = ALEEnv(
            game=_ROM_IDS.get(game, game),
            obs_type="rgb",
            frameskip=1,
            repeat_action_probability=0.25 if env_config["sticky"] else 0.0,
            full_action_space=env_config["actions"] == "all",
        )
        self._env.reset(seed=seed)
        self._rng = np.random.default_rng(seed)
        self.game = game
        self.action_repeat = env_config["action_repeat"]
        self._noops = env_config["noops"]
        self._time_limit = env_config["time_limit"]
        self._size = env_config["image_size"]
        self.act_space = gym.spaces.Discrete(int(self._env.action_space.n))
        self.obs_space = gym.spaces.Dict(
            {"image": gym.spaces.Box(0, 255, (self._size, self._size, 3), np.uint8)}
        )
        self._frames = 0
        self._first_reset = True

    def reset(self) -> dict[str, Any]:
        if not self._first_reset:
            self._env.reset()
        self._first_reset = False
        for _ in range(self._rng.integers(self._noops) if self._noops else 0):
            _, _, terminated, truncated, _ = self._env.step(0)
            if terminated or truncated:
                self._env.reset()
        self._frames = 0
        screen = self._env.unwrapped.ale.getScreenRGB()
        return self._obs(screen, 0.0, is_first=True, is_last=False, is_terminal=False)

    def step(self, action: np.ndarray | int) -> dict[str, Any]:
        if not isinstance(action, int | np.integer):
            action = int(np.argmax(action))
        total, over = 0.0, False
        previous = None
        for _ in range(self.action_repeat):
            _, reward, terminated, _, _ = self._env.step(int(action))
            total += float(reward)
            self._frames += 1
            over = terminated
            if over or self._frames >= self._time_limit:
                break
            previous = self._env.unwrapped.ale.getScreenRGB()
        screen = self._env.unwrapped.ale.getScreenRGB()
        if previous is not None:
            screen = np.maximum(screen, previous)
        last = over or self._frames >= self._time_limit
        return self._obs(screen, total, is_first=False, is_last=last, is_terminal=over)

    def _obs(self, screen: np.ndarray, reward: float, **flags: bool) -> dict[str, Any]:
        image = self._cv2.resize(screen, (self._size, self._size), interpolation=self._cv2.INTER_AREA)
        return {"image": image, "reward": np.float32(reward), **flags}

    def close(self) -> None:
        self._env.close()


class Atari100kSuite(Suite):
    name = "atari100k"
    description = "Atari 100K: 26 games, 400K frames, human-normalised"
    # DV3 configs.yaml atari100k (also HD dreamerv3-jax): steps 1.01e5 agent steps, eval_every 5e3 agent
    # steps, eval_eps 100, repeat 4, sticky False, noops 30, actions needed.
    # Published protocol: danijar/dreamerv3 configs.yaml atari100k; thuml/HarmonyDream dreamerv3-jax
    protocol = Protocol(budget=400_000, eval_every=20_000)
    default_tasks = ATARI100K_GAMES

    def tasks(self) -> list[str]:
        return list(ATARI100K_GAMES)

    def config(self, preset: str) -> dict[str, Any]:
        check_choice("preset", preset, ("smoke", "small", "paper"))
        env = {
            "obs": "image",  # Atari has pixels only
            "image_size": 64,
            "action_repeat": 4,
            "render": "default",  # ALE has one look; kept so every suite records the knob
            "time_limit": 108_000,  # frames (DV3 atari length)
            "noops": 30,
            "sticky": False,
            "actions": "needed",  # "needed" (minimal set) | "all" (18 actions)
        }
        runs = {
            "paper": {
                "steps": self.protocol.budget,
                "eval_every": self.protocol.eval_every,
                "eval_episodes": 100,
            },
            "small": {"steps": 100_000, "eval_every": 20_000, "eval_episodes": 5},
            "smoke": {"steps": 2_000, "eval_every": 1_000, "eval_episodes": 1},
        }
        return {"env": env, "run": runs[preset]}

    def discrete_actions(self, task: str) -> bool:
        return True  # ALE's minimal action sets

    def check_config(self, task: str, env_config: dict[str, Any]) -> None:
        check_choice("atari100k task", task, self.tasks())
        check_common(env_config, ("image",))
        check_choice("env.render", env_config["render"], ("default",))
        check_positive_int("env.time_limit", env_config["time_limit"])
        noops = env_config["noops"]
        if isinstance(noops, bool) or not isinstance(noops, int) or noops < 0:
            raise ValueError(f"bad env.noops {noops!r}; expected an integer >= 0")
        check_choice("env.sticky", env_config["sticky"], (False, True))
        check_choice("env.actions", env_config["actions"], ("needed", "all"))

    def make(self, task: str, seed: int, env_config: dict[str, Any], mode: str = "train") -> Env:
        return AtariEnv(task, seed, env_config)
