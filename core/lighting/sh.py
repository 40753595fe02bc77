"""Real spherical harmonics, orthonormal on the unit sphere.

Coefficients are ordered by band, ``index = l*l + l + m`` for ``-l <= m <= l``.
No Condon-Shortley phase, so band 1 is ``sqrt(3/4pi) * (y, z, x)``.

Vectors need not be unit length: ``real_sh(v)`` evaluates the solid harmonics
``|v|**l * Y_lm(v / |v|)``. Scaling a direction by ``1 - beta`` therefore
attenuates band ``l`` by ``(1 - beta)**l`` (DifFRelight's area-light encoding),
and the zero vector gives the constant band alone without normalising it.
"""

from __future__ import annotations

import math

import numpy as np


def sh_count(degree: int) -> int:
    """Number of coefficients of bands 0..degree."""
    return (degree + 1) ** 2


def sh_index(l: int, m: int) -> int:
    """Flat index of coefficient (l, m)."""
    return l * l + l + m


def _normalisation(l: int, m: int) -> float:
    """K_l^m = sqrt((2l+1)/(4pi) * (l-m)!/(l+m)!) for m >= 0."""
    return math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))


def real_sh(vectors: np.ndarray,  # [..., 3]
            degree: int,
            ) -> np.ndarray:      # [..., (degree+1)**2]
    """Real SH of bands 0..degree at ``vectors`` (solid harmonics for non-unit vectors)."""
    if degree < 0:
        raise ValueError(f"SH degree must be >= 0, got {degree}")
    v = np.asarray(vectors, dtype=np.float64)
    if v.shape[-1] != 3:
        raise ValueError(f"vectors must have a last axis of 3, got shape {v.shape}")
    r = np.linalg.norm(v, axis=-1)
    safe = np.where(r > 0, r, 1.0)
    u = v / safe[..., None]
    # the zero vector: any unit direction will do, every band l > 0 is scaled by 0
    u = np.where((r > 0)[..., None], u, np.array([0.0, 0.0, 1.0]))
    x, y, z = u[..., 0], u[..., 1], u[..., 2]

    out = np.zeros(v.shape[:-1] + (sh_count(degree),), dtype=np.float64)
    # (x + iy)^m = sin(theta)^m e^{i m phi}; Q_l^m(z) = P_l^m(z) / sin(theta)^m
    xy_pow = np.ones_like(x) + 0j
    double_factorial = 1.0  # (2m-1)!!
    for m in range(degree + 1):
        if m > 0:
            xy_pow = xy_pow * (x + 1j * y)
            double_factorial *= 2 * m - 1
        q_prev = np.zeros_like(z)
        q = np.full_like(z, double_factorial)  # Q_m^m
        for l in range(m, degree + 1):
            if l == m + 1:
                q_prev, q = q, z * (2 * m + 1) * q
            elif l > m + 1:
                q_prev, q = q, ((2 * l - 1) * z * q - (l + m - 1) * q_prev) / (l - m)
            k = _normalisation(l, m)
            if m == 0:
                out[..., sh_index(l, 0)] = k * q
            else:
                out[..., sh_index(l, m)] = math.sqrt(2) * k * q * xy_pow.real
                out[..., sh_index(l, -m)] = math.sqrt(2) * k * q * xy_pow.imag
    scale = np.stack([r ** l for l in range(degree + 1)], axis=-1)  # [..., degree+1]
    return out * band_expand(scale, degree)


def band_expand(per_band: np.ndarray,  # [..., degree+1]
                degree: int,
                ) -> np.ndarray:       # [..., (degree+1)**2]
    """Repeat one value per band over the band's 2l+1 coefficients."""
    per_band = np.asarray(per_band, dtype=np.float64)
    reps = [2 * l + 1 for l in range(degree + 1)]
    return np.repeat(per_band, reps, axis=-1)
