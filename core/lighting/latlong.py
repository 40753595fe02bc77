"""Lat-long (equirectangular) maps in Cycles' convention.

A world direction (x, y, z) looks up u = 0.5 - atan2(y, x) / 2pi and
v = 0.5 + asin(z) / pi, with v = 1 at the top row: row 0 as OpenImageIO reads
it is straight up (+Z), u = 0.5 looks along +X and u = 0.25 along +Y.
"""

from __future__ import annotations

import math

import numpy as np


def direction_to_uv(d: np.ndarray,  # [..., 3] unit directions
                    ) -> np.ndarray:  # [..., 2] (u, v) in [0, 1]
    d = np.asarray(d, dtype=np.float64)
    u = 0.5 - np.arctan2(d[..., 1], d[..., 0]) / (2.0 * math.pi)
    v = 0.5 + np.arcsin(np.clip(d[..., 2], -1.0, 1.0)) / math.pi
    return np.stack([np.mod(u, 1.0), v], axis=-1)


def uv_to_direction(uv: np.ndarray,  # [..., 2]
                    ) -> np.ndarray:  # [..., 3] unit directions
    uv = np.asarray(uv, dtype=np.float64)
    phi = (0.5 - uv[..., 0]) * 2.0 * math.pi
    elevation = (uv[..., 1] - 0.5) * math.pi
    c = np.cos(elevation)
    return np.stack([c * np.cos(phi), c * np.sin(phi), np.sin(elevation)], axis=-1)


def pixel_uv(height: int, width: int) -> np.ndarray:  # [H, W, 2] at pixel centres
    """(u, v) of each pixel centre; row 0 is the top (v near 1)."""
    u = (np.arange(width) + 0.5) / width
    v = 1.0 - (np.arange(height) + 0.5) / height
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu, vv], axis=-1)


def pixel_directions(height: int, width: int) -> np.ndarray:  # [H, W, 3]
    """World direction of each pixel centre."""
    return uv_to_direction(pixel_uv(height, width))


def row_solid_angles(height: int, width: int) -> np.ndarray:  # [H]
    """Exact solid angle of one pixel in each row: (2pi / W)(cos theta_top - cos theta_bottom).

    theta is measured from +Z; the rows of a full map sum to 4pi.
    """
    theta = np.arange(height + 1) * math.pi / height
    return (2.0 * math.pi / width) * (np.cos(theta[:-1]) - np.cos(theta[1:]))


def pixel_solid_angles(height: int, width: int) -> np.ndarray:  # [H, W]
    return np.repeat(row_solid_angles(height, width)[:, None], width, axis=1)
