"""Area lights: DifFRelight's size beta and exact zonal (cap / spherical Gaussian) bands.

beta in [0, 1]: 0 is one stage OLAT, 1 is flat-lit (a hemisphere). relit maps
a light's angular radius theta to beta linearly in solid angle, from the stage
OLAT's own angular radius theta0 (beta = 0) to a hemisphere (beta = 1).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import legendre

HEMISPHERE = 2.0 * math.pi


def cap_solid_angle(theta: np.ndarray | float) -> np.ndarray:
    """Solid angle (sr) of a spherical cap of angular radius theta (radians)."""
    return 2.0 * math.pi * (1.0 - np.cos(theta))


def cap_radius(solid_angle: np.ndarray | float) -> np.ndarray:
    """Angular radius (radians) of the cap with the given solid angle."""
    return np.arccos(np.clip(1.0 - np.asarray(solid_angle, dtype=np.float64) / (2.0 * math.pi), -1.0, 1.0))


def beta_from_radius(theta: np.ndarray | float, theta0: float) -> np.ndarray:
    """beta of a light of angular radius theta, for a stage whose OLATs have radius theta0.

    Lights smaller than an OLAT get beta = 0, lights of a hemisphere or more get 1.
    """
    omega0 = cap_solid_angle(theta0)
    beta = (cap_solid_angle(theta) - omega0) / (HEMISPHERE - omega0)
    return np.clip(beta, 0.0, 1.0)


def radius_from_beta(beta: np.ndarray | float, theta0: float) -> np.ndarray:
    """Inverse of :func:`beta_from_radius` on [0, 1]."""
    omega0 = cap_solid_angle(theta0)
    omega = omega0 + np.clip(beta, 0.0, 1.0) * (HEMISPHERE - omega0)
    return cap_radius(omega)


def zonal_band_factors(profile, degree: int, nodes: int = 256) -> np.ndarray:  # [degree+1]
    """Band factors g_l = int f(t) P_l(t) dt / int f(t) dt of a zonal profile f(cos angle).

    A unit-energy light of that profile centred on d has SH coefficients
    ``g_l * Y_lm(d)`` (Funk-Hecke). Gauss-Legendre quadrature on t = cos angle.
    """
    t, w = legendre.leggauss(nodes)
    f = profile(t)
    total = np.sum(w * f)
    if not total > 0:
        raise ValueError("zonal profile must have positive integral")
    return np.array([np.sum(w * f * legendre.legval(t, [0] * l + [1])) / total for l in range(degree + 1)])


def cap_band_factors(theta: float, degree: int) -> np.ndarray:  # [degree+1]
    """Exact band factors of a uniform cap of angular radius theta (closed form)."""
    c = math.cos(theta)
    if theta <= 0:
        return np.ones(degree + 1)
    p = [legendre.legval(c, [0] * n + [1]) for n in range(degree + 2)]
    g = [1.0]
    for l in range(1, degree + 1):
        # int_c^1 P_l = (P_{l-1}(c) - P_{l+1}(c)) / (2l+1)
        g.append((p[l - 1] - p[l + 1]) / ((2 * l + 1) * (1.0 - c)))
    return np.array(g)


def sg_sharpness_for_radius(theta: float) -> float:
    """Sharpness lambda of the spherical Gaussian exp(lambda (cos - 1)) with a cap's solid angle.

    The SG's solid angle is 2pi (1 - exp(-2 lambda)) / lambda; solved by bisection.
    """
    target = float(cap_solid_angle(theta))
    if target >= 4.0 * math.pi * 0.999:
        return 1e-3
    lo, hi = 1e-6, 1e8
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        omega = 2.0 * math.pi * (1.0 - math.exp(-2.0 * mid)) / mid
        lo, hi = (mid, hi) if omega > target else (lo, mid)
    return math.sqrt(lo * hi)


def sg_band_factors(theta: float, degree: int) -> np.ndarray:  # [degree+1]
    """Band factors of the spherical Gaussian with the solid angle of a cap of radius theta."""
    if theta <= 0:
        return np.ones(degree + 1)
    lam = sg_sharpness_for_radius(theta)
    return zonal_band_factors(lambda t: np.exp(lam * (t - 1.0)), degree, nodes=512)


def sg_cell_weights(centre: np.ndarray,        # [3] unit direction of the area light (any frame)
                    beta: float,               # size in [0, 1]
                    directions: np.ndarray,    # [N, 3] stage directions (same frame)
                    solid_angles: np.ndarray,  # [N] their cells' solid angles (sr)
                    stage_radius: float,       # angular radius of one stage OLAT (beta = 0)
                    ) -> np.ndarray:           # [N] weights summing to 1
    """How an area light of size beta spreads over stage lights: a spherical Gaussian with the
    cap's solid angle, integrated over each cell. This defines what a model predicts for a light
    of size beta (its training target is these weights applied to per-unit-irradiance OLATs), so
    an area light of total irradiance E is E times that prediction."""
    lam = sg_sharpness_for_radius(float(radius_from_beta(beta, stage_radius)))
    w = np.exp(lam * (np.asarray(directions) @ np.asarray(centre, dtype=np.float64) - 1.0)) * solid_angles
    return w / w.sum()
