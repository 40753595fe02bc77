"""Face geometry from a single photo: MediaPipe's 468 face landmarks as a mesh (the triangles of
its tessellation graph), the mesh's normals rasterised in the camera frame, and the physically
based shading estimate they give (the baseline a learned relighting must beat).

Computed the same way on synthetic renders and real plates. The region is the face only
(forehead to chin): no hair, ears or neck.

Camera frame: Blender's (+x right, +y up, +z towards the viewer); MediaPipe's landmarks are image
x (right), y (down) in pixels and a relative depth z in the same units, smaller nearer the camera.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..io.framing import Framing
from ..lighting.sh import real_sh
from . import mediapipe

# Lambert's cosine lobe in SH (Ramamoorthi & Hanrahan): irradiance = sum_l A_l L_lm Y_lm
LAMBERT_BANDS = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)
_LAMBERT9 = np.array([LAMBERT_BANDS[0]] + [LAMBERT_BANDS[1]] * 3 + [LAMBERT_BANDS[2]] * 5)  # per coefficient


def face_landmarks(rgb8: np.ndarray) -> np.ndarray | None:  # [H, W, 3] uint8 -> [468, 3] or None
    """The face's landmarks in pixels (x right, y down, z depth, smaller nearer), or None."""
    mp = mediapipe()

    h, w = rgb8.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False) as fm:
        found = fm.process(rgb8).multi_face_landmarks
    if not found:
        return None
    return np.array([(p.x * w, p.y * h, p.z * w) for p in found[0].landmark[:468]], dtype=np.float64)


@functools.lru_cache(maxsize=1)
def face_triangles() -> np.ndarray:  # [T, 3] int, oriented to face the camera
    """Triangles of MediaPipe's face tessellation: the 3-cliques of its edge graph."""
    mp = mediapipe()

    edges = {tuple(sorted(e)) for e in mp.solutions.face_mesh.FACEMESH_TESSELATION}
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    tris = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    return np.array(sorted(tris), dtype=np.int64)


def camera_points(landmarks: np.ndarray) -> np.ndarray:  # [N, 3] pixels -> camera frame (same units)
    return np.stack([landmarks[:, 0], -landmarks[:, 1], -landmarks[:, 2]], axis=-1)


