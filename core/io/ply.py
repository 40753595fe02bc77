"""3D Gaussian splats in the standard PLY layout viewers read (binary little endian, float32):
``x y z nx ny nz f_dc_0..2 f_rest_0..N opacity scale_0..2 rot_0..3``, opacity as a logit, scales as
logs, rotation (w, x, y, z), ``f_rest`` channel-major (all red coefficients, then green, then blue)
as the reference implementation writes it. Numpy only: the Blender add-on reads it too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import RelitIOError
from .atomic import atomic_path

_HEADER_END = b"end_header\n"


def ply_fields(n_rest: int) -> list[str]:
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(n_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def write_ply(path: str | Path,
              means: np.ndarray,      # [N, 3]
              quats: np.ndarray,      # [N, 4] (w, x, y, z)
              log_scales: np.ndarray,  # [N, 3]
              opacity_logits: np.ndarray,  # [N]
              sh: np.ndarray,         # [N, K, 3] SH coefficients (K = 1 for degree 0)
              ) -> Path:
    n = len(means)
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, -1)  # channel-major
    columns = [means, np.zeros((n, 3)), sh[:, 0, :], rest, opacity_logits[:, None], log_scales, quats]
    data = np.concatenate(columns, axis=1).astype("<f4")
    names = ply_fields(rest.shape[1])
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in names]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(("\n".join(header) + "\n").encode() + _HEADER_END)
            f.write(data.tobytes())
    return Path(path)


def read_ply(path: str | Path) -> dict[str, np.ndarray]:
    """Property name -> [N] float32 values of a binary little-endian 3DGS PLY."""
    raw = Path(path).read_bytes()
    end = raw.find(_HEADER_END)
    if not raw.startswith(b"ply") or end < 0:
        raise RelitIOError(f"{path}: not a PLY file")
    header = raw[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise RelitIOError(f"{path}: only binary little-endian PLY is read (the 3DGS layout)")
    count = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    names = [line.split()[2] for line in header if line.startswith("property float")]
    data = np.frombuffer(raw[end + len(_HEADER_END):], dtype="<f4", count=count * len(names)).reshape(count, -1)
    return {name: data[:, i] for i, name in enumerate(names)}
