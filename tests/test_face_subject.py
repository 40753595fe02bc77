import math
import struct
from collections import Counter

import numpy as np
import pytest

from core.synthetic.face_mesh import decode_metadata, load_face_mesh
from core.synthetic.subject import EXPRESSIONS, deform, expression_track, face_subject


def _key(number, wire):
    return bytes([number << 3 | wire])


def _varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def test_decoder_reads_a_hand_written_mesh3d_message():
    # Mesh3d written by hand from the protobuf wire format: two vertices (x, y, z, u, v),
    # one as a packed run and one as single fixed32 fields; indices packed, then one unpacked
    floats = [1.5, -2.0, 3.25, 0.5, 0.75, -1.0, 0.0, 2.0, 0.25, 1.0]
    packed = struct.pack("<5f", *floats[:5])
    mesh = _key(1, 0) + b"\x00" + _key(3, 2) + _varint(len(packed)) + packed
    mesh += b"".join(_key(3, 5) + struct.pack("<f", f) for f in floats[5:])
    idx = b"".join(_varint(i) for i in (0, 1, 300, 1, 0))
    mesh += _key(4, 2) + _varint(len(idx)) + idx + _key(4, 0) + _varint(1)
    # a Procrustes basis entry first, then the mesh (as the shipped binary orders them)
    basis = _key(1, 0) + _varint(4) + _key(2, 5) + struct.pack("<f", 0.5)
    meta = _key(2, 2) + _varint(len(basis)) + basis + _key(1, 2) + _varint(len(mesh)) + mesh
    out = decode_metadata(meta)
    np.testing.assert_array_equal(out.vertices, [[1.5, -2.0, 3.25], [-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(out.uvs, [[0.5, 0.75], [0.25, 1.0]])
    np.testing.assert_array_equal(out.triangles, [[0, 1, 300], [1, 0, 1]])


def test_committed_canonical_face():
    m = load_face_mesh()
    assert m.vertices.shape == (468, 3) and m.triangles.shape == (898, 3) and m.uvs.shape == (468, 2)
    assert m.uvs.min() >= 0 and m.uvs.max() <= 1
    # the canonical face is left-right symmetric: every vertex has a mirror image
    mirrored = m.vertices * np.array([-1, 1, 1])
    d = np.linalg.norm(mirrored[:, None] - m.vertices[None], axis=-1).min(axis=1)
    assert d.max() < 1e-3
    # about 15 cm wide, facing +Z (the nose tip, landmark 1, is in front)
    width = np.ptp(m.vertices[:, 0])
    assert 13 < width < 18 and m.vertices[1, 2] > np.percentile(m.vertices[:, 2], 95)


def _edges(tri):
    return Counter(tuple(sorted(e)) for t in tri for e in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])))


def test_head_is_closed_and_consistently_oriented():
    s = face_subject(5)
    skin = s.triangles[s.material == 0]
    counts = _edges(skin)
    assert set(counts.values()) == {2}  # watertight: every edge has two triangles
    directed = Counter((t[i], t[(i + 1) % 3]) for t in skin for i in range(3))
    assert max(directed.values()) == 1  # each directed edge once: one orientation
    v = s.vertices
    volume = np.einsum("ij,ij->i", v[skin[:, 0]], np.cross(v[skin[:, 1]], v[skin[:, 2]])).sum() / 6
    assert volume > 0  # outward normals
    assert 0.14 < np.ptp(v[:, 0]) < 0.2 and np.abs(0.5 * (v.min(0) + v.max(0))).max() < 1e-9


def test_subjects_vary_with_seed_and_are_deterministic():
    a, b, a2 = face_subject(1), face_subject(2), face_subject(1)
    np.testing.assert_array_equal(a.vertices, a2.vertices)
    assert a.look == a2.look and a.look != b.look
    assert np.abs(a.vertices - b.vertices).max() > 1e-3


def test_expressions_move_their_regions():
    s = face_subject(0)
    rest = s.vertices
    assert np.array_equal(deform(s, {}), rest)
    lm = s.regions["landmarks"]
    chin, forehead = lm[152], lm[10]
    jaw = deform(s, {"jaw_open": 1.0})
    assert jaw[chin, 2] < rest[chin, 2] - 0.005 and abs(jaw[forehead] - rest[forehead]).max() < 1e-6
    brow = deform(s, {"brow_raise": 1.0})
    assert brow[lm[105], 2] > rest[lm[105], 2] + 0.001 and abs(brow[chin] - rest[chin]).max() < 1e-4
    turn = deform(s, {"head_turn": 1.0})
    # a rigid turn about the vertical axis keeps every distance
    i, j = lm[33], lm[263]
    assert np.linalg.norm(turn[i] - turn[j]) == pytest.approx(np.linalg.norm(rest[i] - rest[j]), rel=1e-9)
    assert turn[lm[1], 0] != pytest.approx(rest[lm[1], 0])


def test_expression_track():
    t = expression_track([1001, 1002, 1003, 1004, 1005, 1006], seed=3)
    assert t == expression_track([1001, 1002, 1003, 1004, 1005, 1006], seed=3)
    assert all(set(w) == set(EXPRESSIONS) for w, _ in t)
    assert all(0 <= w[e] <= 1 for w, _ in t for e in EXPRESSIONS[:3])
    # smooth: consecutive frames differ by a bounded amount (period >= 8 frames)
    for (w0, _), (w1, _) in zip(t, t[1:]):
        assert max(abs(w0[e] - w1[e]) for e in EXPRESSIONS) <= 2 * math.sin(math.pi / 8) + 1e-9
