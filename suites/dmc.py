"""DeepMind Control Suite from pixels (64x64 RGB, action repeat 2, 1000-frame episodes) or from state."""

from __future__ import annotations

from typing import Any

from suites import mujoco_render  # noqa: F401  (sets MUJOCO_GL before dm_control is imported below)
from suites.base import Env, Protocol, Suite
from suites.checks import check_choice, check_common, check_positive_int
from suites.dm_control_env import DMControlEnv

# DV3 embodied/envs/dmc.py: quadruped is filmed from camera 2, every other domain from camera 0.
_DEFAULT_CAMERAS = {"quadruped": 2}


def dmc_tasks() -> dict[str, tuple[str, str]]:
    """Every task of ``dm_control.suite`` as ``domain_task`` -> (domain, task)."""
    from dm_control import suite

    return {f"{domain}_{task}": (domain, task) for domain, task in suite.ALL_TASKS}


def load_without_time_limit(domain: str, task: str, seed: int) -> Any:
    """A dm_control env whose episodes only our wrapper ends (``env.time_limit`` counts frames)."""
    from dm_control import suite

    return suite.load(domain, task, task_kwargs={"random": seed, "time_limit": float("inf")})


def env_defaults(image_size: int = 64, render: str = "fast") -> dict[str, Any]:
    return {
        "obs": "image",  # "image" | "state" | "both"
        "image_size": image_size,  # DV3 configs.yaml env.dmc.size [64, 64]
        "action_repeat": 2,  # DV3 env.dmc.repeat 2; HD dmc_vision action_repeat 2
        "render": render,
        "camera": -1,  # -1: the DV3 default per domain (quadruped 2, others 0)
        "time_limit": 1000,  # env frames; the suite's standard episode length
    }


class DMCSuite(Suite):
    name = "dmc"
    description = "DeepMind Control from pixels (or state), action repeat 2"
    # DV3 configs.yaml (dmc_vision): 1M env frames; DV3 evaluates 10 episodes every 10K frames.
    # Published protocol: danijar/dreamerv3 configs.yaml dmc_vision; HD wmlib-torch dreamerv2.yaml dmc_vision
    protocol = Protocol(budget=1_000_000, eval_every=10_000)
    default_tasks = ("walker_walk", "cheetah_run", "cartpole_balance")

    def tasks(self) -> list[str]:
        return sorted(dmc_tasks())

    def config(self, preset: str) -> dict[str, Any]:
        check_choice("preset", preset, ("smoke", "small", "paper"))
        if preset == "paper":
            # The default MuJoCo look is the published one.
            run = {"steps": self.protocol.budget, "eval_every": self.protocol.eval_every, "eval_episodes": 10}
            return {"env": env_defaults(render="default"), "run": run}
        if preset == "small":
            run = {"steps": 100_000, "eval_every": 10_000, "eval_episodes": 5}
            return {"env": env_defaults(), "run": run}
        return {"env": env_defaults(), "run": {"steps": 2_000, "eval_every": 1_000, "eval_episodes": 1}}

    def check_config(self, task: str, env_config: dict[str, Any]) -> None:
        check_choice("dmc task", task, self.tasks())
        check_common(env_config, ("image", "state", "both"))
        check_positive_int("env.time_limit", env_config["time_limit"])
        camera = env_config["camera"]
        if isinstance(camera, bool) or not isinstance(camera, int) or camera < -1:
            raise ValueError(
                f"bad env.camera {camera!r}; expected -1 (domain default) or a camera index >= 0"
            )

    def make(self, task: str, seed: int, env_config: dict[str, Any], mode: str = "train") -> Env:
        domain, task_name = dmc_tasks()[task]
        camera = env_config["camera"]
        if camera == -1:
            camera = _DEFAULT_CAMERAS.get(domain, 0)
        return DMControlEnv(
            load_without_time_limit(domain, task_name, seed),
            obs=env_config["obs"],
            image_size=env_config["image_size"],
            action_repeat=env_config["action_repeat"],
            render=env_config["render"],
            camera=camera,
            time_limit=env_config["time_limit"],
        )
