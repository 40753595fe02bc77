import math

import numpy as np
import pytest

from core.errors import ValidationError
from core.lighting.camera import (blender_c2w_to_opencv_w2c, camera_to_world_directions, front_camera_c2w,
                                  intrinsics_from_fov, look_at_c2w, opencv_w2c_to_blender_c2w, project_points,
                                  world_to_camera_directions)
from core.lighting.latlong import (direction_to_uv, pixel_directions, pixel_solid_angles, row_solid_angles,
                                   uv_to_direction)
from core.lighting.rotation import euler_xyz_matrix, lookup_directions, parse_rotation, world_directions
from tests.conftest import run_python


# --- lat-long (Cycles' convention) ---------------------------------------------------------

def test_latlong_matches_cycles_convention():
    np.testing.assert_allclose(direction_to_uv(np.array([1.0, 0, 0])), [0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(direction_to_uv(np.array([0, 1.0, 0])), [0.25, 0.5], atol=1e-12)
    assert direction_to_uv(np.array([0, 0, 1.0]))[1] == pytest.approx(1.0)
    top = pixel_directions(8, 16)[0]
    assert np.all(top[:, 2] > 0.98)  # row 0, as OpenImageIO reads it, is straight up


def test_latlong_round_trip(rng):
    d = rng.normal(size=(100, 3)); d /= np.linalg.norm(d, axis=1, keepdims=True)
    np.testing.assert_allclose(uv_to_direction(direction_to_uv(d)), d, atol=1e-12)
    uv = rng.uniform(0.01, 0.99, size=(100, 2))
    np.testing.assert_allclose(direction_to_uv(uv_to_direction(uv)), uv, atol=1e-12)


def test_row_solid_angles_are_exact():
    h, w = 37, 74
    rows = row_solid_angles(h, w)
    assert rows.sum() * w == pytest.approx(4 * math.pi, abs=1e-12)
    # each row's band, integrated numerically: int sin(theta) dtheta dphi
    theta = np.linspace(0, math.pi, h + 1)
    for i in (0, 10, 36):
        t = np.linspace(theta[i], theta[i + 1], 2001)
        band = np.trapz(np.sin(t), t) * 2 * math.pi / w
        assert rows[i] == pytest.approx(band, rel=1e-6)
    assert pixel_solid_angles(h, w).shape == (h, w)


# --- rotation as Blender's Mapping node ----------------------------------------------------

def test_euler_matrix_matches_blender_mathutils():
    angles = [(0.3, -1.1, 2.0), (1.0, 0.0, 0.0), (0.0, 0.0, math.pi / 2)]
    out = run_python(
        "import bpy, mathutils, json\n"
        f"print(json.dumps([[list(r) for r in mathutils.Euler(a, 'XYZ').to_matrix()] for a in {angles!r}]))"
    )
    assert out.returncode == 0, out.stderr
    import json
    ref = json.loads(out.stdout.strip().splitlines()[-1])
    for a, m in zip(angles, ref):
        np.testing.assert_allclose(euler_xyz_matrix(a), m, atol=1e-6)


def test_rotation_turns_the_environment_the_opposite_way():
    # a texel looking along +X; the Mapping node rotates the lookup vector by +90 deg about Z,
    # so that texel appears in the world at R^T (+X) = -Y
    r = (0.0, 0.0, math.pi / 2)
    np.testing.assert_allclose(world_directions(np.array([1.0, 0, 0]), r), [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(lookup_directions(np.array([0, -1.0, 0]), r), [1, 0, 0], atol=1e-12)


def test_parse_rotation():
    assert parse_rotation("30") == pytest.approx((0, 0, math.radians(30)))
    assert parse_rotation("10, 20,30") == pytest.approx(tuple(math.radians(v) for v in (10, 20, 30)))
    for bad in ("", "a", "1,2", "nan"):
        with pytest.raises(ValidationError, match="--rotation"):
            parse_rotation(bad)


# --- cameras --------------------------------------------------------------------------------

def test_opencv_conversion_round_trip_and_axes():
    c2w = look_at_c2w(np.array([1.0, -3.0, 0.5]), np.zeros(3))
    w2c = blender_c2w_to_opencv_w2c(c2w)
    np.testing.assert_allclose(opencv_w2c_to_blender_c2w(w2c), c2w, atol=1e-12)
    # a point 2 m in front of the Blender camera (its -Z) is at OpenCV depth +2
    front = c2w @ np.array([0, 0, -2.0, 1])
    assert (w2c @ front)[2] == pytest.approx(2.0)
    # Blender camera +Y (up) is OpenCV -Y (image rows grow downwards)
    up = c2w @ np.array([0, 1.0, -2.0, 1])
    assert (w2c @ up)[1] == pytest.approx(-1.0)


def test_projection_pixel_convention():
    K = intrinsics_from_fov(64, 48, math.radians(60))
    c2w = front_camera_c2w(2.0)  # at -Y looking along +Y, Z up
    pts = np.array([[0, 0, 0], [0.1, 0, 0], [0, 0, 0.1]], dtype=float)
    xy, z = project_points(pts, K, c2w)
    np.testing.assert_allclose(xy[0], [32, 24], atol=1e-9)  # the image centre (top-left pixel-corner origin)
    assert xy[1, 0] > 32 and xy[1, 1] == pytest.approx(24)   # world +X is to the right
    assert xy[2, 1] < 24                                     # world +Z is up, i.e. smaller row
    np.testing.assert_allclose(z, 2.0)
    assert xy[1, 0] - 32 == pytest.approx(K[0, 0] * 0.1 / 2.0)


def test_camera_frame_light_directions(rng):
    c2w = look_at_c2w(np.array([2.0, 1.0, 0.3]), np.zeros(3))
    eye = c2w[:3, 3]
    behind = eye / np.linalg.norm(eye)  # from the subject at the origin towards (and past) the camera
    np.testing.assert_allclose(world_to_camera_directions(behind, c2w), [0, 0, 1], atol=1e-12)
    d = rng.normal(size=(10, 3))
    np.testing.assert_allclose(camera_to_world_directions(world_to_camera_directions(d, c2w), c2w), d, atol=1e-12)
    scaled = c2w.copy()
    scaled[:3, :3] *= 1.2  # a scaled camera object in a job JSON: the same directions, still unit length
    np.testing.assert_allclose(world_to_camera_directions(d, scaled), world_to_camera_directions(d, c2w), atol=1e-12)
    np.testing.assert_allclose(camera_to_world_directions(d, scaled), camera_to_world_directions(d, c2w), atol=1e-12)


def test_opencv_w2c_agrees_with_gsplat_projection():
    torch = pytest.importorskip("torch")
    from gsplat.cuda._torch_impl import _persp_proj, _world_to_cam

    c2w = look_at_c2w(np.array([0.5, -2.0, 0.4]), np.array([0.0, 0.0, 0.1]))
    K = intrinsics_from_fov(64, 64, math.radians(50))
    pts = np.array([[0.0, 0.0, 0.1], [0.2, 0.1, -0.1], [-0.1, 0.3, 0.2]])
    means = torch.tensor(pts, dtype=torch.float32)
    viewmat = torch.tensor(blender_c2w_to_opencv_w2c(c2w), dtype=torch.float32)[None]
    covars = torch.eye(3).expand(3, 3, 3) * 1e-4
    means_c, covars_c = _world_to_cam(means, covars, viewmat)
    means2d, _ = _persp_proj(means_c, covars_c, torch.tensor(K, dtype=torch.float32)[None], 64, 64)
    ours, _ = project_points(pts, K, c2w)
    np.testing.assert_allclose(means2d[0].numpy(), ours, atol=1e-3)
