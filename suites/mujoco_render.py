"""MuJoCo offscreen rendering: the headless GL backend and the two render modes.

Import this module before dm_control or mujoco: both pick their GL backend at import time.
"""

from __future__ import annotations

import os

# EGL renders headless with no extra package (Mesa llvmpipe on CPU machines); glfw needs a display.
os.environ.setdefault("MUJOCO_GL", "egl")

RENDER_MODES = ("fast", "default")


def apply_render_mode(model, mode: str, width: int, height: int) -> None:
    """Set the look of an ``mujoco.MjModel`` before its first render.

    "default" keeps the model's own settings (4x MSAA, shadows, its offscreen buffer). "fast" drops
    multisampling and shadows and shrinks the offscreen buffer to the image size: ~5x faster on a CPU
    (benchmarks/envs.py) but a different look, so every method in one comparison must share the mode.
    """
    if mode == "default":
        return
    if mode != "fast":
        raise ValueError(f"bad env.render {mode!r}; choose from: {', '.join(RENDER_MODES)}")
    model.vis.quality.offsamples = 0
    model.light_castshadow[:] = 0
    model.vis.global_.offwidth = width
    model.vis.global_.offheight = height
