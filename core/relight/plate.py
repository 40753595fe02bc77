"""Fitting a plate to the model's resolution (centre square crop, OpenImageIO resize)."""

from __future__ import annotations

import numpy as np


def resize(img: np.ndarray,  # [H, W, C] float32
           size: int) -> np.ndarray:  # [size, size, C]
    """Resize a square image with OpenImageIO's filtered resize."""
    import OpenImageIO as oiio

    h, w, c = img.shape
    src = oiio.ImageBuf(oiio.ImageSpec(w, h, c, "float"))
    src.set_pixels(oiio.ROI(0, w, 0, h, 0, 1, 0, c), np.ascontiguousarray(img, dtype=np.float32))
    dst = oiio.ImageBufAlgo.resize(src, roi=oiio.ROI(0, size, 0, size, 0, 1, 0, c))
    return np.asarray(dst.get_pixels(oiio.FLOAT), dtype=np.float32).reshape(size, size, c)


def fit_square(rgb: np.ndarray, alpha: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre-crop to a square and resize to ``size`` (whole-plate checks; relighting crops to the matte)."""
    h, w = alpha.shape
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    both = np.concatenate([rgb, alpha[..., None]], axis=-1)[y0:y0 + s, x0:x0 + s]
    out = both if s == size else resize(both, size)
    return out[..., :3], out[..., 3]
