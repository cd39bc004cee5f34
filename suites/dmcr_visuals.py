"""DMC Remastered's seven visual factors, drawn from a visual seed and written into a live dm_control model.

Factors and ranges follow QData/dmc_remastered (generate_visuals.py and each <domain>.py get_model):
skybox (``bg``), floor texture (``floor``), floor reflectance U(0, 0.5), body/effector colour (RGB uniform,
alpha U(0.75, 1)), target colour, light (headlight ambient/diffuse/specular and the domain light's
position) and the camera pose, both within per-domain ranges. Walker and hopper move no light (as in
DMCR). Differences from DMCR, by design: textures are builtin-style patterns instead of its photographs
(see suites/textures.py); the shadow-map size and finger's light colour are not varied (neither is settable
after compilation / worth a rebuild); values are written into the compiled model each episode instead of
rebuilding the XML (~10x cheaper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from suites.textures import random_texture

FACTORS = ("bg", "floor", "reflectance", "body", "target", "camera", "light")

Range3 = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class DomainRanges:
    camera: Range3  # position of camera 0 (in its parent frame, as in the XML)
    light: Range3 | None  # position of light 0; None: DMCR leaves it alone
    camera_euler: Range3 | None = None  # degrees, MuJoCo's default "xyz" sequence (hopper)
    camera_tilt: tuple[float, float] | None = None  # xyaxes "1 0 0 0 tilt 1" (pendulum)


# dmc_remastered/<domain>.py get_model (camera 0 and light 0 are the elements DMCR edits in every domain).
DOMAINS: dict[str, DomainRanges] = {
    "ball_in_cup": DomainRanges(
        ((-0.05, 0.05), (-1.1, -0.9), (0.8, 1.0)), ((-0.5, 0.5), (-0.5, 0.5), (1.2, 2.7))
    ),
    "cartpole": DomainRanges(
        ((-0.15, 0.15), (-5.0, -3.0), (0.8, 1.2)), ((-1.0, 1.0), (-1.0, 1.0), (4.5, 7.5))
    ),
    "cheetah": DomainRanges(
        ((-0.25, 0.25), (-3.2, -2.8), (-0.25, 0.25)), ((-2.0, 2.0), (-2.0, 2.0), (1.0, 5.0))
    ),
    "finger": DomainRanges(
        ((-0.02, 0.02), (-1.01, -0.99), (0.7, 1.0)), ((-0.8, 0.8), (-0.8, 0.8), (1.0, 3.0))
    ),
    "fish": DomainRanges(((-0.05, 0.05), (-0.05, 0.05), (0.8, 1.2)), ((-0.3, 0.3), (-0.3, 0.3), (0.0, 1.0))),
    "hopper": DomainRanges(
        ((-0.15, 0.15), (-3.0, -2.6), (0.6, 1.0)), None, camera_euler=((85.0, 95.0), (-5.0, 5.0), (-5.0, 5.0))
    ),
    "humanoid": DomainRanges(((-3.5, -2.5), (-0.5, 0.5), (0.5, 1.5)), ((-0.7, 0.7), (-0.7, 0.7), (1.2, 1.8))),
    "pendulum": DomainRanges(
        ((0.0, 0.2), (-1.1, -0.97), (1.3, 1.6)),
        ((-0.5, 0.5), (-0.2, 0.2), (1.2, 2.8)),
        camera_tilt=(0.4, 0.6),
    ),
    "reacher": DomainRanges(
        ((-0.05, 0.05), (-0.05, 0.05), (0.7, 0.8)), ((-0.2, 0.2), (-0.2, 0.2), (0.15, 0.75))
    ),
    "walker": DomainRanges(((-0.3, 0.3), (-2.05, -1.95), (0.6, 0.8)), None),
}

# Skybox and floor textures are redrawn every episode: at the stock 800x800 per face the skybox upload
# alone (~24 ms) costs more than a whole DMC reset. 128 pixels per side is more than a 64x64 frame
# resolves. Drawing and uploading is then ~6 ms.
TEXTURE_SIZE = 128


def _uniform(rng: np.random.Generator, ranges: Range3) -> np.ndarray:
    return np.array([rng.uniform(lo, hi) for lo, hi in ranges])


def _rgba(rng: np.random.Generator) -> np.ndarray:
    return np.append(rng.random(3), rng.uniform(0.75, 1.0))


def _headlight(rng: np.random.Generator, base: tuple[float, float], jitter: float) -> np.ndarray:
    return rng.uniform(*base) + rng.uniform(-jitter, jitter, 3)


@dataclass
class Visuals:
    """Every factor's value for one visual seed (all drawn, whether varied or not, so that switching a
    factor off never changes the others)."""

    skybox: np.ndarray
    floor: np.ndarray
    reflectance: float
    body: np.ndarray
    effector: np.ndarray
    target: np.ndarray
    ambient: np.ndarray
    diffuse: np.ndarray
    specular: np.ndarray
    light_pos: np.ndarray | None
    camera_pos: np.ndarray
    camera_quat: np.ndarray | None


def draw_visuals(visual_seed: int, ranges: DomainRanges, floor_size: tuple[int, int]) -> Visuals:
    rng = np.random.default_rng(visual_seed)
    skybox = random_texture(rng, TEXTURE_SIZE, TEXTURE_SIZE, faces=6)
    floor = random_texture(rng, *floor_size)
    reflectance = rng.uniform(0.0, 0.5)
    body, effector, target = _rgba(rng), _rgba(rng), _rgba(rng)
    # generate_visuals.py: ambient U(.1,.8)±.05, diffuse U(.4,.9)±.1, specular U(.05,.3)±.02 per channel.
    ambient = _headlight(rng, (0.1, 0.8), 0.05)
    diffuse = _headlight(rng, (0.4, 0.9), 0.1)
    specular = _headlight(rng, (0.05, 0.3), 0.02)
    camera_pos = _uniform(rng, ranges.camera)
    camera_quat = None
    if ranges.camera_euler is not None:
        camera_quat = np.zeros(4)
        mujoco.mju_euler2Quat(camera_quat, np.deg2rad(_uniform(rng, ranges.camera_euler)), "xyz")
    if ranges.camera_tilt is not None:
        y_axis = np.array([0.0, rng.uniform(*ranges.camera_tilt), 1.0])
        y_axis /= np.linalg.norm(y_axis)
        x_axis = np.array([1.0, 0.0, 0.0])
        frame = np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)], axis=1)
        camera_quat = np.zeros(4)
        mujoco.mju_mat2Quat(camera_quat, frame.ravel())
    light_pos = _uniform(rng, ranges.light) if ranges.light is not None else None
    return Visuals(
        skybox,
        floor,
        reflectance,
        body,
        effector,
        target,
        ambient,
        diffuse,
        specular,
        light_pos,
        camera_pos,
        camera_quat,
    )


def _resize_texture(assets: dict[str, Any], key: str, stock: int, size: int) -> dict[str, Any]:
    text = assets[key].decode() if isinstance(assets[key], bytes) else assets[key]
    old, new = f'width="{stock}" height="{stock}"', f'width="{size}" height="{size}"'
    if old not in text:
        raise RuntimeError(f"dm_control's {key} changed; update suites/dmcr_visuals.py")
    return {**assets, key: text.replace(old, new).encode()}


def redrawn_texture_assets(assets: dict[str, Any], vary: list[str]) -> dict[str, Any]:
    """dm_control's common assets with the textures that get redrawn every episode made small."""
    if "bg" in vary:
        assets = _resize_texture(assets, "./common/skybox.xml", 800, TEXTURE_SIZE)
    if "floor" in vary:
        assets = _resize_texture(assets, "./common/materials.xml", 300, TEXTURE_SIZE)
    return assets


