"""MediaPipe's canonical face mesh (468 vertices, 898 triangles, UVs; Apache-2.0).

The mesh ships inside the npm package ``@mediapipe/face_mesh`` as the protobuf
``geometry_pipeline_metadata_landmarks.binarypb``, packed in
``face_mesh_solution_packed_assets.data`` at the offsets the package's
``..._loader.js`` lists. ``decode_packed_assets`` extracts and decodes it; the
result is committed as ``assets/canonical_face.npz`` (with the licence notice
beside it), so relit needs neither npm nor protobuf at run time.

Regenerate with::

    npm pack @mediapipe/face_mesh && tar xzf mediapipe-face_mesh-*.tgz
    python -m core.synthetic.face_mesh package/ core/synthetic/assets/canonical_face.npz
"""

from __future__ import annotations

import json
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ASSET = Path(__file__).with_name("assets") / "canonical_face.npz"
_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"


@dataclass(frozen=True)
class FaceMesh:
    vertices: np.ndarray   # [468, 3] float32, centimetres, +Y up, +Z towards the viewer (MediaPipe's frame)
    uvs: np.ndarray        # [468, 2] float32, texture coordinates (v runs down)
    triangles: np.ndarray  # [898, 3] int32 vertex indices


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def parse_fields(buf: bytes) -> list[tuple[int, int, object]]:
    """Protobuf wire format -> [(field number, wire type, value)]; length-delimited values are bytes."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {pos}")
        out.append((number, wire, value))
    return out


def _try_parse(buf: bytes) -> list[tuple[int, int, object]]:
    try:
        return parse_fields(buf)
    except (ValueError, IndexError, struct.error):
        return []


def decode_metadata(buf: bytes) -> FaceMesh:
    """Decode GeometryPipelineMetadata -> its canonical_mesh (a Mesh3d).

    The shipped binary stores the mesh under field 1 and the Procrustes basis
    under field 2, the other way round from the published .proto; the mesh is
    recognised by its content (a vertex_buffer, field 3) instead.
    """
    meshes = [v for _, w, v in parse_fields(buf)
              if w == 2 and any(n == 3 and vw in (2, 5) for n, vw, _ in _try_parse(v))]
    if not meshes:
        raise ValueError("no canonical mesh (a message with a vertex_buffer) in the metadata")
    floats: list[float] = []
    indices: list[int] = []
    for n, w, v in parse_fields(meshes[0]):
        if n == 3 and w == 2:    # vertex_buffer, packed float: x, y, z, u, v per vertex
            floats += struct.unpack(f"<{len(v) // 4}f", v)
        elif n == 3 and w == 5:
            floats.append(struct.unpack("<f", v)[0])
        elif n == 4 and w == 2:  # index_buffer, packed uint32 varints
            pos = 0
            while pos < len(v):
                value, pos = _varint(v, pos)
                indices.append(value)
        elif n == 4 and w == 0:
            indices.append(v)
    vb = np.asarray(floats, dtype=np.float32).reshape(-1, 5)
    return FaceMesh(vb[:, :3].copy(), vb[:, 3:].copy(), np.asarray(indices, dtype=np.int32).reshape(-1, 3))


def decode_packed_assets(package: Path) -> FaceMesh:
    """Extract and decode the mesh from an unpacked ``@mediapipe/face_mesh`` npm package folder."""
    loader = (package / "face_mesh_solution_packed_assets_loader.js").read_text()
    listing = json.loads(re.search(r"loadPackage\((\{.*?\})\);", loader, re.S).group(1))
    entry = next(f for f in listing["files"] if f["filename"].endswith(_MEMBER))
    data = (package / "face_mesh_solution_packed_assets.data").read_bytes()
    return decode_metadata(data[entry["start"]:entry["end"]])


def load_face_mesh() -> FaceMesh:
    """The committed canonical face."""
    with np.load(ASSET) as z:
        return FaceMesh(z["vertices"], z["uvs"], z["triangles"])


def main(argv: list[str]) -> int:
    package, out = Path(argv[0]), Path(argv[1])
    mesh = decode_packed_assets(package)
    np.savez_compressed(out, vertices=mesh.vertices, uvs=mesh.uvs, triangles=mesh.triangles)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
