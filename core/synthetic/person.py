"""Synthetic people for the portrait model: a face with its own identity, a whole head, ears, hair,
neck, shoulders and clothes, as numpy geometry with a material per triangle.

Pure numpy (testable without Blender); ``scene.py`` turns a :class:`~.subject.Subject` into Blender
objects. Units are metres, +Z up, the person looks along -Y, the head's anchor is near the origin.

Identity comes from a seed: global head proportions, local feature proportions around MediaPipe
landmarks (nose, jaw, chin, cheeks, brows, lips, eye spacing), smooth shape noise, a Fitzpatrick
skin type (I-VI) with its subsurface and specular, eye colour, a hair style and colour, a build and
clothes. Parts overlap as closed or hidden surfaces (no booleans): the renderer sees their union.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .face_mesh import FaceMesh, load_face_mesh
from .subject import LEFT_EYE, RIGHT_EYE, Subject, SubjectLook, _close_back, _smooth_noise, _sphere, \
    _vertex_normals, mediapipe_to_world

SKIN, EYE, HAIR, CLOTH, OPENING = range(5)  # material indices (scene.py builds them in this order)

# MediaPipe's landmark sets (its face_mesh_connections) on the canonical mesh: lips and brows are
# painted on the skin from them (per-vertex weights the renderer interpolates), the lid openings are
# cut between the eye rings: the features a face detector and a viewer look for (measured: on plain
# skin MediaPipe found 1 of 12 flat-lit people at 128-256 px)
LIP_LANDMARKS = frozenset((0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185,
                           191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405,
                           409, 415))
BROW_LANDMARKS = frozenset((46, 52, 53, 55, 63, 65, 66, 70, 105, 107, 276, 282, 283, 285, 293, 295, 296, 300, 334,
                            336))

# Fitzpatrick skin types I-VI: linear albedo, subsurface weight, subsurface radius scale (m)
FITZPATRICK = (
    ((0.70, 0.53, 0.45), 0.30, 0.0060),
    ((0.60, 0.43, 0.34), 0.28, 0.0055),
    ((0.47, 0.32, 0.23), 0.25, 0.0050),
    ((0.34, 0.21, 0.14), 0.22, 0.0045),
    ((0.20, 0.12, 0.075), 0.20, 0.0040),
    ((0.10, 0.06, 0.04), 0.18, 0.0035),
)
HAIR_COLOURS = {  # linear albedo
    "black": (0.018, 0.014, 0.012), "dark_brown": (0.045, 0.028, 0.018), "brown": (0.11, 0.065, 0.035),
    "auburn": (0.20, 0.065, 0.028), "blonde": (0.45, 0.31, 0.17), "grey": (0.33, 0.32, 0.31),
}
# style -> (thickness m, hairline lift at the sides in degrees, curtain length m)
HAIR_STYLES = {"buzz": (0.003, 8.0, 0.0), "short": (0.012, 6.0, 0.0), "bob": (0.02, -30.0, 0.10),
               "long": (0.02, -30.0, 0.30), "bald": (0.0, 0.0, 0.0)}

# MediaPipe landmarks used for feature proportions
NOSE_TIP, CHIN, FOREHEAD = 4, 152, 10
CHEEKS, BROW_RIDGE, LIPS = (50, 280), (105, 334), (13, 14)
EAR_ROOTS = (234, 454)  # the face outline beside each ear


@dataclass(frozen=True)
class PersonLook(SubjectLook):
    fitzpatrick: int = 3                                   # skin type I-VI (1-6)
    subsurface_radius: float = 0.005                       # subsurface scale (m)
    specular: float = 0.5                                  # Principled specular IOR level
    hair_style: str = "short"                              # a key of HAIR_STYLES
    hair_colour: tuple[float, float, float] = (0.05, 0.03, 0.02)  # linear hair albedo
    cloth_colour: tuple[float, float, float] = (0.2, 0.2, 0.25)   # linear cloth albedo
    cloth_roughness: float = 0.8                           # cloth roughness
    cloth_sheen: float = 0.5                               # cloth sheen weight


def _falloff(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:  # [N]
    return np.exp(-np.sum((points - centre) ** 2, axis=-1) / (2 * radius ** 2))


def identity_face(v: np.ndarray, tri: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # [468, 3]
    """The canonical face ``v`` (metres) reshaped into one identity."""
    v = v * np.array([rng.uniform(0.90, 1.10), rng.uniform(0.92, 1.08), rng.uniform(0.92, 1.08)])
    lm = v.copy()
    normals = _vertex_normals(v, tri)
    along = lambda centre, radius, amount: normals * (amount * _falloff(v, centre, radius))[:, None]  # noqa: E731
    v = v + along(lm[NOSE_TIP], 0.02, rng.uniform(-0.006, 0.007))                          # nose projection
    v[:, 0] += np.sign(v[:, 0]) * _falloff(v, lm[NOSE_TIP] + [0, 0.01, 0.005], 0.015) * rng.uniform(-0.004, 0.005)
    mouth_z = 0.5 * (lm[LIPS[0], 2] + lm[LIPS[1], 2])
    v[:, 0] *= 1.0 + rng.uniform(-0.10, 0.10) * np.clip((mouth_z - v[:, 2]) / 0.05, 0.0, 1.0)  # jaw width
    v += _falloff(v, lm[CHIN], 0.025)[:, None] * np.array([0.0, rng.uniform(-0.006, 0.006),
                                                            rng.uniform(-0.009, 0.006)])     # chin
    for i in CHEEKS:
        v = v + along(lm[i], 0.022, rng.uniform(-0.004, 0.006))
    for i in BROW_RIDGE:
        v = v + along(lm[i], 0.018, rng.uniform(-0.001, 0.004))
    v = v + along(0.5 * (lm[LIPS[0]] + lm[LIPS[1]]), 0.012, rng.uniform(-0.002, 0.004))
    spacing = rng.uniform(-0.003, 0.003)
    for ring, side in ((RIGHT_EYE, -1.0), (LEFT_EYE, 1.0)):
        c = lm[ring].mean(0)
        v[:, 0] += side * spacing * _falloff(v, c, 0.015)
    return v + normals * (0.003 * _smooth_noise(v, rng, scale=0.08))[:, None]


def _loft(rings: list[np.ndarray], cap_first: bool = False, cap_last: bool = False,
          ) -> tuple[np.ndarray, np.ndarray]:  # ([V, 3], [T, 3])
    """Triangles joining closed rings of equal length in order; optional fans closing the ends."""
    n = len(rings[0])
    verts = [np.asarray(r, dtype=np.float64) for r in rings]
    j = np.arange(n)
    faces = []
    for k in range(len(rings) - 1):
        a, b = k * n + j, (k + 1) * n + j
        a1, b1 = k * n + (j + 1) % n, (k + 1) * n + (j + 1) % n
        faces += [np.stack([a, a1, b1], -1), np.stack([a, b1, b], -1)]
    count = len(rings) * n
    for cap, ring_index, flip in ((cap_first, 0, True), (cap_last, len(rings) - 1, False)):
        if cap:
            verts.append(rings[ring_index].mean(0)[None])
            base = ring_index * n
            fan = np.stack([base + j, base + (j + 1) % n, np.full(n, count)], -1)
            faces.append(fan[:, ::-1] if flip else fan)
            count += 1
    return np.concatenate(verts), np.concatenate(faces).astype(np.int32)


def _superellipse(n: int, a: float, b: float, power: float) -> np.ndarray:  # [n, 2]
    t = 2 * math.pi * np.arange(n) / n
    c, s = np.cos(t), np.sin(t)
    return np.stack([a * np.sign(c) * np.abs(c) ** (2 / power), b * np.sign(s) * np.abs(s) ** (2 / power)], -1)


def _torso(rng: np.random.Generator, neck_base: np.ndarray, n: int = 48):
    """Shoulders and chest: a super-elliptic trunk whose top slopes from the neck to the shoulders.
    Returns (vertices, triangles, is_collar [T]: triangles of the open collar)."""
    half_width, half_depth = rng.uniform(0.17, 0.22), rng.uniform(0.10, 0.125)
    outline = _superellipse(n, half_width, half_depth, 3.0)
    centre = neck_base[:2] + np.array([0.0, 0.01])
    top, slope, bottom = neck_base[2], rng.uniform(0.04, 0.07), neck_base[2] - 0.45
    rings = []
    for rho in np.linspace(0.15, 1.0, 8):  # the top, from the collar to the shoulder's edge
        z = top - slope * rho ** 1.5 - 0.03 * max(0.0, (rho - 0.8) / 0.2) ** 2
        rings.append(np.concatenate([centre + rho * outline, np.full((n, 1), z)], 1))
    edge_z = rings[-1][0, 2]
    for z in np.linspace(edge_z - 0.03, bottom, 6):  # the sides
        rings.append(np.concatenate([centre + outline * 1.02, np.full((n, 1), z)], 1))
    v, t = _loft(rings, cap_first=True, cap_last=True)
    collar = np.zeros(len(t), bool)
    collar[:2 * n] = rng.random() < 0.6  # an open collar: the innermost ring of the top is skin
    return v, t, collar


def _ears(face: np.ndarray, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    size = rng.uniform(0.9, 1.15)
    flare = math.radians(rng.uniform(10, 30))
    out = []
    for root, side in zip(EAR_ROOTS, (-1.0, 1.0)):
        base = face[root] + np.array([side * 0.002, 0.018, 0.004])
        v, t = _sphere(np.zeros(3), 1.0, 8, 12)
        v = v * np.array([0.012, 0.006, 0.03]) * size           # a flat oval, broad face sideways
        v = v[:, [1, 0, 2]]                                       # thin along x (facing sideways)
        c, s = math.cos(side * flare), math.sin(side * flare)
        v = v @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]).T  # flare backwards
        out.append((v + base + np.array([side * 0.006, 0.0, 0.0]), t))
    return out


def _cranium(face: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The skull above and behind the face: an ellipsoid that stays behind the face surface.
    Returns (vertices, triangles, centre, radii)."""
    top_z = face[FOREHEAD, 2]
    radii = np.array([abs(face[EAR_ROOTS[0], 0]) * rng.uniform(0.93, 1.0), rng.uniform(0.095, 0.105),
                      rng.uniform(0.085, 0.1)])
    centre = np.array([0.0, face[FOREHEAD, 1] + radii[1] + 0.01, top_z + rng.uniform(0.035, 0.05) - radii[2]])
    front = face[face[:, 2] > centre[2] - 0.02]
    while True:  # pull the skull back until every upper-face point lies outside it
        inside = np.sum(((front - centre) / radii) ** 2, axis=1) < 1.03
        if not inside.any():
            break
        centre[1] += 0.002
    v, t = _sphere(np.zeros(3), 1.0, 16, 24)
    return centre + v * radii, t, centre, radii


