"""Image metrics on subject pixels (scene-linear, premultiplied)."""

from __future__ import annotations

import math

import numpy as np


def psnr(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """PSNR over ``mask`` pixels, with the ground truth's peak on them as the signal peak."""
    mse = float(np.mean((pred[mask] - truth[mask]) ** 2))
    peak = float(truth[mask].max())
    return 10.0 * math.log10(peak ** 2 / max(mse, 1e-20))


def ssim(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean SSIM (scikit-image, Gaussian window) over ``mask`` pixels, data range = the truth's peak."""
    from skimage.metrics import structural_similarity

    peak = float(truth[mask].max())
    _, full = structural_similarity(truth, pred, channel_axis=-1, data_range=peak, gaussian_weights=True,
                                    sigma=1.0, use_sample_covariance=False, full=True)
    return float(full[mask].mean())


def best_scale(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """The constant s minimising |s pred - truth|^2 on ``mask`` (the flat-lit baseline's exposure)."""
    p, t = pred[mask].ravel(), truth[mask].ravel()
    return float(p @ t / max(p @ p, 1e-20))


def flip(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean HDR-FLIP error (NVIDIA's ``flip-evaluator``, the ``bench`` extra) over ``mask`` pixels;
    0 is identical, lower is better. Inputs are scene-linear Rec.709, clamped at 0."""
    import flip_evaluator

    error_map, _, _ = flip_evaluator.evaluate(np.maximum(truth, 0).astype(np.float32),
                                              np.maximum(pred, 0).astype(np.float32), "HDR",
                                              applyMagma=False, computeMeanError=False)
    return float(np.asarray(error_map).reshape(mask.shape)[mask].mean())


def edge_chroma_departure(img: np.ndarray,    # [H, W, 3] premultiplied scene-linear
                          alpha: np.ndarray,  # [H, W] its matte
                          floor: float = 0.02,  # pixels darker than this fraction of the subject's 99th
                                                # percentile are skipped (a colour the pass does not show)
                          ) -> np.ndarray:    # [N] one value per silhouette pixel
    """How far each silhouette pixel's chromaticity (r, g, b over their sum) departs from the median
    of its 3x3 neighbours on the subject: the largest of the three differences. Coloured specks along
    a matte edge are single pixels far from their neighbours; a smooth colour gradient is not.
    The silhouette: pixels of partial alpha, or subject pixels touching the background."""
    import cv2

    subject = alpha > 0.5
    eroded = cv2.erode(subject.astype(np.uint8), np.ones((3, 3), np.uint8), borderValue=1).astype(bool)
    edge = ((alpha > 0.05) & (alpha < 0.95)) | (subject & ~eroded)
    total = img.sum(axis=-1)
    lit = total > floor * max(float(np.percentile(total[subject], 99)) if subject.any() else 0.0, 1e-12)
    chroma = img / np.maximum(total, 1e-12)[..., None]
    pad_c = np.pad(chroma, ((1, 1), (1, 1), (0, 0)), constant_values=np.nan)
    pad_ok = np.pad(lit & (alpha > 0.05), 1, constant_values=False)
    ys, xs = np.nonzero(edge & lit)
    out = np.zeros(len(ys), np.float32)
    for i, (y, x) in enumerate(zip(ys, xs)):
        win, ok = pad_c[y:y + 3, x:x + 3].reshape(9, 3), pad_ok[y:y + 3, x:x + 3].reshape(9).copy()
        ok[4] = False  # the pixel itself is not its own neighbour
        if ok.sum() >= 2:
            out[i] = float(np.abs(chroma[y, x] - np.median(win[ok], axis=0)).max())
    return out
