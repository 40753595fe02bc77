"""SynthLight's environment conditioning: the target environment map rotated into the camera
frame, as a tone-mapped lat-long the codec can encode.

The map is normalised by its mean radiance (SynthLight clips, normalises and
applies a gamma), which discards absolute intensity: the scale is returned so
the relit result, predicted per unit of it, is multiplied back in linear space.

A small network sees the map only through its convolutions, where the lighting of one side of
the sphere sits in a few columns of the map's channels far from most of the face; the map's
order-2 spherical harmonics (what Lambertian shading depends on) can also be given to every
pixel at once as a cross-attention token (:func:`environment_sh`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ..io.images import resize
from ..lighting.latlong import pixel_directions, pixel_solid_angles
from ..lighting.sh import real_sh, sh_count

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


ENV_SH_DEGREE = 2  # bands of the environment token: Lambertian irradiance is captured by bands 0-2


@lru_cache(maxsize=8)
def _sh_projection(height: int, width: int) -> np.ndarray:  # [K, H*W]
    """Solid-angle-weighted SH basis of an encoded map's pixels (its rows are the lat-long's rows,
    its columns the lat-long's columns, squashed to the model's square)."""
    basis = real_sh(pixel_directions(height, width).reshape(-1, 3), ENV_SH_DEGREE)  # [P, K]
    return (basis * pixel_solid_angles(height, width).reshape(-1, 1)).T.astype(np.float32)


def environment_sh(encoded: torch.Tensor,  # [B, H, W, 3] maps from encode_environment, in [-1, 1]
                   ) -> torch.Tensor:      # [B, 3 K] order-2 SH of the radiance, per unit mean radiance
    """The SH projection of the radiance an encoded map holds (its gamma undone; above the
    headroom it was clipped), channel-major: K coefficients of red, then green, then blue."""
    b, h, w, _ = encoded.shape
    radiance = ((encoded.float() + 1.0) / 2.0).clamp(min=0.0) ** 2.2 * HEADROOM
    projection = torch.as_tensor(_sh_projection(h, w), device=encoded.device)
    return torch.einsum("kp,bpc->bck", projection, radiance.reshape(b, h * w, 3)).reshape(b, 3 * sh_count(ENV_SH_DEGREE))
