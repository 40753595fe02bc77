"""HDRI environments: load, validate, rotate, and project onto stage lights or SH.

Projection never resamples the map: each texel keeps its exact solid angle and
is moved to the world direction where the rotation puts it, so energy is
conserved exactly and a sub-pixel rotation moves the result smoothly.
A projection weight is radiance integrated over the light's cell, in W/m² per
channel (DESIGN.md, light units).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RelitIOError, ValidationError
from ..io.images import read_rgb
from .latlong import pixel_directions, row_solid_angles
from .layout import StageLayout
from .rotation import world_directions
from .sh import real_sh, sh_count

log = logging.getLogger(__name__)

MISSING_POLICIES = ("drop", "nearest")
BUILTIN_HDRIS = ("city", "courtyard", "forest", "interior", "night", "studio", "sunrise", "sunset")
                 # the eight CC0 HDRIs that ship inside Blender's bpy wheel
_ROWS_PER_CHUNK = 64
_CELLS_KEPT = 4  # stage-cell maps and projections kept (int32 per texel: 0.5 MB for a 512x256 map, 128 MB at 8k)
_MAPS_KEPT = 2   # maps read kept (float32 RGB: 1.5 MB for 512x256, 400 MB at 8k)
_CELLS: OrderedDict = OrderedDict()
_MAPS: OrderedDict = OrderedDict()  # the last maps read, by (path, inode, size, mtime, ctime)
_PROJECTIONS: OrderedDict = OrderedDict()  # the last unscaled projections, by map digest, turn and stage


def validate_environment(pixels: np.ndarray,  # [H, W, 3]
                         source: str,
                         ) -> np.ndarray:     # [H, W, 3] float32, tiny negatives clamped to 0
    """Reject maps that cannot light anything; clamp the tiny negatives lossy codecs leave."""
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValidationError(f"{source}: an environment must be an RGB image, got shape {pixels.shape}")
    h, w = pixels.shape[:2]
    if w != 2 * h:
        raise ValidationError(f"{source}: a lat-long map is twice as wide as high, got {w}x{h}")
    bad = ~np.isfinite(pixels)
    if bad.any():
        row, col, _ = np.argwhere(bad)[0]
        raise ValidationError(
            f"{source}: {int(bad.any(axis=2).sum())} pixel(s) are NaN or Inf (first at x={col}, y={row}); "
            "fix or clamp the map before using it"
        )
    peak = float(pixels.max())
    if peak <= 0:
        raise ValidationError(f"{source}: the environment is black everywhere; it would light nothing")
    low = float(pixels.min())
    if low < -1e-3 * peak:
        log.warning("%s: negative radiance down to %g clamped to 0", source, low)
    return np.maximum(pixels, 0.0).astype(np.float32, copy=False)


def load_environment(path: str | Path) -> np.ndarray:  # [H, W, 3] float32 linear radiance, read-only
    """Read a lat-long EXR/HDR (any format OpenImageIO reads) and validate it. The last few maps read
    are kept (keyed by path, inode, size, modification and change times: a rewritten file is read
    again) for a warm worker's next job."""
    try:
        st = os.stat(path)
        key = (str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)  # any rewrite
    except OSError:
        key = None  # read_rgb says what is wrong with the path
    if key is not None and key in _MAPS:
        _MAPS.move_to_end(key)
        return _MAPS[key]
    pixels = validate_environment(read_rgb(path), str(path))
    pixels.flags.writeable = False
    if key is not None:
        _MAPS[key] = pixels
        while len(_MAPS) > _MAPS_KEPT:
            _MAPS.popitem(last=False)
    return pixels


def texels(pixels: np.ndarray, rotation: tuple[float, float, float]):
    """Yield (world directions [M,3], radiance*solid angle [M,3]) in row chunks."""
    h, w = pixels.shape[:2]
    omega = row_solid_angles(h, w)
    dirs = pixel_directions(h, w)
    for r0 in range(0, h, _ROWS_PER_CHUNK):
        r1 = min(h, r0 + _ROWS_PER_CHUNK)
        d = world_directions(dirs[r0:r1].reshape(-1, 3), rotation)
        e = (pixels[r0:r1].astype(np.float64) * omega[r0:r1, None, None]).reshape(-1, 3)
        yield d, e


def _row_chunks(h: int) -> list[tuple[int, int]]:
    return [(r0, min(h, r0 + _ROWS_PER_CHUNK)) for r0 in range(0, h, _ROWS_PER_CHUNK)]


def _cells(h: int, w: int, rotation: tuple[float, float, float], layout: StageLayout, drop: bool) -> list:
    """Per row chunk of an h x w map turned by ``rotation``: (texels below the stage floor [M] bool, or None,
    the stage light nearest each remaining texel [M']). They depend on the map's size, not its pixels:
    kept for the last few (size, rotation, stage), so a rerun or a look-dev preview projects in a bincount."""
    key = (h, w, tuple(float(a) for a in rotation), layout.directions.tobytes(), layout.floor_z, drop)
    if key in _CELLS:
        _CELLS.move_to_end(key)
        return _CELLS[key]
    dirs = pixel_directions(h, w)
    cells = []
    for r0, r1 in _row_chunks(h):
        d = world_directions(dirs[r0:r1].reshape(-1, 3), rotation)
        outside = d[:, 2] < layout.floor_z if layout.floor_z is not None and drop else None
        cells.append((outside, layout.nearest(d if outside is None else d[~outside]).astype(np.int32)))
    _CELLS[key] = cells
    while len(_CELLS) > _CELLS_KEPT:
        _CELLS.popitem(last=False)
    return cells


