"""Light-stage layouts: stage light directions (world frame) with their solid angles.

A light's cell is the part of the sphere nearer to it than to any other light
(its spherical Voronoi cell), clipped to the stage's coverage. A stage with a
floor (no lights below some elevation) covers only the sphere above it; what an
environment sends from below is handled by an explicit policy at projection
time (``hdri.project_to_layout``) and the energy dropped is reported.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ValidationError
from ..validation import load_json
from .latlong import pixel_directions, row_solid_angles

DEFAULT_LAYOUT = "default"
_DEFAULT_COUNT = 123  # DifFRelight's stage has 123 panels
_QUADRATURE_HEIGHT = 1024  # lat-long rows used to measure cell solid angles


@dataclass(frozen=True, eq=False)
class StageLayout:
    name: str                   # layout name, recorded in bundles and manifests
    directions: np.ndarray      # [N, 3] unit directions from the stage centre to the lights (world)
    solid_angles: np.ndarray    # [N] solid angle (sr) of each light's cell within the coverage
    names: tuple[str, ...]      # [N] light names, unique, usable as EXR layer names
    floor_z: float | None = None  # lowest z the stage covers; None covers the whole sphere
    meta: dict = field(default_factory=dict)  # free-form provenance (e.g. how it was generated)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def coverage(self) -> float:
        """Solid angle the stage covers (4pi for a full sphere)."""
        return 4.0 * math.pi if self.floor_z is None else 2.0 * math.pi * (1.0 - self.floor_z)

    @property
    def olat_radius(self) -> float:
        """Angular radius (rad) of a cap with the mean cell solid angle: beta = 0 in relit's mapping."""
        mean = float(np.mean(self.solid_angles))
        return float(np.arccos(1.0 - mean / (2.0 * math.pi)))

    def nearest(self, dirs: np.ndarray,  # [M, 3]
                ) -> np.ndarray:         # [M] index of the nearest light
        return np.argmax(np.asarray(dirs, dtype=np.float64) @ self.directions.T, axis=-1)

    def to_json(self) -> dict:
        data = {
            "name": self.name,
            "names": list(self.names),
            "directions": self.directions.round(9).tolist(),
            "solid_angles": self.solid_angles.round(12).tolist(),
        }
        if self.floor_z is not None:
            data["floor_elevation_deg"] = math.degrees(math.asin(self.floor_z))
        if self.meta:
            data["meta"] = self.meta
        return data


def voronoi_solid_angles(directions: np.ndarray,  # [N, 3]
                         floor_z: float | None = None,
                         height: int = _QUADRATURE_HEIGHT,
                         ) -> np.ndarray:          # [N]
    """Solid angles of the spherical Voronoi cells, clipped to z >= floor_z, by lat-long quadrature.

    Each pixel of a ``height x 2*height`` lat-long grid goes to its nearest light
    with its exact solid angle, so the cells tile the coverage exactly.
    """
    d = np.asarray(directions, dtype=np.float64)
    width = 2 * height
    pix = pixel_directions(height, width).reshape(-1, 3)
    omega = np.repeat(row_solid_angles(height, width), width)
    if floor_z is not None:
        omega = np.where(pix[:, 2] >= floor_z, omega, 0.0)
    out = np.zeros(len(d))
    chunk = 1 << 16
    for i in range(0, len(pix), chunk):
        nearest = np.argmax(pix[i:i + chunk] @ d.T, axis=1)
        out += np.bincount(nearest, weights=omega[i:i + chunk], minlength=len(d))
    return out


