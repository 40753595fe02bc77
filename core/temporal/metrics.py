"""Temporal consistency measured with *true* motion (Cycles' Vector pass, stored with the synthetic
flat-lit frames), never with the flow used for blending (that would be circular)."""

from __future__ import annotations

import numpy as np

from .flow import warp


def warping_error(frames: list[np.ndarray],       # [F] of [H, W, 3]
                  motion_prev: list[np.ndarray],  # [F] of [H, W, 2]: offset of each pixel to the previous frame
                  alphas: list[np.ndarray],       # [F] of [H, W] subject mattes
                  ) -> float:
    """Mean |I_f(p) - I_{f-1}(p + motion)| over subject pixels visible in both frames, relative to
    the frames' mean value (so relit sequences of any exposure compare)."""
    errors, scale = [], []
    for f in range(1, len(frames)):
        prev = warp(frames[f - 1], motion_prev[f])
        seen = warp(alphas[f - 1][..., None], motion_prev[f])[..., 0]
        mask = (alphas[f] > 0.5) & (seen > 0.5)
        if mask.any():
            errors.append(np.abs(frames[f] - prev)[mask].mean())
            scale.append(frames[f][mask].mean())
    return float(np.mean(errors) / max(np.mean(scale), 1e-12))
