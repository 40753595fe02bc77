"""Dense optical flow between scene-linear frames (OpenCV DIS) and its consistency check.

Flow here is *backward*: ``flow[y, x] = (dx, dy)`` says where pixel (x, y) of
frame b was in frame a, in pixels, +y down (the convention of the synthetic
set's ``motion_prev``).
"""

from __future__ import annotations

import numpy as np

from ..io.colour import LUMINANCE


def _grey8(img: np.ndarray) -> np.ndarray:  # [H, W, 3] scene-linear -> [H, W] uint8
    """Display-encode for the flow estimator: luminance through a log curve (exposure-independent
    enough for faces lit flat, and no clipping of highlights)."""
    y = np.maximum(img.astype(np.float32) @ LUMINANCE.astype(np.float32), 0.0)
    peak = float(np.percentile(y, 99.5)) if y.size else 1.0
    v = np.log1p(16.0 * y / max(peak, 1e-12)) / np.log1p(16.0)
    return np.clip(v * 255.0 + 0.5, 0, 255).astype(np.uint8)


def backward_flow(a: np.ndarray,   # [H, W, 3] frame a (earlier)
                  b: np.ndarray,   # [H, W, 3] frame b (later)
                  ) -> np.ndarray:  # [H, W, 2] for each pixel of b, its offset to where it was in a
    """OpenCV's DIS optical flow (medium preset) from b to a."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_grey8(b), _grey8(a), None)


def warp(img: np.ndarray,    # [H, W, C] frame a
         flow: np.ndarray,   # [H, W, 2] backward flow b -> a
         ) -> np.ndarray:    # [H, W, C] frame a moved onto frame b (bilinear, black outside)
    import cv2

    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0).reshape(img.shape)


def consistent(flow_ba: np.ndarray,  # [H, W, 2] backward flow b -> a
               flow_ab: np.ndarray,  # [H, W, 2] forward flow a -> b
               tolerance: float = 0.5,  # pixels, plus 5 % of the motion
               ) -> np.ndarray:      # [H, W] bool: pixels of b whose round trip returns
    """Forward-backward check: following b -> a then a -> b must land where it started."""
    back = warp(flow_ab, flow_ba)
    err = np.linalg.norm(flow_ba + back, axis=-1)
    scale = np.linalg.norm(flow_ba, axis=-1) + np.linalg.norm(back, axis=-1)
    return err <= tolerance + 0.05 * scale
