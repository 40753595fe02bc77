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
