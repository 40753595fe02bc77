"""SynthLight's environment conditioning: the target environment map rotated into the camera
frame, as a tone-mapped lat-long the codec can encode.

The map is normalised by its mean radiance (SynthLight clips, normalises and
applies a gamma), which discards absolute intensity: the scale is returned so
the relit result, predicted per unit of it, is multiplied back in linear space.
"""

from __future__ import annotations

import numpy as np

from ..io.images import resize
from ..lighting.camera import camera_to_world_directions
from ..lighting.latlong import direction_to_uv, pixel_directions, pixel_solid_angles
from ..lighting.rotation import lookup_directions

HEADROOM = 4.0  # the mean radiance maps to 1/HEADROOM before the gamma


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


def encode_environment(latlong: np.ndarray,  # [h, 2h, 3] camera-frame radiance
                       resolution: int,      # model resolution: the map is squashed to a square
                       ) -> tuple[np.ndarray, float]:  # ([res, res, 3] in [-1, 1], scale)
    """Normalise by the mean radiance over the sphere, clip with headroom, gamma 1/2.2, resize."""
    h, w = latlong.shape[:2]
    omega = pixel_solid_angles(h, w)[..., None]
    scale = float(np.mean((latlong * omega).sum(axis=(0, 1)) / omega.sum()))
    if not scale > 0:
        raise ValueError("the environment is black; nothing to condition on")
    ldr = np.clip(latlong / (scale * HEADROOM), 0.0, 1.0) ** (1.0 / 2.2)
    small = np.clip(resize(ldr.astype(np.float32), resolution, resolution), 0.0, 1.0)  # no resampling overshoot
    return (2.0 * small - 1.0).astype(np.float32), scale