@dataclass(frozen=True)
class LayoutProjection:
    weights: np.ndarray   # [N, 3] radiance integrated over each light's cell (W/m² per channel)
    dropped: np.ndarray   # [3] energy from directions the stage does not cover (W/m² per channel)
    total: np.ndarray     # [3] energy of the whole environment (W/m² per channel)

    @property
    def dropped_fraction(self) -> float:
        t = float(self.total.sum())
        return float(self.dropped.sum()) / t if t > 0 else 0.0


def project_to_layout(pixels: np.ndarray,                    # [H, W, 3] linear radiance
                      layout: StageLayout,
                      rotation: tuple[float, float, float] = (0.0, 0.0, 0.0),  # Euler XYZ (rad)
                      intensity: float = 1.0,                # multiplies the radiance
                      missing: str = "drop",                 # stage floor policy: "drop" | "nearest"
                      ) -> LayoutProjection:
    """Integrate the environment over each light's Voronoi cell.

    ``missing`` decides what happens to light from directions below a stage's
    floor: ``drop`` leaves it out (reported as ``dropped``), ``nearest`` gives
    it to the nearest stage light (energy kept, direction bent).
    """
    if missing not in MISSING_POLICIES:
        raise ValidationError(f"missing={missing!r}: use one of {MISSING_POLICIES}")
    key = (hashlib.sha1(np.ascontiguousarray(pixels)).hexdigest(), pixels.shape, str(pixels.dtype),
           tuple(float(v) for v in rotation), layout.directions.tobytes(), layout.floor_z, missing)
    if key in _PROJECTIONS:
        _PROJECTIONS.move_to_end(key)
        weights, dropped, total = _PROJECTIONS[key]
    else:
        weights = np.zeros((len(layout), 3))
        dropped = np.zeros(3)
        total = np.zeros(3)
        h, w = pixels.shape[:2]
        omega = row_solid_angles(h, w)
        for (r0, r1), (outside, idx) in zip(_row_chunks(h), _cells(h, w, rotation, layout, missing == "drop")):
            e = (pixels[r0:r1].astype(np.float64) * omega[r0:r1, None, None]).reshape(-1, 3)
            total += e.sum(axis=0)
            if outside is not None:
                dropped += e[outside].sum(axis=0)
                e = e[~outside]
            for c in range(3):
                weights[:, c] += np.bincount(idx, weights=e[:, c], minlength=len(layout))
        _PROJECTIONS[key] = (weights, dropped, total)
        while len(_PROJECTIONS) > _CELLS_KEPT:
            _PROJECTIONS.popitem(last=False)
    if dropped.sum() > 0:
        log.info("stage %s covers no light from below its floor: %.1f%% of the energy dropped",
                 layout.name, 100.0 * dropped.sum() / max(total.sum(), 1e-30))
    return LayoutProjection(weights * intensity, dropped * intensity, total * intensity)


def project_to_sh(pixels: np.ndarray,                     # [H, W, 3] linear radiance
                  degree: int,
                  rotation: tuple[float, float, float] = (0.0, 0.0, 0.0),  # Euler XYZ (rad)
                  ) -> np.ndarray:                        # [(degree+1)**2, 3]
    """Orthonormal real-SH coefficients of the (rotated) environment radiance."""
    out = np.zeros((sh_count(degree), 3))
    for d, e in texels(pixels, rotation):
        out += real_sh(d, degree).T @ e
    return out


def builtin_hdri_dir() -> Path:
    """The ``studiolights/world`` folder inside the installed bpy wheel, found without importing bpy
    (importing it takes seconds and is kept to the add-on and core.synthetic)."""
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    folders = [] if spec is None or not spec.submodule_search_locations else sorted(
        Path(spec.submodule_search_locations[0]).glob("*/datafiles/studiolights/world"))
    if not folders:
        raise RelitIOError("Blender's bundled HDRIs come with the bpy module (pip install 'relit[blender]'); "
                           "without it, give an HDRI file instead of a name")
    return folders[-1]


def resolve_hdri(text: str) -> Path:
    """An HDRI file: ``text`` when it names an existing file or has a suffix (a missing file is then
    reported by whoever reads it, naming it), else one of Blender's bundled HDRIs by name (``forest``)."""
    path = Path(text)
    if path.exists() or path.suffix:
        return path
    if text not in BUILTIN_HDRIS:
        raise RelitIOError(f"{text!r} is neither an HDRI file nor one of Blender's bundled HDRIs {BUILTIN_HDRIS}")
    return builtin_hdri_dir() / f"{text}.exr"
