"""Resampling lat-long maps: bilinear lookups by direction, and a world map seen from a camera."""

from __future__ import annotations

import numpy as np

from .camera import camera_to_world_directions
from .latlong import direction_to_uv, pixel_directions
from .rotation import lookup_directions


def sample_latlong(pixels: np.ndarray,  # [H, W, 3] lat-long radiance
                   dirs: np.ndarray,    # [..., 3] lookup directions
                   ) -> np.ndarray:     # [..., 3] bilinear samples (wrapping in u)
    h, w = pixels.shape[:2]
    uv = direction_to_uv(dirs)
    x = uv[..., 0] * w - 0.5
    y = (1.0 - uv[..., 1]) * h - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    xa, xb = x0 % w, (x0 + 1) % w
    ya, yb = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    top = pixels[ya, xa] * (1 - fx) + pixels[ya, xb] * fx
    bottom = pixels[yb, xa] * (1 - fx) + pixels[yb, xb] * fx
    return top * (1 - fy) + bottom * fy


def camera_frame_latlong(pixels: np.ndarray,  # [H, W, 3] environment (world, Cycles lat-long)
                         rotation: tuple[float, float, float],  # Euler XYZ (rad), as the Mapping node
                         c2w: np.ndarray,     # [4, 4] Blender camera-to-world
                         height: int,
                         ) -> np.ndarray:     # [height, 2 height, 3] radiance per camera-frame direction
    cam_dirs = pixel_directions(height, 2 * height)
    return sample_latlong(pixels, lookup_directions(camera_to_world_directions(cam_dirs, c2w), rotation))
