import math

import numpy as np
import pytest
from numpy.polynomial import legendre

from core.lighting.sh import real_sh, sh_count, sh_index
from tests.conftest import sphere_quadrature


def test_gram_matrix_is_identity_up_to_degree_7():
    dirs, w = sphere_quadrature(n_z=32, n_phi=64)
    y = real_sh(dirs, 7)
    gram = y.T @ (w[:, None] * y)
    assert gram.shape == (64, 64)
    assert np.abs(gram - np.eye(64)).max() < 1e-3


def test_addition_theorem(rng):
    # sum_m Y_lm(a) Y_lm(b) = (2l+1)/(4pi) P_l(a.b): an identity independent of the recurrence
    a = rng.normal(size=(20, 3)); a /= np.linalg.norm(a, axis=1, keepdims=True)
    b = rng.normal(size=(20, 3)); b /= np.linalg.norm(b, axis=1, keepdims=True)
    ya, yb = real_sh(a, 8), real_sh(b, 8)
    t = np.sum(a * b, axis=1)
    for l in range(9):
        sl = slice(l * l, (l + 1) ** 2)
        lhs = np.sum(ya[:, sl] * yb[:, sl], axis=1)
        rhs = (2 * l + 1) / (4 * math.pi) * legendre.legval(t, [0] * l + [1])
        np.testing.assert_allclose(lhs, rhs, atol=1e-10)


def test_band_one_is_xyz_without_condon_shortley():
    d = np.array([[0.3, -0.5, 0.812403840463596]])
    y = real_sh(d, 1)[0]
    k = math.sqrt(3 / (4 * math.pi))
    np.testing.assert_allclose(y[1:], [k * d[0, 1], k * d[0, 2], k * d[0, 0]], atol=1e-12)


def test_clamped_cosine_coefficients():
    # project max(cos theta, 0) about +Z; exact on [0, 1] with Gauss-Legendre in z
    z, wz = legendre.leggauss(40)
    z, wz = 0.5 * (z + 1), 0.5 * wz  # map to [0, 1]
    n_phi = 16
    phi = (np.arange(n_phi) + 0.5) * 2 * math.pi / n_phi
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    r = np.sqrt(1 - zz ** 2)
    dirs = np.stack([r * np.cos(pp), r * np.sin(pp), zz], -1).reshape(-1, 3)
    w = (wz[:, None] * 2 * math.pi / n_phi * np.ones(n_phi)).reshape(-1)
    coeffs = real_sh(dirs, 4).T @ (w * dirs[:, 2])
    expected = [math.sqrt(math.pi) / 2, math.sqrt(math.pi / 3), math.sqrt(5 * math.pi) / 8, 0.0,
                -math.sqrt(math.pi) / 16]
    for l in range(5):
        assert coeffs[sh_index(l, 0)] == pytest.approx(expected[l], abs=1e-9)
        for m in range(-l, l + 1):
            if m:
                assert abs(coeffs[sh_index(l, m)]) < 1e-9


def test_unnormalised_vectors_scale_band_l_by_length_power_l(rng):
    d = rng.normal(size=(5, 3)); d /= np.linalg.norm(d, axis=1, keepdims=True)
    s = 0.37
    ratio = real_sh(s * d, 3) / real_sh(d, 3)
    for l in range(4):
        np.testing.assert_allclose(ratio[:, l * l:(l + 1) ** 2], s ** l, rtol=1e-9)


def test_zero_vector_gives_constant_band_only():
    y = real_sh(np.zeros((1, 3)), 3)[0]
    assert np.all(np.isfinite(y))
    assert y[0] == pytest.approx(1 / (2 * math.sqrt(math.pi)))
    assert np.all(y[1:] == 0)
    assert sh_count(3) == 16