class VisualRandomiser:
    """Writes the varied factors of a visual seed into a dm_control Physics (call before its reset)."""

    def __init__(self, physics: Any, domain: str, vary: list[str]) -> None:
        self.ranges = DOMAINS[domain]
        self.vary = set(vary)
        model = physics.model
        self._skybox = next(
            i for i in range(model.ntex) if model.tex_type[i] == mujoco.mjtTexture.mjTEXTURE_SKYBOX
        )
        self._floor = mujoco.mj_name2id(model.ptr, mujoco.mjtObj.mjOBJ_TEXTURE, "grid")
        has_floor = self._floor >= 0
        self._floor_size = (
            (int(model.tex_width[self._floor]), int(model.tex_height[self._floor])) if has_floor else (2, 2)
        )
        self._grid_material = mujoco.mj_name2id(model.ptr, mujoco.mjtObj.mjOBJ_MATERIAL, "grid")

    def _materials(self, model: Any, names: tuple[str, ...]) -> list[int]:
        ids = [mujoco.mj_name2id(model.ptr, mujoco.mjtObj.mjOBJ_MATERIAL, n) for n in names]
        return [i for i in ids if i >= 0]

    def apply(self, physics: Any, visual_seed: int) -> Visuals:
        model = physics.model
        visuals = draw_visuals(visual_seed, self.ranges, self._floor_size)
        textures = []
        if "bg" in self.vary:
            textures.append((self._skybox, visuals.skybox))
        if "floor" in self.vary and self._floor >= 0:
            textures.append((self._floor, visuals.floor))
        for tex_id, pixels in textures:
            start = model.tex_adr[tex_id]
            model.tex_data[start : start + pixels.size] = pixels.ravel()
        if "reflectance" in self.vary and self._grid_material >= 0:
            model.mat_reflectance[self._grid_material] = visuals.reflectance
        if "body" in self.vary:
            model.mat_rgba[self._materials(model, ("self", "self_default"))] = visuals.body
            model.mat_rgba[self._materials(model, ("effector", "effector_default"))] = visuals.effector
        if "target" in self.vary:
            model.mat_rgba[self._materials(model, ("target", "target_default"))] = visuals.target
        if "light" in self.vary:
            model.vis.headlight.ambient[:] = visuals.ambient
            model.vis.headlight.diffuse[:] = visuals.diffuse
            model.vis.headlight.specular[:] = visuals.specular
            if visuals.light_pos is not None:
                model.light_pos[0] = visuals.light_pos
        if "camera" in self.vary:
            model.cam_pos[0] = visuals.camera_pos
            if visuals.camera_quat is not None:
                model.cam_quat[0] = visuals.camera_quat
        if self.vary & {"light", "camera"}:
            # Tracking cameras and lights move with offsets computed at qpos0: recompute them. This
            # overwrites physics.data, which the reset that follows restores.
            mujoco.mj_setConst(model.ptr, physics.data.ptr)
        if textures:
            with physics.contexts.gl.make_current() as ctx:
                for tex_id, _ in textures:
                    ctx.call(mujoco.mjr_uploadTexture, model.ptr, physics.contexts.mujoco.ptr, tex_id)
        return visuals
