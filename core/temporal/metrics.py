"""Temporal consistency measured with *true* motion (Cycles' Vector pass, stored with the synthetic
flat-lit frames), never with the flow used for blending (that would be circular)."""

from __future__ import annotations

import numpy as np

from .flow import warp


def _transitions(frames: list[np.ndarray], motion_prev: list[np.ndarray], alphas: list[np.ndarray]
                 ) -> list[tuple | None]:  # [F - 1]: (mean |difference|, mean value), the frames' dtype, or None
    out = []
    for f in range(1, len(frames)):
        prev = warp(frames[f - 1], motion_prev[f])
        seen = warp(alphas[f - 1][..., None], motion_prev[f])[..., 0]
        mask = (alphas[f] > 0.5) & (seen > 0.5)
        out.append((np.abs(frames[f] - prev)[mask].mean(), frames[f][mask].mean()) if mask.any() else None)
    return out


def warping_error(frames: list[np.ndarray],       # [F] of [H, W, 3]
                  motion_prev: list[np.ndarray],  # [F] of [H, W, 2]: offset of each pixel to the previous frame
                  alphas: list[np.ndarray],       # [F] of [H, W] subject mattes
                  ) -> float:
    """Mean |I_f(p) - I_{f-1}(p + motion)| over subject pixels visible in both frames, relative to
    the frames' mean value (so relit sequences of any exposure compare)."""
    seen = [t for t in _transitions(frames, motion_prev, alphas) if t is not None]
    return float(np.mean([e for e, _ in seen]) / max(np.mean([m for _, m in seen]), 1e-12))


def warping_errors(frames: list[np.ndarray], motion_prev: list[np.ndarray], alphas: list[np.ndarray]
                   ) -> np.ndarray:  # [F - 1]
    """The warping error of each transition f-1 -> f alone, relative to frame f's mean (NaN where no
    subject pixel is seen in both): where in a sequence the flicker or a pop is."""
    return np.array([np.nan if t is None else t[0] / max(t[1], 1e-12)
                     for t in _transitions(frames, motion_prev, alphas)])
