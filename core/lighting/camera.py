"""Camera conventions.

Manifests store ``c2w`` (4x4) in the Blender/OpenGL camera convention (+X
right, +Y up, the camera looks along -Z) and intrinsics ``K`` in pixels with
the origin at the top-left pixel corner and +y down. gsplat wants an OpenCV
world-to-camera matrix (+X right, +Y down, +Z forward). Light directions for
the model are in the Blender camera frame: a light straight behind the camera
has direction (0, 0, 1).
"""

from __future__ import annotations

import math

import numpy as np

_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def blender_c2w_to_opencv_w2c(c2w: np.ndarray,  # [4, 4] Blender camera-to-world
                              ) -> np.ndarray:   # [4, 4] OpenCV world-to-camera
    return np.linalg.inv(np.asarray(c2w, dtype=np.float64) @ _GL_TO_CV)


def opencv_w2c_to_blender_c2w(w2c: np.ndarray,  # [4, 4] OpenCV world-to-camera
                              ) -> np.ndarray:   # [4, 4] Blender camera-to-world
    return np.linalg.inv(np.asarray(w2c, dtype=np.float64)) @ _GL_TO_CV


def _rotation(c2w: np.ndarray) -> np.ndarray:  # [3, 3]
    """The rotation of a camera-to-world matrix, without the scale a scaled camera object carries
    (each axis column made unit length), so directions stay unit vectors."""
    r = np.asarray(c2w, dtype=np.float64)[:3, :3]
    return r / np.linalg.norm(r, axis=0, keepdims=True)


def world_to_camera_directions(dirs: np.ndarray,  # [..., 3] world directions
                               c2w: np.ndarray,   # [4, 4] Blender camera-to-world
                               ) -> np.ndarray:   # [..., 3] Blender camera-frame directions
    r = _rotation(c2w)
    return np.asarray(dirs, dtype=np.float64) @ r  # R^T d for row vectors


def camera_to_world_directions(dirs: np.ndarray,  # [..., 3] camera-frame directions
                               c2w: np.ndarray,   # [4, 4]
                               ) -> np.ndarray:   # [..., 3] world directions
    r = _rotation(c2w)
    return np.asarray(dirs, dtype=np.float64) @ r.T


def project_points(points: np.ndarray,  # [N, 3] world points
                   K: np.ndarray,       # [3, 3] intrinsics (pixels, top-left origin, +y down)
                   c2w: np.ndarray,     # [4, 4] Blender camera-to-world
                   ) -> tuple[np.ndarray, np.ndarray]:  # ([N, 2] pixel xy, [N] depth along view)
    w2c = blender_c2w_to_opencv_w2c(c2w)
    p = np.asarray(points, dtype=np.float64) @ w2c[:3, :3].T + w2c[:3, 3]
    z = p[:, 2]
    uvw = p @ np.asarray(K, dtype=np.float64).T
    return uvw[:, :2] / z[:, None], z


def intrinsics_from_fov(width: int, height: int, fov_x: float) -> np.ndarray:  # [3, 3]
    """Pinhole K with square pixels and horizontal field of view fov_x (radians), centred."""
    f = 0.5 * width / math.tan(0.5 * fov_x)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def look_at_c2w(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:  # [4, 4]
    """Blender camera-to-world of a camera at ``eye`` looking at ``target``."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("look_at: view direction is parallel to the up vector; choose another up")
    right /= np.linalg.norm(right)
    true_up = np.cross(right, forward)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, -forward, eye
    return c2w


def front_camera_c2w(distance: float = 1.0) -> np.ndarray:  # [4, 4]
    """Blender's front view: a camera on -Y looking along +Y at the origin, Z up."""
    return look_at_c2w(np.array([0.0, -distance, 0.0]), np.zeros(3))
