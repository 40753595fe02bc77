"""Colour of a light given as a colour temperature (Blender's light ``temperature``).

The Planckian locus in CIE xy by Kim et al.'s cubic fits (1667-25000 K, within about 1e-3 of the
exact locus), converted to linear Rec.709 (D65) and normalised to unit luminance, so temperature
changes the hue of a light and not its intensity. Outside the fitted range the temperature is
clamped to it.
"""

from __future__ import annotations

import numpy as np

from ..io.colour import LUMINANCE

XYZ_TO_REC709 = np.array([[3.2404542, -1.5371385, -0.4985314],
                          [-0.9692660, 1.8760108, 0.0415560],
                          [0.0556434, -0.2040259, 1.0572252]])
T_MIN, T_MAX = 1667.0, 25000.0


def planck_xy(kelvin: float) -> tuple[float, float]:
    t = float(np.clip(kelvin, T_MIN, T_MAX))
    if t <= 4000:
        x = -0.2661239e9 / t ** 3 - 0.2343589e6 / t ** 2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t ** 3 + 2.1070379e6 / t ** 2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x ** 3 - 1.34811020 * x ** 2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x ** 3 - 1.37418593 * x ** 2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x ** 3 - 5.87338670 * x ** 2 + 3.75112997 * x - 0.37001483
    return x, y


def blackbody_rgb(kelvin: float) -> np.ndarray:  # [3] linear Rec.709, luminance 1
    x, y = planck_xy(kelvin)
    rgb = XYZ_TO_REC709 @ np.array([x / y, 1.0, (1.0 - x - y) / y])
    rgb = np.maximum(rgb, 0.0)
    return rgb / float(rgb @ LUMINANCE)
