import math

import numpy as np
import pytest
from scipy import special

from core.errors import RelitIOError, ValidationError
from core.io.exr import write_rgba
from core.lighting.area import cap_solid_angle
from core.lighting.hdri import load_environment, project_to_layout, project_to_sh
from core.lighting.layout import builtin_layout, make_layout, voronoi_solid_angles
from core.lighting.rotation import euler_xyz_matrix
from core.lighting.sh import real_sh
from tests.conftest import env_from_function

RADIANCE = np.array([0.7, 1.3, 2.1])


def test_constant_environment_gives_radiance_times_cell_solid_angle():
    layout = builtin_layout("default")
    env = env_from_function(256, lambda d: np.broadcast_to(RADIANCE, d.shape))
    proj = project_to_layout(env, layout)
    # energy: the whole sphere's radiance x 4pi, exactly
    np.testing.assert_allclose(proj.weights.sum(axis=0), RADIANCE * 4 * math.pi, rtol=1e-6)
    # per light: the same cells measured by a separate quadrature at the map's resolution
    cells = voronoi_solid_angles(layout.directions, height=256)
    np.testing.assert_allclose(proj.weights, cells[:, None] * RADIANCE, rtol=1e-6)
    # and close to the layout's own (finer) solid angles
    np.testing.assert_allclose(proj.weights / RADIANCE, np.repeat(layout.solid_angles[:, None], 3, 1), rtol=0.03)
    assert np.all(proj.dropped == 0)


def test_bright_cap_projects_onto_the_directions_inside_it():
    layout = builtin_layout("fib123")
    axis = np.array([0.3, -0.5, 0.6]); axis /= np.linalg.norm(axis)
    alpha = math.radians(50)
    env = env_from_function(256, lambda d: np.where((d @ axis > math.cos(alpha))[..., None], 5.0, 0.0)
                            * np.ones(3))
    w = project_to_layout(env, layout).weights[:, 0]
    cos = layout.directions @ axis
    cell = np.sqrt(layout.solid_angles.max() / math.pi) * 1.3  # generous cell radius
    inside = np.flatnonzero(cos > math.cos(alpha - cell))
    outside = np.flatnonzero(cos < math.cos(alpha + cell))
    assert len(inside) >= 8
    np.testing.assert_allclose(w[inside], 5.0 * layout.solid_angles[inside], rtol=0.03)
    assert np.all(w[outside] == 0)
    assert w.sum() == pytest.approx(5.0 * cap_solid_angle(alpha), rel=5e-3)


def _vmf(axis, kappa):
    return lambda d: np.exp(kappa * (d @ axis - 1.0))[..., None] * RADIANCE


def test_sub_pixel_rotation_moves_sh_projection_as_analytic_result():
    height, kappa = 128, 8.0
    axis = np.array([0.6, 0.2, 0.5]); axis /= np.linalg.norm(axis)
    env = env_from_function(height, _vmf(axis, kappa))
    # a third of a pixel about a tilted axis
    step = 2 * math.pi / (2 * height)
    rot = (0.2 * step, -0.1 * step, step / 3)
    coeffs = project_to_sh(env, 3, rot)
    # analytic: the lobe now sits at R^T a; Funk-Hecke gives c_lm = E * g_l * Y_lm(R^T a),
    # with E = 2pi (1 - e^{-2k}) / k and g_l = i_l(k) / i_0(k)
    moved = axis @ euler_xyz_matrix(rot)
    energy = 2 * math.pi * (1 - math.exp(-2 * kappa)) / kappa
    g = np.repeat([special.spherical_in(l, kappa) / special.spherical_in(0, kappa) for l in range(4)],
                  [1, 3, 5, 7])
    expected = energy * g * real_sh(moved, 3)
    np.testing.assert_allclose(coeffs[:, 0] / RADIANCE[0], expected, atol=2e-3 * energy)
    # band 1 is linear in direction, so the rotation moves it exactly (same texels, turned)
    still = project_to_sh(env, 1)
    r = euler_xyz_matrix(rot)
    xyz = lambda c: c[[3, 1, 2], 0]  # (x, y, z) order of band 1
    np.testing.assert_allclose(xyz(coeffs[:4]), r.T @ xyz(still), atol=1e-9)
    assert not np.allclose(xyz(coeffs[:4]), xyz(still), atol=1e-7)  # it did move


