"""Synthetic subjects as numpy geometry: a head from MediaPipe's canonical face, and
procedural expressions driven by landmark regions.

Everything here is pure numpy (testable without Blender); ``scene.py`` turns it
into Blender objects. Units are metres in Blender's world (+Z up); the subject
looks along -Y (towards Blender's front view) and its anchor is the origin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .face_mesh import FaceMesh, load_face_mesh

# MediaPipe landmark indices
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
BROWS = [70, 63, 105, 66, 107, 336, 296, 334, 293, 300]
MOUTH_CORNERS = [61, 291]
UPPER_LIP, LOWER_LIP = 13, 14

EXPRESSIONS = ("jaw_open", "smile", "brow_raise", "head_turn")
SKIN_TONES = np.array([  # linear albedo, light to dark
    [0.62, 0.43, 0.34], [0.52, 0.34, 0.25], [0.38, 0.23, 0.15], [0.24, 0.14, 0.09], [0.13, 0.075, 0.05]])


@dataclass(frozen=True)
class SubjectLook:
    albedo: tuple[float, float, float]  # linear base colour of the skin
    roughness: float                    # skin specular roughness
    subsurface: float                   # subsurface weight
    eye_colour: tuple[float, float, float]  # linear iris colour


@dataclass
class Subject:
    name: str                 # subject id written to the manifest
    vertices: np.ndarray      # [V, 3] rest positions (m), the head's anchor at the origin
    triangles: np.ndarray     # [T, 3] int32
    material: np.ndarray      # [T] int32: 0 skin, 1 eye
    look: SubjectLook         # material parameters
    regions: dict = field(default_factory=dict)  # landmark name -> vertex indices (expressions)


def mediapipe_to_world(v: np.ndarray) -> np.ndarray:  # [N, 3] cm, +Y up, +Z to viewer -> metres, +Z up, -Y to viewer
    v = np.asarray(v, dtype=np.float64) / 100.0
    return np.stack([v[:, 0], -v[:, 2], v[:, 1]], axis=-1)


def _boundary_loop(triangles: np.ndarray) -> list[int]:
    """The mesh's single boundary loop, ordered."""
    count: dict[tuple[int, int], int] = {}
    directed: dict[int, int] = {}
    for t in triangles:
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            key = (min(a, b), max(a, b))
            count[key] = count.get(key, 0) + 1
            directed[(a, b)] = True
    nxt = {}
    for (a, b), c in count.items():
        if c == 1:  # boundary edge: walk it opposite to the triangle that owns it
            if (a, b) in directed:
                nxt[b] = a
            else:
                nxt[a] = b
    start = next(iter(nxt))
    loop, cur = [start], nxt[start]
    while cur != start:
        loop.append(cur)
        cur = nxt[cur]
    return loop