def fibonacci_directions(n: int) -> np.ndarray:  # [n, 3]
    """n near-uniform directions on a Fibonacci spiral (z from top to bottom)."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = math.pi * (3.0 - math.sqrt(5.0)) * i
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=-1)


def ring_directions(n: int) -> np.ndarray:  # [about n, 3]
    """Near-uniform equal-area latitude rings, a light at each pole, ring counts multiples of 4.

    Symmetric under 90-degree turns about Z (and under z -> -z), which makes
    rotation tests exact. The count is close to, not always equal to, n.
    """
    cell = 4.0 * math.pi / n
    polar = math.acos(1.0 - cell / (2.0 * math.pi))  # polar cap of one cell
    n_rings = max(1, round((math.pi - 2 * polar) / math.sqrt(cell)))
    theta = np.linspace(polar, math.pi - polar, n_rings + 1)
    dirs = [np.array([0.0, 0.0, 1.0])]
    for k in range(n_rings):
        z_top, z_bottom = math.cos(theta[k]), math.cos(theta[k + 1])
        count = max(4, 4 * round(2.0 * math.pi * (z_top - z_bottom) / cell / 4.0))
        z = 0.5 * (z_top + z_bottom)
        phi = 2.0 * math.pi * (np.arange(count) + 0.5 * (k % 2)) / count
        r = math.sqrt(1.0 - z * z)
        dirs.extend(np.stack([r * np.cos(phi), r * np.sin(phi), np.full(count, z)], axis=-1))
    dirs.append(np.array([0.0, 0.0, -1.0]))
    return np.array(dirs)


def make_layout(name: str, directions: np.ndarray, floor_z: float | None = None,
                names: tuple[str, ...] | None = None, solid_angles: np.ndarray | None = None,
                meta: dict | None = None) -> StageLayout:
    d = np.asarray(directions, dtype=np.float64)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    if names is None:
        names = tuple(f"L{i:03d}" for i in range(len(d)))
    if solid_angles is None:
        solid_angles = voronoi_solid_angles(d, floor_z)
    return StageLayout(name, d, np.asarray(solid_angles, dtype=np.float64), tuple(names), floor_z, meta or {})


@functools.lru_cache(maxsize=16)
def builtin_layout(name: str) -> StageLayout:
    """A named layout: ``default`` (rings of about 123), ``ringsN``, ``fibN``, ``domeN``
    (rings of about N with no lights below -20 degrees elevation, like a stage floor)."""
    if name == DEFAULT_LAYOUT:
        name = f"rings{_DEFAULT_COUNT}"
    match = re.fullmatch(r"(rings|fib|dome)(\d+)", name)
    if not match or not 8 <= int(match.group(2)) <= 4096:
        raise ValidationError(
            f"unknown layout {name!r}: use 'default', 'ringsN', 'fibN', 'domeN' (8 <= N <= 4096) "
            "or the path of a layout JSON file"
        )
    kind, n = match.group(1), int(match.group(2))
    if kind == "fib":
        return make_layout(name, fibonacci_directions(n), meta={"generator": "fibonacci", "n": n})
    dirs = ring_directions(n)
    if kind == "rings":
        return make_layout(name, dirs, meta={"generator": "rings", "n": n})
    floor_z = math.sin(math.radians(-20.0))
    return make_layout(name, dirs[dirs[:, 2] >= floor_z + 0.05], floor_z=floor_z,
                       meta={"generator": "rings", "n": n, "floor_elevation_deg": -20.0})


def load_layout(name_or_path: str | Path) -> StageLayout:
    """A built-in layout by name, or a real stage's layout from a JSON file.

    The JSON holds ``directions`` (world, +Z up, from the stage centre to each
    light) and optionally ``name``, ``names``, ``solid_angles`` and
    ``floor_elevation_deg`` (the stage has no lights below that elevation).
    """
    path = Path(name_or_path)
    if path.suffix.lower() != ".json":
        return builtin_layout(str(name_or_path))
    return layout_from_json(load_json(path, "give a layout name or a layout JSON file"), source=str(path))


def layout_from_json(data: dict, source: str = "layout") -> StageLayout:
    known = {"name", "names", "directions", "solid_angles", "floor_elevation_deg", "meta"}
    unknown = set(data) - known
    if unknown:
        raise ValidationError(f"{source}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    try:
        dirs = np.asarray(data["directions"], dtype=np.float64)
    except KeyError:
        raise ValidationError(f"{source}: 'directions' is missing (a list of [x, y, z])") from None
    except (TypeError, ValueError):
        raise ValidationError(f"{source}: 'directions' must be a list of [x, y, z] numbers") from None
    if dirs.ndim != 2 or dirs.shape[1] != 3 or len(dirs) < 1:
        raise ValidationError(f"{source}: 'directions' must be a list of [x, y, z], got shape {dirs.shape}")
    norms = np.linalg.norm(dirs, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (norms < 1e-9))
    if len(bad):
        raise ValidationError(f"{source}: directions[{bad[0]}] is zero or not finite")
    names = data.get("names")
    if names is not None:
        if len(names) != len(dirs) or len(set(names)) != len(names):
            raise ValidationError(f"{source}: 'names' must list one unique name per direction")
        names = tuple(str(n) for n in names)
    omega = data.get("solid_angles")
    if omega is not None:
        omega = np.asarray(omega, dtype=np.float64)
        if omega.shape != (len(dirs),) or np.any(~np.isfinite(omega)) or np.any(omega <= 0):
            raise ValidationError(f"{source}: 'solid_angles' must hold one positive number per direction")
    floor = data.get("floor_elevation_deg")
    floor_z = None if floor is None else math.sin(math.radians(float(floor)))
    if floor_z is not None:
        below = np.flatnonzero(dirs[:, 2] / norms < floor_z)
        if len(below):
            raise ValidationError(f"{source}: directions[{below[0]}] lies below floor_elevation_deg={floor}")
    return make_layout(str(data.get("name", Path(source).stem)), dirs, floor_z, names, omega, data.get("meta"))