def test_quarter_turn_permutes_the_weights_of_a_symmetric_layout():
    layout = builtin_layout("rings64")
    axis = np.array([0.5, 0.1, 0.4]); axis /= np.linalg.norm(axis)
    env = env_from_function(64, _vmf(axis, 5.0))
    base = project_to_layout(env, layout).weights
    turned = project_to_layout(env, layout, (0.0, 0.0, math.pi / 2)).weights
    # the environment turns by R^T, so light k now gets what light R d_k had
    target = layout.directions @ euler_xyz_matrix((0, 0, math.pi / 2)).T
    perm = layout.nearest(target)
    assert len(set(perm)) == len(layout)
    np.testing.assert_allclose(turned, base[perm], rtol=1e-5, atol=1e-9)
    assert not np.allclose(turned, base, rtol=1e-2)


def test_rotation_about_x_tilts_the_environment():
    layout = builtin_layout("fib123")
    env = env_from_function(64, _vmf(np.array([0, 0, 1.0]), 30.0))  # a sun straight up
    w = project_to_layout(env, layout, (math.pi / 2, 0.0, 0.0)).weights[:, 0]
    # lookup R_x(90) d = +Z  <=>  d = R_x(90)^T Z = +Y: the sun now sits on +Y
    assert layout.directions[np.argmax(w)] @ np.array([0, 1.0, 0]) > 0.95


def test_floor_policy_drop_reports_and_nearest_keeps_energy():
    dome = builtin_layout("dome64")
    env = env_from_function(64, lambda d: np.where((d[..., 2] < -0.5)[..., None], 1.0, 0.0) * np.ones(3))
    dropped = project_to_layout(env, dome, missing="drop")
    assert dropped.dropped_fraction == pytest.approx(1.0)
    assert np.all(dropped.weights == 0)
    kept = project_to_layout(env, dome, missing="nearest")
    np.testing.assert_allclose(kept.weights.sum(axis=0), kept.total, rtol=1e-9)
    assert kept.dropped_fraction == 0
    low = dome.directions[kept.weights[:, 0] > 0, 2]
    assert low.max() < 0  # it went to the lowest lights
    with pytest.raises(ValidationError, match="missing"):
        project_to_layout(env, dome, missing="ignore")


def test_intensity_scales_weights():
    layout = make_layout("four", np.array([[1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1.0]]))
    env = env_from_function(32, _vmf(np.array([1.0, 0, 0]), 3.0))
    np.testing.assert_allclose(project_to_layout(env, layout, intensity=2.5).weights,
                               2.5 * project_to_layout(env, layout).weights, rtol=1e-12)


def test_load_rejects_nan_inf_black_and_non_latlong(tmp_path):
    good = env_from_function(16, lambda d: np.ones(d.shape))
    for name, pixels, message in [
        ("nan.exr", np.where(np.arange(32)[None, :, None] == 5, np.nan, good), "NaN or Inf"),
        ("inf.exr", np.where(np.arange(32)[None, :, None] == 7, np.inf, good), "NaN or Inf"),
        ("black.exr", np.zeros_like(good), "black everywhere"),
        ("square.exr", good[:, :16], "twice as wide"),
    ]:
        path = tmp_path / name
        write_rgba(path, pixels.astype(np.float32), np.ones(pixels.shape[:2], np.float32))
        with pytest.raises(ValidationError, match=message) as err:
            load_environment(path)
        assert name in str(err.value)
    with pytest.raises(RelitIOError, match="not found"):
        load_environment(tmp_path / "missing.exr")


def test_loaded_file_projects_like_the_array(tmp_path):
    env = env_from_function(32, _vmf(np.array([0, 1.0, 0]), 4.0))
    path = tmp_path / "env.exr"
    write_rgba(path, env, np.ones(env.shape[:2], np.float32))
    loaded = load_environment(path)
    np.testing.assert_allclose(loaded, env.astype(np.float16).astype(np.float32))
