"""Physical consistency of stage predictions: light transport is linear, so a frame's
predicted OLATs weighted by the irradiance each stage light delivered in the flat-lit capture
must add up to the flat-lit input itself.

``ratio`` correction makes that exact: every stage prediction of a pixel is multiplied by the
same gain, input / (weighted sum of the predictions). It keeps each prediction's share of the
total (the model's shading), only the sum is pinned to the input; a uniform white environment
then gives the input back. Bundles record whether their relighting applies it (recipe
``consistency``), chosen by measurement (docs/benchmarks.md).
"""

from __future__ import annotations

import numpy as np

CONSISTENCY = ("none", "ratio")  # the corrections a bundle's recipe or a job may name
GAIN_FLOOR = 1e-3  # weighted sums below this fraction of the input's mean are not trusted (gain 1)


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
