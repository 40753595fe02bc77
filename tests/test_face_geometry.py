"""Face geometry from a photo (core.portrait.face_geometry): the rasteriser against an analytic
sphere, SH irradiance against the exact result, the source-lighting fit, and MediaPipe's mesh on a
real photo."""

import math

import numpy as np

from core.lighting.hdri import project_to_sh
from core.portrait.face_geometry import (camera_points, face_landmarks, face_normals, face_triangles, fit_lighting,
                                         plate_lighting, rasterise_normals, sh_irradiance, shading_relight)
from tests.conftest import env_from_function


def _sphere_mesh(centre: tuple[float, float], radius: float, n: int = 40):
    """A front hemisphere as a triangulated grid, in the camera frame (image x, -y, depth z)."""
    u = np.linspace(-0.98, 0.98, n)
    gx, gy = np.meshgrid(u, u)
    keep = gx ** 2 + gy ** 2 < 0.98 ** 2
    idx = -np.ones(gx.shape, int)
    idx[keep] = np.arange(keep.sum())
    pts = np.stack([centre[0] + radius * gx[keep], -(centre[1] + radius * gy[keep]),
                    radius * np.sqrt(1 - gx[keep] ** 2 - gy[keep] ** 2)], -1)
    tris = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = idx[i, j], idx[i, j + 1], idx[i + 1, j], idx[i + 1, j + 1]
            if min(a, b, c, d) >= 0:
                tris += [[a, b, d], [a, d, c]]
    return pts, np.array(tris)


def test_rasterised_normals_match_a_sphere():
    pts, tris = _sphere_mesh((32.0, 30.0), 20.0)
    normals, covered = rasterise_normals(pts, tris, 64, 64)
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    dx, dy = (xx - 32.0) / 20.0, (yy - 30.0) / 20.0
    inner = dx ** 2 + dy ** 2 < 0.8 ** 2
    assert covered[inner].all() and not covered[dx ** 2 + dy ** 2 > 1.05].any()
    truth = np.stack([dx, -dy, np.sqrt(np.clip(1 - dx ** 2 - dy ** 2, 0, 1))], -1)
    angle = np.degrees(np.arccos(np.clip((normals * truth).sum(-1), -1, 1)))
    assert angle[inner].mean() < 1.0 and angle[inner].max() < 5.0


def test_sh_irradiance_is_exact_for_a_linear_environment_and_the_fit_recovers_it():
    # radiance 1 + z: bands 0 and 1 only, so order-2 SH irradiance is exact: E(n) = pi + 2 pi / 3 n_z
    env = env_from_function(64, lambda d: (1.0 + d[..., 2:3]) * np.ones(3))
    coeffs = project_to_sh(env, 2)
    rng = np.random.default_rng(0)
    n = rng.normal(size=(200, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    e = sh_irradiance(n, coeffs)
    np.testing.assert_allclose(e, (math.pi + 2 * math.pi / 3 * n[:, 2:3]) * np.ones(3), rtol=2e-3, atol=2e-3)
    albedo = np.array([0.6, 0.4, 0.3])
    np.testing.assert_allclose(fit_lighting(albedo * e, n), coeffs * albedo, rtol=1e-6, atol=1e-9)


def test_mediapipe_mesh_on_a_real_photo_faces_the_camera():
    from skimage import data

    u8 = data.astronaut()
    lm = face_landmarks(u8)
    assert lm is not None and lm.shape == (468, 3)
    tris = face_triangles()
    assert len(tris) > 800 and tris.max() == 467
    normals, covered = rasterise_normals(camera_points(lm), tris, *u8.shape[:2])
    same_n, same_c = face_normals(u8)  # the one-call form gives the same mesh
    np.testing.assert_array_equal(same_c, covered)
    np.testing.assert_allclose(same_n, normals)
    tip = lm[4, :2].astype(int)  # the nose tip looks at the camera
    assert covered[tip[1], tip[0]] and normals[tip[1], tip[0], 2] > 0.8
    for side, point in ((-1, lm[234]), (1, lm[454])):  # the face's outline at each side turns away
        x, y = point[:2].astype(int)
        x -= side * 3
        assert covered[y, x] and side * normals[y, x, 0] > 0.3
    # the shading estimate with the plate's own lighting (unit mean radiance) as target gives the plate back
    plate = (u8 / 255.0) ** 2.2
    target = plate_lighting(plate[covered], normals[covered])
    np.testing.assert_allclose(target[0], project_to_sh(np.ones((32, 64, 3)), 2)[0], rtol=1e-3)  # a uniform 1's DC
    np.testing.assert_allclose(target / fit_lighting(plate[covered], normals[covered]),
                               np.broadcast_to(target[:1] / fit_lighting(plate[covered], normals[covered])[:1],
                                               target.shape), rtol=1e-9)  # the fit's shape, rescaled per channel
    e = sh_irradiance(normals[covered], target)
    ok = np.ones(covered.shape, bool)
    ok[covered] = (e > 0.05 * np.median(e, axis=0)).all(axis=1)  # where the fit is not floored
    assert ok.mean() > 0.999
    np.testing.assert_allclose(shading_relight(plate, normals, covered, target)[ok], plate[ok], rtol=1e-4, atol=1e-6)
    # a lamp from the camera's left brightens the face's left half against its right, and mirrored
    from core.lighting.random_lighting import lamp_map

    nose_x = int(lm[4, 0])
    for side in (-1.0, 1.0):
        d = np.array([side, 0.0, 0.5]) / math.sqrt(1.25)
        lamp = project_to_sh(lamp_map(32, d, math.radians(15), np.ones(3)), 2)
        out = shading_relight(plate, normals, covered, lamp).mean(axis=-1) / np.maximum(plate.mean(axis=-1), 1e-6)
        left = out[:, :nose_x][covered[:, :nose_x]].mean()
        right = out[:, nose_x:][covered[:, nose_x:]].mean()
        assert (left / right if side < 0 else right / left) > 1.5
