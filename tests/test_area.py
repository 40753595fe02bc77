import math

import numpy as np
import pytest
from numpy.polynomial import legendre
from scipy import integrate, special

from core.lighting.area import (beta_from_radius, cap_band_factors, cap_solid_angle, radius_from_beta,
                                sg_band_factors, sg_sharpness_for_radius)
from core.lighting.encoding import LightEncoding
from core.lighting.sh import real_sh


def test_beta_endpoints_and_linearity_in_solid_angle():
    theta0 = 0.18
    assert beta_from_radius(theta0, theta0) == pytest.approx(0.0)
    assert beta_from_radius(math.pi / 2, theta0) == pytest.approx(1.0)
    assert beta_from_radius(0.01, theta0) == 0.0 and beta_from_radius(2.5, theta0) == 1.0
    # halfway in solid angle between the OLAT and a hemisphere is beta 0.5
    omega = 0.5 * (cap_solid_angle(theta0) + 2 * math.pi)
    theta = math.acos(1 - omega / (2 * math.pi))
    assert beta_from_radius(theta, theta0) == pytest.approx(0.5)
    betas = np.linspace(0, 1, 11)
    np.testing.assert_allclose(beta_from_radius(radius_from_beta(betas, theta0), theta0), betas, atol=1e-12)


@pytest.mark.parametrize("theta", [0.05, 0.3, 1.0, 2.0])
def test_cap_band_factors_match_numerical_integration(theta):
    c = math.cos(theta)
    ref = [integrate.quad(lambda t: legendre.legval(t, [0] * l + [1]), c, 1, epsabs=1e-13)[0] / (1 - c)
           for l in range(8)]
    np.testing.assert_allclose(cap_band_factors(theta, 7), ref, atol=1e-10)


@pytest.mark.parametrize("theta", [0.1, 0.5, 1.2])
def test_sg_band_factors_match_spherical_bessel(theta):
    lam = sg_sharpness_for_radius(theta)
    # int e^{lam (t-1)} P_l(t) dt = 2 e^{-lam} i_l(lam): g_l = i_l(lam) / i_0(lam)
    ref = [special.spherical_in(l, lam) / special.spherical_in(0, lam) for l in range(8)]
    np.testing.assert_allclose(sg_band_factors(theta, 7), ref, rtol=1e-8, atol=1e-12)
    sg_omega = 2 * math.pi * (1 - math.exp(-2 * lam)) / lam
    assert sg_omega == pytest.approx(cap_solid_angle(theta), rel=1e-9)


def test_encoding_beta_zero_is_plain_sh_padded(rng):
    enc = LightEncoding(degree=3, width=32)
    d = rng.normal(size=(4, 3)); d /= np.linalg.norm(d, axis=1, keepdims=True)
    tok = enc.encode(d, np.zeros(4))
    assert tok.shape == (4, 32) and tok.dtype == np.float32
    np.testing.assert_allclose(tok[:, :16], real_sh(d, 3), atol=1e-6)
    assert np.all(tok[:, 16:] == 0)


def test_scale_encoding_is_sh_of_scaled_direction_and_beta_one_is_flat(rng):
    enc = LightEncoding(degree=3, width=16, beta_encoding="scale")
    d = rng.normal(size=(3, 3)); d /= np.linalg.norm(d, axis=1, keepdims=True)
    beta = np.array([0.25, 0.6, 1.0])
    tok = enc.encode(d, beta)
    np.testing.assert_allclose(tok, real_sh((1 - beta)[:, None] * d, 3), atol=1e-6)
    assert np.all(np.isfinite(tok[2])) and np.all(tok[2, 1:] == 0)


@pytest.mark.parametrize("kind", ["cap", "sg"])
def test_exact_encodings_shrink_higher_bands_monotonically_with_beta(kind):
    enc = LightEncoding(degree=3, width=16, beta_encoding=kind, stage_radius=0.15)
    f = enc.band_factors(np.array([0.0, 0.3, 0.7, 1.0]))
    assert np.all(f[:, 0] == pytest.approx(1.0))
    assert np.all(np.diff(f[:, 1]) < 0)          # band 1 falls as the light grows
    assert f[0, 1] > 0.98                         # an OLAT is nearly a delta
    if kind == "cap":  # beta = 1 is a hemisphere: g_1 = int_0^1 t dt = 1/2
        assert f[3, 1] == pytest.approx(0.5, abs=1e-9)


def test_zero_direction_is_rejected():
    with pytest.raises(ValueError, match="zero vector"):
        LightEncoding().encode(np.zeros((1, 3)), np.zeros(1))
