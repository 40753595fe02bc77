"""Physical consistency of stage predictions: light transport is linear, so a frame's
predicted OLATs weighted by the irradiance each stage light delivered in the flat-lit capture
must add up to the flat-lit input itself.

``ratio`` correction makes that exact: every stage prediction of a pixel is multiplied by the
same gain, input / (weighted sum of the predictions). It keeps each prediction's share of the
total (the model's shading), only the sum is pinned to the input; a uniform white environment
then gives the input back. Bundles record whether their relighting applies it (recipe
``consistency``), chosen by measurement (docs/benchmarks.md).

A stage may not hold every light that lit its flat-lit images (lights removed from a real stage's
set, a partial dome): its OLATs then add up to only a share of the flat-lit, its *coverage*
(per channel, measured on the training views). The correction pins the sum to that share of the
input, not to the whole input, which would brighten every relight by 1 / coverage.
"""

from __future__ import annotations

import numpy as np

CONSISTENCY = ("none", "ratio")  # the corrections a bundle's recipe or a job may name
GAIN_FLOOR = 1e-3  # weighted sums below this fraction of the input's mean are not trusted (gain 1)
COVERAGE_TOLERANCE = 0.02  # a stage whose OLATs sum to the flat-lit within this is complete


def stage_coverage(flat: np.ndarray,        # [V, H, W, 3] flat-lit images
                   olat: np.ndarray,        # [V, N, H, W, 3] OLATs per unit irradiance
                   irradiance: np.ndarray,  # [N, 3] W/m² each light delivered in the flat-lit
                   mask: np.ndarray,        # [V, H, W] subject pixels
                   ) -> np.ndarray:         # [3] sum of the weighted OLATs / flat-lit, per channel
    total = np.zeros(3)
    for v in range(len(flat)):
        lit = np.einsum("nhwc,nc->hwc", olat[v].astype(np.float32), np.asarray(irradiance, np.float32))
        total += lit[mask[v]].sum(axis=0)
    return total / np.maximum(sum(f[m].sum(axis=0) for f, m in zip(flat, mask)), 1e-12)


def partial_stage_message(coverage: np.ndarray, where: str) -> str | None:
    """A warning when a stage's OLATs do not add up to its flat-lit (None when they do)."""
    if np.all(np.abs(np.asarray(coverage) - 1.0) <= COVERAGE_TOLERANCE):
        return None
    return (f"{where}: the stage's OLATs add up to {np.round(100 * np.asarray(coverage), 1).tolist()} % of the "
            "flat-lit (R, G, B): the stage lacks lights that lit the flat-lit, or the irradiance is miscalibrated; "
            "relighting pins the stage to that share of the input")


def consistency_gain(images: np.ndarray,      # [N, m, m, 3] stage predictions per unit irradiance
                     irradiance: np.ndarray,  # [N, 3] W/m² each stage light delivered in the flat-lit input
                     flat: np.ndarray,        # [m, m, 3] the flat-lit input the model saw
                     ) -> np.ndarray:         # [m, m, 3] per-pixel gain
    total = np.einsum("nhwc,nc->hwc", images.astype(np.float32), np.asarray(irradiance, np.float32))
    floor = GAIN_FLOOR * max(float(flat.mean()), 1e-12)
    trusted = total > floor
    return np.where(trusted, flat / np.where(trusted, total, 1.0), 1.0).astype(np.float32)


def ratio_correct(images: np.ndarray, irradiance: np.ndarray, flat: np.ndarray) -> np.ndarray:  # [N, m, m, 3]
    """The stage predictions scaled so that their irradiance-weighted sum is ``flat``."""
    return images * consistency_gain(images, irradiance, flat)[None]
