"""Initial noise that moves with the subject (after Go-with-the-Flow, simplified).

Each latent pixel of frame b takes the noise value of the pixel it came from in
frame a (nearest, along the backward flow); pixels whose source is outside the
frame, fails the forward-backward check, or was already taken by another pixel
get fresh noise. Every value is used at most once and fresh values are
independent, so the result is still i.i.d. standard normal per frame while
following the motion: the sampler starts each frame where the last one started,
in the subject's own coordinates.
"""

from __future__ import annotations

import numpy as np

from .flow import backward_flow, consistent


def _downsample(x: np.ndarray, factor: int) -> np.ndarray:  # [H, W, C] -> [H/f, W/f, C] block mean
    h, w = x.shape[:2]
    return x.reshape(h // factor, factor, w // factor, factor, -1).mean(axis=(1, 3))


def latent_flow(a: np.ndarray,  # [H, W, 3] frame a, at the model's resolution
                b: np.ndarray,  # [H, W, 3] frame b
                factor: int,    # image pixels per latent pixel
                ) -> tuple[np.ndarray, np.ndarray]:  # [h, w, 2] flow b -> a in latent pixels, [h, w] valid
    """Backward flow and its consistency mask at the latent resolution."""
    flow_ba, flow_ab = backward_flow(a, b), backward_flow(b, a)
    ok = consistent(flow_ba, flow_ab).astype(np.float32)[..., None]
    return _downsample(flow_ba, factor) / factor, _downsample(ok, factor)[..., 0] > 0.5


def warp_noise(noise: np.ndarray,   # [C, h, w] frame a's initial noise
               flow: np.ndarray,    # [h, w, 2] backward flow b -> a in latent pixels
               valid: np.ndarray,   # [h, w] bool, pixels whose flow is trusted
               rng: np.random.Generator,
               ) -> np.ndarray:     # [C, h, w] frame b's initial noise, float32
    c, h, w = noise.shape
    gy, gx = np.mgrid[0:h, 0:w]
    sx = np.rint(gx + flow[..., 0]).astype(np.int64)
    sy = np.rint(gy + flow[..., 1]).astype(np.int64)
    ok = valid & (sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)
    source = np.where(ok, sy * w + sx, -1).reshape(-1)
    # a source taken by more than one pixel keeps only its first taker (raster order)
    candidates = np.flatnonzero(source >= 0)
    _, first = np.unique(source[candidates], return_index=True)
    keep = np.zeros(h * w, bool)
    keep[candidates[first]] = True
    out = rng.standard_normal((c, h * w)).astype(np.float32)
    flat = noise.reshape(c, -1)
    out[:, keep] = flat[:, source[keep]]
    return out.reshape(c, h, w)
