"""Environment rotation as Blender's Mapping node stores and applies it.

The rotation is Euler XYZ in radians, R = Rz @ Ry @ Rx (Cycles'
``euler_to_transform``), applied to the lookup vector: the radiance seen in
world direction d is the map's radiance at R d, so the environment itself
turns the opposite way (by R^T).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ValidationError


def euler_xyz_matrix(euler: tuple[float, float, float] | np.ndarray) -> np.ndarray:  # [3, 3]
    """Rotation matrix of Blender's XYZ Euler angles (radians): Rz @ Ry @ Rx."""
    x, y, z = (float(a) for a in euler)
    cx, sx, cy, sy, cz, sz = math.cos(x), math.sin(x), math.cos(y), math.sin(y), math.cos(z), math.sin(z)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def lookup_directions(world_dirs: np.ndarray,  # [..., 3] directions in the world
                      euler: tuple[float, float, float],
                      ) -> np.ndarray:          # [..., 3] directions to look up in the map
    """Where in the (unrotated) map the world direction reads its radiance."""
    return np.asarray(world_dirs, dtype=np.float64) @ euler_xyz_matrix(euler).T


def world_directions(map_dirs: np.ndarray,  # [..., 3] directions of map texels
                     euler: tuple[float, float, float],
                     ) -> np.ndarray:        # [..., 3] world directions where they appear
    """Where a texel of the map appears in the world once the rotation applies (R^T d)."""
    return np.asarray(map_dirs, dtype=np.float64) @ euler_xyz_matrix(euler)


def parse_rotation(text: str) -> tuple[float, float, float]:
    """The CLI's ``--rotation``: ``DEG`` turns about the vertical (Z) axis; ``X,Y,Z`` are
    Euler XYZ degrees as Blender's Mapping node shows them. Returns radians."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValidationError(
            f"--rotation {text!r}: give one angle in degrees (about Z) or three as X,Y,Z degrees"
        ) from None
    if len(values) == 1:
        values = [0.0, 0.0, values[0]]
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ValidationError(
            f"--rotation {text!r}: give one angle in degrees (about Z) or three as X,Y,Z degrees"
        )
    return tuple(math.radians(v) for v in values)  # type: ignore[return-value]