def _hair(support: np.ndarray, centre: np.ndarray, radii: np.ndarray, face: np.ndarray, style: str,
          rng: np.random.Generator, n_az: int = 48, n_el: int = 18) -> tuple[np.ndarray, np.ndarray]:
    """A hair shell over ``support`` (points it must cover) and the skull ellipsoid (``centre``,
    ``radii``); bob and long styles add a curtain falling from the sides and back."""
    thickness, side_lift, length = HAIR_STYLES[style]
    rel = support - centre
    dist = np.linalg.norm(rel, axis=1)
    unit = rel / dist[:, None]

    def elevation(p):
        q = p - centre
        return math.degrees(math.atan2(q[2], math.hypot(q[0], q[1])))

    e_front = elevation(face[FOREHEAD]) + rng.uniform(-10.0, 3.0)
    e_side = elevation(face[EAR_ROOTS[0]] + np.array([0, 0, 0.035])) + side_lift
    e_back = rng.uniform(-45.0, -30.0)
    knots_phi, knots_e = [0.0, 35.0, 90.0, 180.0], [e_front, e_front, min(e_side, e_front), e_back]
    phis = np.linspace(-180.0, 180.0, n_az, endpoint=False)
    columns = []
    noise_rng = np.random.default_rng(rng.integers(1 << 31))
    for phi in phis:
        e_min = float(np.interp(abs(phi), knots_phi, knots_e))
        column = []
        for s in np.linspace(0.0, 1.0, n_el):
            e = math.radians(90.0 - s * (90.0 - e_min))
            p = math.radians(phi)
            d = np.array([math.sin(p) * math.cos(e), -math.cos(p) * math.cos(e), math.sin(e)])
            near = unit @ d > math.cos(math.radians(9.0))
            r = 1.0 / math.sqrt(float(np.sum((d / radii) ** 2)))  # the skull along d
            r = max(r, dist[near].max()) if near.any() else r
            column.append(centre + d * r)
        columns.append(column)
    grid = np.array(columns)  # [az, el, 3]
    lumps = _smooth_noise(grid.reshape(-1, 3), noise_rng, scale=0.06).reshape(grid.shape[:2])
    outward = (grid - centre) / np.linalg.norm(grid - centre, axis=-1, keepdims=True)
    grid = grid + outward * (thickness * (1.0 + 0.35 * lumps) + 0.001)[..., None]
    if length > 0:
        rows = []
        last = grid[:, -1]
        weight = np.clip((np.abs(phis) - 50.0) / 50.0, 0.0, 1.0)
        weight = weight * weight * (3 - 2 * weight)
        flat = last - np.array([centre[0], centre[1], last[0, 2]])
        flat[:, 2] = 0.0
        for k in range(1, 7):
            drop = length * weight * k / 6
            row = last + flat * 0.08 * (k / 6) * weight[:, None]
            row[:, 2] -= drop
            rows.append(row)
        grid = np.concatenate([grid, np.stack(rows, 1)], 1)
    rings = [grid[:, k] for k in range(grid.shape[1])]
    return _loft(rings)


