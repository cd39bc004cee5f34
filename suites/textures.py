"""Random textures in the spirit of MuJoCo's builtin generators, drawn from a numpy Generator.

DMC Remastered swaps in photographs (its own skies/ and floors/ image folders) for the skybox and floor.
Those images are not redistributable here, so each visual seed instead draws a builtin-style texture:
a pattern (gradient, checker or flat) in two random colours, optional marks (edge, cross or random dots in
a third colour) and per-pixel noise. The result varies colour, contrast and high-frequency content like the
photos do, but has no natural-image structure (no clouds, grass or wood grain).
"""

from __future__ import annotations

import numpy as np

PATTERNS = ("gradient", "checker", "flat")
MARKS = ("none", "edge", "cross", "random")


def random_texture(rng: np.random.Generator, width: int, height: int, faces: int = 1) -> np.ndarray:
    """uint8 pixels of shape (faces * height, width, 3), the layout of ``MjModel.tex_data``.

    Draws a fixed number of values in a fixed order whatever the outcome, so a seed always means the same
    texture. Cube and skybox textures (faces=6) show the same face six times (drawn once: it is cheaper).
    """
    pattern = PATTERNS[rng.integers(len(PATTERNS))]
    mark = MARKS[rng.integers(len(MARKS))]
    rgb1, rgb2, mark_rgb = rng.random(3), rng.random(3), rng.random(3)
    cells = int(rng.integers(2, 9))  # checker cells per side
    dot_density = rng.uniform(0.002, 0.02)
    noise_amplitude = rng.uniform(0.0, 0.15)

    rgb1, rgb2, mark_rgb = (c.astype(np.float32) for c in (rgb1, rgb2, mark_rgb))
    if pattern == "gradient":
        rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        face = np.broadcast_to(rgb1 * (1 - rows) + rgb2 * rows, (height, width, 3))
    elif pattern == "checker":
        parity = (
            np.arange(height)[:, None] * cells // height + np.arange(width)[None, :] * cells // width
        ) % 2
        face = np.where((parity == 0)[..., None], rgb1, rgb2)
    else:
        face = np.broadcast_to(rgb1, (height, width, 3))
    face = np.array(face, np.float32)
    if mark == "edge":
        step_h, step_w = max(height // cells, 1), max(width // cells, 1)
        face[::step_h, :] = mark_rgb
        face[:, ::step_w] = mark_rgb
    elif mark == "cross":
        face[height // 2, :] = mark_rgb
        face[:, width // 2] = mark_rgb

    dots = rng.random((height, width), dtype=np.float32) < dot_density
    if mark == "random":
        face[dots] = mark_rgb
    # Uniform rather than Gaussian noise: numpy draws it ~10x faster, and this runs every episode.
    face += (rng.random(face.shape, dtype=np.float32) - np.float32(0.5)) * np.float32(2 * noise_amplitude)
    face = (np.clip(face, 0.0, 1.0) * 255).astype(np.uint8)
    return np.concatenate([face] * faces, axis=0) if faces > 1 else face
