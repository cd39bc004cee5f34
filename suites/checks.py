"""One-line ValueError checks for user-facing task names and env options."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def check_choice(what: str, value: Any, choices: Iterable[Any]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"bad {what} {value!r}; choose from: {', '.join(map(str, choices))}")


def check_positive_int(what: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"bad {what} {value!r}; expected a positive integer")


def check_common(env_config: dict[str, Any], obs_kinds: Iterable[str]) -> None:
    """The knobs every pixel suite shares: obs kind, image size, action repeat, render mode."""
    check_choice("env.obs", env_config["obs"], obs_kinds)
    check_positive_int("env.image_size", env_config["image_size"])
    check_positive_int("env.action_repeat", env_config["action_repeat"])
    if "render" in env_config:
        check_choice("env.render", env_config["render"], ("fast", "default"))