def person_subject(seed: int, mesh: FaceMesh | None = None) -> Subject:
    """One synthetic person (identity ``seed``), anchored with the head's centre near the origin."""
    rng = np.random.default_rng(seed + 104729)
    mesh = mesh or load_face_mesh()
    face = identity_face(mediapipe_to_world(mesh.vertices), mesh.triangles, rng)
    head_v, head_t = _close_back(face, mesh.triangles, depth=rng.uniform(0.10, 0.12))
    # (vertices, triangles, material(s), regions): "face" follows expressions, "head" turns rigidly
    parts: list[tuple[np.ndarray, np.ndarray, object, tuple[str, ...]]] = [
        (head_v, head_t, face_materials(mesh.triangles, len(head_t)), ("face",))]
    paint = {name: np.isin(np.arange(len(head_v)), list(marks)).astype(np.float32)  # [head vertices]
             for name, marks in (("lips", LIP_LANDMARKS), ("brows", BROW_LANDMARKS))}
    for ring, name in ((RIGHT_EYE, "right_eye"), (LEFT_EYE, "left_eye")):
        radius = 0.0115
        front = face[ring].mean(0) + np.array([0.0, -0.0025, 0.0])
        ev, et = _sphere(front + np.array([0.0, radius, 0.0]), radius)
        parts.append((ev, et, EYE, ("head", name)))
    skull_v, skull_t, skull_centre, skull_radii = _cranium(face, rng)
    parts.append((skull_v, skull_t, SKIN, ("head",)))
    for ev, et in _ears(face, rng):
        parts.append((ev, et, SKIN, ("head",)))
    neck_top = np.array([0.0, skull_centre[1] - 0.005, face[CHIN, 2] + 0.05])
    neck_radius = np.array([rng.uniform(0.05, 0.06), rng.uniform(0.052, 0.062)])
    neck_rings = [np.concatenate([neck_top[:2] + _superellipse(24, *neck_radius, 2.0),
                                  np.full((24, 1), neck_top[2] - dz)], 1) for dz in np.linspace(0.0, 0.2, 6)]
    neck_v, neck_t = _loft(neck_rings)
    parts.append((neck_v, neck_t, SKIN, ("neck",)))
    torso_v, torso_t, collar = _torso(rng, neck_top - np.array([0.0, 0.0, rng.uniform(0.10, 0.12)]))
    parts.append((torso_v, torso_t, np.where(collar, SKIN, CLOTH), ("body",)))
    style = list(HAIR_STYLES)[rng.integers(len(HAIR_STYLES))]
    if style != "bald":
        support = np.concatenate([skull_v, head_v[len(face):]])
        if HAIR_STYLES[style][2] > 0:
            support = np.concatenate([support] + [p[0] for p in parts if "head" in p[3]])
        hv, ht = _hair(support, skull_centre, skull_radii, face, style, rng)
        parts.append((hv, ht, HAIR, ("head",)))
    verts, tris, mats, offset = [], [], [], 0
    regions: dict[str, list[np.ndarray]] = {}
    for v, t, mat, names in parts:
        verts.append(v)
        tris.append(t + offset)
        mats.append(np.broadcast_to(np.asarray(mat, np.int32), (len(t),)))
        for name in names:
            regions.setdefault(name, []).append(np.arange(offset, offset + len(v)))
        offset += len(v)
    v = np.concatenate(verts)
    joined = {k: np.concatenate(r) for k, r in regions.items()}
    anchor = np.array([0.0, 0.0, 0.5 * (face[:, 2].min() + face[:, 2].max())])
    v = v - anchor
    kind = int(rng.integers(len(FITZPATRICK)))
    skin, ss, radius_scale = FITZPATRICK[kind]
    albedo = np.clip(np.array(skin) * rng.uniform(0.9, 1.1, 3), 0.0, 1.0)
    hue = rng.uniform(0, 1)
    cloth = _hsv_to_rgb(hue, rng.uniform(0.0, 0.75), rng.uniform(0.15, 0.85)) ** 2.2
    look = PersonLook(albedo=tuple(albedo.round(4).tolist()), roughness=float(rng.uniform(0.35, 0.55)),
                      subsurface=float(ss), eye_colour=tuple((np.array([0.08, 0.04, 0.02]) * rng.uniform(0.5, 3.0)
                                                              ).round(4).tolist()),
                      fitzpatrick=kind + 1, subsurface_radius=float(radius_scale), specular=float(rng.uniform(0.4, 0.6)),
                      hair_style=style, hair_colour=HAIR_COLOURS[list(HAIR_COLOURS)[rng.integers(len(HAIR_COLOURS))]],
                      cloth_colour=tuple(cloth.round(4).tolist()), cloth_roughness=float(rng.uniform(0.7, 0.95)),
                      cloth_sheen=float(rng.uniform(0.2, 0.8)))
    turn = np.zeros(len(v))  # how much of the head's turn each vertex follows
    turn[joined["face"]] = turn[joined["head"]] = 1.0
    neck_z = v[joined["neck"], 2]
    turn[joined["neck"]] = (neck_z - neck_z.min()) / np.ptp(neck_z)
    painted = {name: np.concatenate([w, np.zeros(len(v) - len(w), np.float32)]) for name, w in paint.items()}
    regions_out = {"landmarks": np.arange(len(face)), "face": joined["face"], "turn": turn, **painted,
                   "right_eye": joined["right_eye"], "left_eye": joined["left_eye"]}
    return Subject(f"person-{seed:04d}", v, np.concatenate(tris), np.concatenate(mats), look, regions_out)


def face_materials(face_tris: np.ndarray,  # [T, 3] the canonical mesh's triangles (first in the head's)
                   count: int,             # triangles of the closed head
                   ) -> np.ndarray:        # [count] material index
    """Skin, with the lid openings see-through: the eyeballs behind show sclera, iris and pupil between
    the lids."""
    out = np.full(count, SKIN, np.int32)
    for ring in (RIGHT_EYE, LEFT_EYE):
        out[:len(face_tris)][np.isin(face_tris, ring).all(1)] = OPENING
    return out


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