def vertex_normals(points: np.ndarray, tris: np.ndarray) -> np.ndarray:  # [N, 3] unit, facing +z
    """Area-weighted vertex normals, every face turned towards the camera (+z)."""
    n = np.cross(points[tris[:, 1]] - points[tris[:, 0]], points[tris[:, 2]] - points[tris[:, 0]])
    n *= np.where(n[:, 2:3] < 0, -1.0, 1.0)
    out = np.zeros_like(points)
    for k in range(3):
        np.add.at(out, tris[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def rasterise_normals(points: np.ndarray,    # [N, 3] camera frame; x, -y are pixel coordinates
                      tris: np.ndarray,      # [T, 3]
                      height: int, width: int,
                      ) -> tuple[np.ndarray, np.ndarray]:  # (normals [H, W, 3], covered [H, W] bool)
    """Smooth normals at pixel centres (barycentric interpolation of vertex normals), nearest
    surface wins (largest z)."""
    normals = vertex_normals(points, tris)
    out = np.zeros((height, width, 3))
    depth = np.full((height, width), -np.inf)
    px, py = points[:, 0], -points[:, 1]  # image coordinates (y down)
    for t in tris:
        x, y = px[t], py[t]
        x0, x1 = max(0, int(np.floor(x.min() - 0.5))), min(width - 1, int(np.ceil(x.max() - 0.5)))
        y0, y1 = max(0, int(np.floor(y.min() - 0.5))), min(height - 1, int(np.ceil(y.max() - 0.5)))
        if x0 > x1 or y0 > y1:
            continue
        area = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
        if abs(area) < 1e-12:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1) + 0.5, np.arange(y0, y1 + 1) + 0.5)
        w1 = ((gx - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (gy - y[0])) / area
        w2 = ((x[1] - x[0]) * (gy - y[0]) - (gx - x[0]) * (y[1] - y[0])) / area
        w0 = 1.0 - w1 - w2
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        if not inside.any():
            continue
        z = w0 * points[t[0], 2] + w1 * points[t[1], 2] + w2 * points[t[2], 2]
        region = depth[y0:y1 + 1, x0:x1 + 1]
        win = inside & (z > region)
        region[win] = z[win]
        n = w0[..., None] * normals[t[0]] + w1[..., None] * normals[t[1]] + w2[..., None] * normals[t[2]]
        out[y0:y1 + 1, x0:x1 + 1][win] = n[win]
    covered = np.isfinite(depth)
    out[covered] /= np.linalg.norm(out[covered], axis=-1, keepdims=True)
    return out, covered


def face_normals(rgb8: np.ndarray,  # [H, W, 3] uint8 display-encoded photo or render
                 ) -> tuple[np.ndarray, np.ndarray] | None:  # (normals [H, W, 3], covered [H, W] bool)
    """The face mesh MediaPipe fits to ``rgb8``, its smooth normals rasterised at the image's size;
    None when no face is found."""
    landmarks = face_landmarks(rgb8)
    if landmarks is None:
        return None
    points, tris = camera_points(landmarks), face_triangles()
    return rasterise_normals(points, tris, *rgb8.shape[:2])


# MediaPipe's landmarks against the exact ones on 66 flat-lit views of the 64-px synthetic people where it
# found the face (median 1.2 px off; docs/portrait.md section 16), as fractions of the face's size R (the
# landmarks' mean distance from their centre, about 6 px there): training jitters the exact landmarks so
# a model sees geometry as a plate gives it
JITTER_OFFSET = 0.12  # the whole face's shift, std per axis, x R
JITTER_POINT = 0.10   # each landmark's own shift, std per axis, x R
JITTER_SCALE = 0.07   # the face's size, relative std
JITTER_DEPTH = 0.30   # the depths' scale, relative std


def jittered_landmarks(rng: np.random.Generator, landmarks: np.ndarray) -> np.ndarray:  # [468, 3] -> [468, 3]
    """Exact landmarks moved as MediaPipe's measured error moves them (the JITTER_* constants)."""
    xy = landmarks[:, :2]
    centre = xy.mean(0)
    radius = float(np.linalg.norm(xy - centre, axis=1).mean())
    scale = 1.0 + JITTER_SCALE * rng.standard_normal()
    out = landmarks.copy()
    out[:, :2] = (centre + (xy - centre) * scale + radius * JITTER_OFFSET * rng.standard_normal(2)
                  + radius * JITTER_POINT * rng.standard_normal(xy.shape))
    out[:, 2] = landmarks[:, 2] * scale * max(1.0 + JITTER_DEPTH * rng.standard_normal(), 0.2)
    return out


def framed_normals(landmarks: np.ndarray,  # [468, 3] on the plate (face_landmarks' format)
                   framing: Framing,       # where the model's square lies on the plate
                   ) -> np.ndarray:        # [model, model, 3] float32 camera-frame normals, zero off the face
    """The face mesh's normals as the model sees the plate: the landmarks carried into its framed square
    (the same for a synthetic view's exact landmarks and a real plate's detected ones)."""
    s = framing.model / framing.size
    points = np.stack([(landmarks[:, 0] - framing.x0) * s, (landmarks[:, 1] - framing.y0) * s,
                       landmarks[:, 2] * s], axis=1)
    normals, covered = rasterise_normals(camera_points(points), face_triangles(), framing.model, framing.model)
    return np.where(covered[..., None], normals, 0.0).astype(np.float32)


FACE_MESH_SIDE = 1024  # px: the model's square is shrunk to at most this before FaceMesh (which works at 192)


def plate_landmarks(rgb: np.ndarray,       # [H, W, 3] scene-linear plate
                    framing: Framing,      # where the model's square lies on it
                    space: str = "lin_rec709",  # its working space
                    ) -> np.ndarray | None:  # [468, 3] in plate pixels (face_landmarks' format), or None
    """The landmarks of the face MediaPipe finds in the model's square of a plate (displayed as the
    detectors see it, as core.portrait.matte.plate_face does).

    FaceMesh looks in the square only: its detector is short-range (a face filling much of the
    image), so a face framed small on a big plate is found in its square and missed on the plate."""
    import cv2

    from ..io.colour import convert
    from ..io.framing import crop_box
    from .matte import display_rgb8

    box = crop_box(rgb.astype(np.float32, copy=False), framing)
    side = min(framing.size, FACE_MESH_SIDE)
    if side < framing.size:
        box = cv2.resize(box, (side, side), interpolation=cv2.INTER_AREA)
    found = face_landmarks(display_rgb8(box if space == "lin_rec709" else convert(box, space, "lin_rec709")))
    if found is None:
        return None
    return found * (framing.size / side) + np.array([framing.x0, framing.y0, 0.0])


def plate_normals(rgb: np.ndarray,       # [H, W, 3] scene-linear plate
                  framing: Framing,      # where the model's square lies on it
                  space: str = "lin_rec709",  # its working space
                  ) -> np.ndarray | None:  # [model, model, 3] float32, or None: no face found
    """The normals of the face MediaPipe finds in the model's square of a plate, framed for the model."""
    found = plate_landmarks(rgb, framing, space)
    return None if found is None else framed_normals(found, framing)


def sh_irradiance(normals: np.ndarray,  # [..., 3] unit
                  coeffs: np.ndarray,   # [9, 3] order-2 SH of the radiance (lighting.hdri.project_to_sh)
                  ) -> np.ndarray:      # [..., 3] irradiance
    return real_sh(normals, 2) @ (coeffs * _LAMBERT9[:, None])


def fit_lighting(rgb: np.ndarray,      # [M, 3] pixel values on the face
                 normals: np.ndarray,  # [M, 3] their normals
                 ) -> np.ndarray:      # [9, 3] SH radiance coefficients, up to the albedo's scale
    """The order-2 SH lighting that best explains ``rgb`` as a constant albedo times irradiance."""
    basis = real_sh(normals, 2) * _LAMBERT9
    coeffs, *_ = np.linalg.lstsq(basis, rgb, rcond=None)
    return coeffs


UNIT_RADIANCE_DC = 2.0 * math.sqrt(math.pi)  # the SH DC coefficient of a uniform radiance of 1 (int Y00 dw)


def plate_lighting(rgb: np.ndarray,      # [M, 3] pixel values on the face
                   normals: np.ndarray,  # [M, 3] their normals
                   ) -> np.ndarray:      # [9, 3] SH radiance coefficients of the plate's light
    """The plate's own lighting under the portrait convention (a plate is lit by unit mean radiance,
    as the training pairs are): the fitted lighting's scale per channel is the albedo's, so dividing
    its DC out to that of a uniform white radiance of 1 leaves the light (assumed white on average)."""
    fitted = fit_lighting(rgb, normals)
    return fitted * (UNIT_RADIANCE_DC / np.maximum(fitted[0], 1e-12))


def shading_relight(plate: np.ndarray,    # [H, W, 3] scene-linear
                    normals: np.ndarray,  # [H, W, 3] camera frame
                    face: np.ndarray,     # [H, W] bool: where the normals are known
                    target: np.ndarray,   # [9, 3] SH radiance of the target lighting (camera frame)
                    ) -> np.ndarray:      # [H, W, 3]
    """The physically based estimate: on the face, the plate times target / source irradiance (the
    source lighting fitted to the plate with a constant albedo, at unit mean radiance:
    :func:`plate_lighting`); elsewhere the face's median ratio, so the rest of the subject follows
    its overall change."""
    source = plate_lighting(plate[face], normals[face])
    e_source = sh_irradiance(normals[face], source)
    e_target = sh_irradiance(normals[face], target)
    floor = 0.05 * np.maximum(np.median(e_source, axis=0), 1e-12)
    ratio = np.maximum(e_target, 0.0) / np.maximum(e_source, floor)
    out = plate * np.median(ratio, axis=0)
    out[face] = plate[face] * ratio
    return out.astype(np.float32)
