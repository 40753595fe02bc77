"""SynthLight's environment conditioning: the target environment map rotated into the camera
frame, as a tone-mapped lat-long the codec can encode.

The map is normalised by its mean radiance (SynthLight clips, normalises and
applies a gamma), which discards absolute intensity: the scale is returned so
the relit result, predicted per unit of it, is multiplied back in linear space.
"""

from __future__ import annotations

import numpy as np

from ..io.images import resize
from ..lighting.latlong import pixel_solid_angles

HEADROOM = 4.0  # the mean radiance maps to 1/HEADROOM before the gamma


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