def _close_back(v: np.ndarray, tri: np.ndarray, depth: float = 0.11, rings: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Extrude the face outline backwards along quarter ellipses into a closed head shell."""
    loop = _boundary_loop(tri)
    b = v[loop]
    centre = np.array([0.0, b[:, 1].mean() + 0.02, b[:, 2].mean()])
    verts, faces = [v], [tri]
    prev = np.array(loop)
    n = len(v)
    for k in range(1, rings + 1):
        t = 0.5 * math.pi * k / (rings + 1)
        o = b - centre
        ring = centre + np.stack([o[:, 0] * math.cos(t), o[:, 1] * math.cos(t) + depth * math.sin(t),
                                  o[:, 2] * math.cos(t)], axis=-1)
        ids = np.arange(n, n + len(loop))
        verts.append(ring)
        n += len(loop)
        j = np.arange(len(loop))
        faces.append(np.stack([prev[j], prev[(j + 1) % len(loop)], ids[(j + 1) % len(loop)]], -1))
        faces.append(np.stack([prev[j], ids[(j + 1) % len(loop)], ids[j]], -1))
        prev = ids
    apex = n
    verts.append((centre + np.array([0.0, depth, 0.0]))[None])
    j = np.arange(len(loop))
    faces.append(np.stack([prev[j], prev[(j + 1) % len(loop)], np.full(len(loop), apex)], -1))
    vv, ff = np.concatenate(verts), np.concatenate(faces).astype(np.int32)
    # orient the shell like the face: outward normals
    shell = ff[len(tri):]
    normals = np.cross(vv[shell[:, 1]] - vv[shell[:, 0]], vv[shell[:, 2]] - vv[shell[:, 0]])
    outward = np.sum(normals * (vv[shell].mean(1) - centre), axis=1)
    if np.mean(outward < 0) > 0.5:
        ff[len(tri):] = shell[:, ::-1]
    return vv, ff


def _sphere(centre: np.ndarray, radius: float, n_lat: int = 10, n_lon: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere with its pole pointing along -Y (the subject's front)."""
    verts = [np.array([0.0, -1.0, 0.0])]
    for i in range(1, n_lat):
        theta = math.pi * i / n_lat
        phi = 2 * math.pi * np.arange(n_lon) / n_lon
        verts += list(np.stack([math.sin(theta) * np.cos(phi), -math.cos(theta) * np.ones(n_lon),
                                math.sin(theta) * np.sin(phi)], -1))
    verts.append(np.array([0.0, 1.0, 0.0]))
    v = np.array(verts)
    faces = []
    for j in range(n_lon):
        faces.append([0, 1 + (j + 1) % n_lon, 1 + j])
    for i in range(n_lat - 2):
        a, b = 1 + i * n_lon, 1 + (i + 1) * n_lon
        for j in range(n_lon):
            j1 = (j + 1) % n_lon
            faces += [[a + j, a + j1, b + j1], [a + j, b + j1, b + j]]
    last, top = 1 + (n_lat - 2) * n_lon, len(v) - 1
    for j in range(n_lon):
        faces.append([last + j, last + (j + 1) % n_lon, top])
    return centre + radius * v, np.array(faces, dtype=np.int32)


def _smooth_noise(points: np.ndarray, rng: np.random.Generator, scale: float, octaves: int = 6) -> np.ndarray:
    """A smooth random scalar field (sum of random plane waves) of unit-ish amplitude."""
    out = np.zeros(len(points))
    for _ in range(octaves):
        k = rng.normal(size=3)
        k *= (2 * math.pi / scale) / np.linalg.norm(k) * rng.uniform(0.6, 1.4)
        out += np.sin(points @ k + rng.uniform(0, 2 * math.pi))
    return out / math.sqrt(octaves / 2)


def face_subject(seed: int, mesh: FaceMesh | None = None) -> Subject:
    """A head from the canonical face with per-seed shape, skin and eye variation."""
    rng = np.random.default_rng(seed)
    mesh = mesh or load_face_mesh()
    v = mediapipe_to_world(mesh.vertices)
    v *= np.array([rng.uniform(0.94, 1.06), 1.0, rng.uniform(0.95, 1.05)])
    # shape noise along the vertex normals, a few millimetres, smooth over centimetres
    normals = _vertex_normals(v, mesh.triangles)
    v = v + normals * (0.003 * _smooth_noise(v, rng, scale=0.08))[:, None]
    head, tri = _close_back(v, mesh.triangles)
    material = [np.zeros(len(tri), np.int32)]
    parts_v, parts_t, offset = [head], [tri], len(head)
    eyes = {}
    for name, ring in (("right_eye", RIGHT_EYE), ("left_eye", LEFT_EYE)):
        radius = 0.0115
        front = v[ring].mean(0) + np.array([0.0, -0.0025, 0.0])  # cornea 2.5 mm in front of the lid line
        sv, st = _sphere(front + np.array([0.0, radius, 0.0]), radius)
        eyes[name] = np.arange(offset, offset + len(sv))
        parts_v.append(sv)
        parts_t.append(st + offset)
        material.append(np.ones(len(st), np.int32))
        offset += len(sv)
    verts = np.concatenate(parts_v)
    centre = 0.5 * (verts.min(0) + verts.max(0))
    verts -= centre
    tone = rng.uniform(0, len(SKIN_TONES) - 1)
    lo = int(min(math.floor(tone), len(SKIN_TONES) - 2))
    albedo = SKIN_TONES[lo] + (tone - lo) * (SKIN_TONES[lo + 1] - SKIN_TONES[lo])
    look = SubjectLook(tuple(albedo.round(4).tolist()), float(rng.uniform(0.35, 0.6)),
                       float(rng.uniform(0.05, 0.2)),
                       tuple((np.array([0.08, 0.04, 0.02]) * rng.uniform(0.5, 3.0)).round(4).tolist()))
    regions = {"landmarks": np.arange(len(mesh.vertices)), **eyes}
    return Subject(f"face-{seed:04d}", verts, np.concatenate(parts_t), np.concatenate(material), look, regions)


def _vertex_normals(v: np.ndarray, tri: np.ndarray) -> np.ndarray:
    n = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    out = np.zeros_like(v)
    for k in range(3):
        np.add.at(out, tri[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _falloff(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    return np.exp(-np.sum((points - centre) ** 2, axis=-1) / (2 * radius ** 2))


def _rotate_z(points: np.ndarray, angle, pivot: np.ndarray) -> np.ndarray:
    """Turn ``points`` [N, 3] about the vertical through ``pivot`` by ``angle`` (scalar or [N])."""
    c, s = np.cos(angle), np.sin(angle)
    p = points - pivot
    return np.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1], p[:, 2]], -1) + pivot


def _rotate_x(points: np.ndarray, angle: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    p = points - pivot
    return np.stack([p[:, 0], c * p[:, 1] - s * p[:, 2], s * p[:, 1] + c * p[:, 2]], -1) + pivot


def deform(subject: Subject, weights: dict[str, float]) -> np.ndarray:  # [V, 3]
    """Vertex positions under expression weights in [0, 1]; ``head_turn`` (about the vertical, +
    to the subject's left) and ``head_nod`` (chin down +) in units of 12 degrees, ``step`` in metres
    towards the cameras (-Y).

    Expressions move the region ``face`` when the subject has one (else everything but the eyes);
    the head turn and nod move each vertex by its ``turn`` weight (else everything rigidly); the
    step moves everything.
    """
    v = subject.vertices.copy()
    lm = v[subject.regions["landmarks"]] if "landmarks" in subject.regions else None
    not_eyes = np.ones(len(v), bool)
    if "face" in subject.regions:
        not_eyes[:] = False
        not_eyes[subject.regions["face"]] = True
    for key in ("right_eye", "left_eye"):
        if key in subject.regions:
            not_eyes[subject.regions[key]] = False
    if lm is not None:
        upper, lower = lm[UPPER_LIP], lm[LOWER_LIP]
        mouth_z = 0.5 * (upper[2] + lower[2])
        if weights.get("jaw_open", 0.0):
            # the jaw turns about an axis near the ears; only what lies below the lip line follows
            pivot = np.array([0.0, lm[:, 1].max() * 0.2 + 0.03, mouth_z + 0.03])
            below = np.clip((mouth_z - v[:, 2]) / 0.012 + 0.5, 0.0, 1.0) * not_eyes
            angle = math.radians(14.0) * weights["jaw_open"] * below  # chin down and back
            v = _rotate_x(v, angle, pivot)
        if weights.get("smile", 0.0):
            for idx, side in zip(MOUTH_CORNERS, (-1.0, 1.0)):
                f = (_falloff(v, lm[idx], 0.018) * not_eyes)[:, None]
                v += weights["smile"] * f * np.array([0.004 * side, 0.003, 0.006])
        if weights.get("brow_raise", 0.0):
            for idx in BROWS:
                f = (_falloff(v, lm[idx], 0.015) * not_eyes)[:, None]
                v += weights["brow_raise"] * 0.25 * f * np.array([0.0, 0.0, 0.007])
    else:  # a non-face subject: squash the lower half, bulge the sides
        if weights.get("jaw_open", 0.0):
            low = np.clip(-v[:, 2] / 0.05, 0, 1)[:, None]
            v += weights["jaw_open"] * low * np.array([0.0, 0.0, -0.012])
        if weights.get("smile", 0.0):
            v[:, 0] *= 1.0 + 0.06 * weights["smile"] * np.exp(-(v[:, 2] / 0.04) ** 2)
        if weights.get("brow_raise", 0.0):
            high = np.clip(v[:, 2] / 0.05, 0, 1)[:, None]
            v += weights["brow_raise"] * high * np.array([0.0, 0.0, 0.01])
    turn = subject.regions.get("turn", 1.0)
    if weights.get("head_nod", 0.0):  # before the turn, so the nod is about the head's own ear-to-ear axis
        v = _rotate_x(v, math.radians(12.0) * weights["head_nod"] * turn, np.array([0.0, 0.03, -0.05]))
    if weights.get("head_turn", 0.0):
        v = _rotate_z(v, math.radians(12.0) * weights["head_turn"] * turn, np.array([0.0, 0.03, 0.0]))
    if weights.get("step", 0.0):
        v = v + np.array([0.0, -weights["step"], 0.0])
    return v


def expression_track(frames: list[int], seed: int) -> list[tuple[dict[str, float], str]]:
    """Smoothly animated expression weights per frame and the frame's dominant expression label."""
    rng = np.random.default_rng(seed + 7919)
    phases = rng.uniform(0, 1, len(EXPRESSIONS))
    period = max(8.0, float(len(frames)))
    out = []
    for i, _ in enumerate(frames):
        w = {}
        for e, phase in zip(EXPRESSIONS, phases):
            s = 0.5 - 0.5 * math.cos(2 * math.pi * (i / period + phase))
            w[e] = (2 * s - 1) if e == "head_turn" else s
        strongest = max(EXPRESSIONS[:3], key=lambda e: w[e])
        out.append((w, strongest if w[strongest] > 0.5 else "neutral"))
    return out


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def performance_track(frames: list[int], seed: int) -> list[tuple[dict[str, float], str]]:
    """A long performance with large motion (the regime dynamic 3DGS segments are for), in frames
    counted from the first at 24 fps, so a longer sequence extends a shorter one: the head turns
    +-30 degrees (a 64-frame cycle) and nods +-10 (44 frames); speech, the jaw opening and closing
    once a syllable (5-7 frames) in phrases of about 30 frames between pauses; slow smiles and brow
    raises; a 12 cm step towards the cameras over frames 48-72 and back over 144-168 (a 192-frame
    cycle). Labels: "speech" while the jaw moves, else the strongest expression or "neutral"."""
    rng = np.random.default_rng(seed + 15485863)  # not the identity's own stream
    turn_phase, nod_phase, smile_phase, brow_phase = rng.uniform(0, 1, 4)
    syllable = rng.uniform(5.0, 7.0)
    phrases, start = [], 0.0  # (first, last) frame of each spoken phrase
    while start < len(frames):
        length = rng.uniform(24.0, 36.0)
        phrases.append((start, start + length))
        start += length + rng.uniform(8.0, 16.0)
    out = []
    for i, _ in enumerate(frames):
        t = float(i)
        voiced = any(a <= t <= b for a, b in phrases)
        jaw = 0.8 * math.sin(math.pi * t / syllable) ** 2 if voiced else 0.0
        cycle = t % 192.0
        step = 0.12 * (_smoothstep((cycle - 48.0) / 24.0) - _smoothstep((cycle - 144.0) / 24.0))
        w = {"jaw_open": jaw,
             "smile": 0.5 - 0.5 * math.cos(2 * math.pi * (t / 80.0 + smile_phase)),
             "brow_raise": 0.5 - 0.5 * math.cos(2 * math.pi * (t / 56.0 + brow_phase)),
             "head_turn": 2.5 * math.sin(2 * math.pi * (t / 64.0 + turn_phase)),
             "head_nod": (10.0 / 12.0) * math.sin(2 * math.pi * (t / 44.0 + nod_phase)),
             "step": step}
        strongest = max(("smile", "brow_raise"), key=lambda e: w[e])
        out.append((w, "speech" if voiced else strongest if w[strongest] > 0.5 else "neutral"))
    return out


# how a synthetic subject moves over a sequence (SynthConfig.motion): frames, seed -> per frame
# (deform weights, label)
MOTIONS: dict[str, Callable[[list[int], int], list[tuple[dict[str, float], str]]]] = {
    "expressions": expression_track,   # expression changes and a +-12 degree head turn over the sequence
    "performance": performance_track,  # head turns +-30, nods, speech, a step forward: long sequences
}
