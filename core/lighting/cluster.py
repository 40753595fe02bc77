"""HDRI -> K area lights by a variance cut on the sphere (DifFRelight's cheap HDRI path).

Texels keep their exact solid angle and are moved to where the rotation puts
them (as in :mod:`.hdri`). The set is split recursively, like median cut, but
always the region whose energy is most spread out (largest energy-weighted
angular variance), across the principal axis of its directions, at the cut that
leaves the least variance on both sides. So a sun stays one small light (its
texels hardly spread) while a wide sky is shared out over several large ones;
energy-median cuts would slice the sun into pieces that each cost an inference.
Each region becomes one area light:

- direction: its energy-weighted mean direction;
- energy: its radiance integrated over its texels (W/m² per channel, exact);
- size: the angular radius theta of the uniform cap with the same mean cosine
  about that direction (a cap of radius theta has mean cosine (1 + cos theta)/2),
  so a concentrated region is small even when its texels span a wide area.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from ..errors import ValidationError
from ..io.colour import LUMINANCE  # how energy is split between regions
from .hdri import MISSING_POLICIES, texels
from .layout import StageLayout


@dataclass(frozen=True)
class AreaLight:
    direction: np.ndarray  # [3] unit, world frame, towards the light
    radius: float          # angular radius (rad) of the cap with the region's spread
    energy: np.ndarray     # [3] irradiance it delivers facing it, W/m² per channel


@dataclass(frozen=True)
class Clustering:
    lights: list[AreaLight]  # at most K, brightest first
    dropped: np.ndarray      # [3] energy below the stage floor left out (W/m² per channel)
    total: np.ndarray        # [3] energy of the whole environment (W/m² per channel)

    @property
    def dropped_fraction(self) -> float:
        t = float(self.total.sum())
        return float(self.dropped.sum()) / t if t > 0 else 0.0


def _spread(d: np.ndarray, w: np.ndarray) -> float:
    """Energy-weighted squared distance of a region's directions from their mean."""
    total = float(w.sum())
    if total <= 0:
        return 0.0
    mean = (w[:, None] * d).sum(axis=0) / total
    return float((w * ((d - mean) ** 2).sum(axis=1)).sum())


def _split(d: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Index sets of the two halves of a region: the cut across its principal axis that leaves
    the least weighted variance along that axis."""
    if len(w) < 2 or w.sum() <= 0:
        return None
    mean = (w[:, None] * d).sum(axis=0) / w.sum()
    centred = d - mean
    cov = (w[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(axis=0)
    p = centred @ np.linalg.eigh(cov)[1][:, -1]
    order = np.argsort(p, kind="stable")
    p, ws = p[order], w[order]
    cw, cwp, cwp2 = np.cumsum(ws), np.cumsum(ws * p), np.cumsum(ws * p * p)
    left_w, left_p, left_p2 = cw[:-1], cwp[:-1], cwp2[:-1]
    right_w, right_p, right_p2 = cw[-1] - left_w, cwp[-1] - left_p, cwp2[-1] - left_p2
    with np.errstate(divide="ignore", invalid="ignore"):
        sse = (left_p2 - np.where(left_w > 0, left_p ** 2 / left_w, 0.0)
               + right_p2 - np.where(right_w > 0, right_p ** 2 / right_w, 0.0))
    sse[(left_w <= 0) | (right_w <= 0)] = np.inf
    if not np.isfinite(sse).any():
        return None
    cut = int(np.argmin(sse)) + 1
    return order[:cut], order[cut:]


def _area_light(d: np.ndarray, e: np.ndarray, w: np.ndarray) -> AreaLight:
    resultant = (w[:, None] * d).sum(axis=0)
    norm = float(np.linalg.norm(resultant))
    mean_cos = min(norm / float(w.sum()), 1.0)
    direction = resultant / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
    radius = math.acos(min(max(2.0 * mean_cos - 1.0, -1.0), 1.0))
    return AreaLight(direction, radius, e.sum(axis=0))


_RECENT: OrderedDict = OrderedDict()  # the last clusterings, by map digest, rotation, k, floor and policy
_RECENT_KEPT = 8


def _onto_floor(d: np.ndarray,  # [N, 3] unit directions
                floor: float,   # the stage's lowest z
                ) -> np.ndarray:  # [N, 3]: those below the floor moved up onto it, keeping their azimuth
    """The nearest direction a stage with a floor has: a direction below it keeps its azimuth at the
    floor's elevation (straight down: any azimuth, +x)."""
    below = d[:, 2] < floor
    if not below.any():
        return d
    d = d.copy()
    xy = d[below, :2]
    norm = np.linalg.norm(xy, axis=1, keepdims=True)
    xy = np.where(norm > 1e-9, xy / np.maximum(norm, 1e-12), [1.0, 0.0])
    d[below, :2] = xy * np.sqrt(max(0.0, 1.0 - floor * floor))
    d[below, 2] = floor
    return d


def _median_cut(pixels: np.ndarray, k: int, rotation: tuple[float, float, float], floor: float | None,
                missing: str) -> tuple[list, np.ndarray, np.ndarray]:
    """(area lights of unit intensity, dropped, total); the last few are kept, so a warm worker's rerun
    or look-dev preview of the same map, turn and K costs one digest of the map."""
    key = (hashlib.sha1(np.ascontiguousarray(pixels)).hexdigest(), pixels.shape, str(pixels.dtype), rotation, k, floor,
           missing)
    if key in _RECENT:
        _RECENT.move_to_end(key)
        return _RECENT[key]
    ds, es = [], []
    dropped, total = np.zeros(3), np.zeros(3)
    for d, e in texels(pixels, rotation):
        total += e.sum(axis=0)
        if floor is not None and missing == "drop":
            below = d[:, 2] < floor
            dropped += e[below].sum(axis=0)
            d, e = d[~below], e[~below]
        elif floor is not None:  # "nearest": light from below the stage's floor comes from the floor's edge
            d = _onto_floor(d, floor)
        keep = e.sum(axis=1) > 0
        ds.append(d[keep])
        es.append(e[keep])
    d, e = np.concatenate(ds), np.concatenate(es)
    w = e @ LUMINANCE
    # split the most spread-out region until there are k (or nothing left to split)
    heap = [(-_spread(d, w), 0, np.arange(len(w)))]
    done: list[np.ndarray] = []
    counter = 1
    while heap and len(heap) + len(done) < k:
        _, _, idx = heapq.heappop(heap)
        halves = _split(d[idx], w[idx])
        if halves is None:
            done.append(idx)
            continue
        for half in halves:
            heapq.heappush(heap, (-_spread(d[idx[half]], w[idx[half]]), counter, idx[half]))
            counter += 1
    regions = done + [idx for _, _, idx in heap]
    lights = [_area_light(d[idx], e[idx], w[idx]) for idx in regions if len(idx) and w[idx].sum() > 0]
    if floor is not None and missing != "drop":  # a region along the floor's edge averages to below it
        lights = [AreaLight(_onto_floor(a.direction[None], floor)[0], a.radius, a.energy) for a in lights]
    lights.sort(key=lambda light: -float(light.energy @ LUMINANCE))
    for light in lights:  # shared by every caller that gets this clustering back
        light.direction.flags.writeable = light.energy.flags.writeable = False
    _RECENT[key] = (lights, dropped, total)
    while len(_RECENT) > _RECENT_KEPT:
        _RECENT.popitem(last=False)
    return lights, dropped, total


def cluster_environment(pixels: np.ndarray,                 # [H, W, 3] linear radiance
                        k: int,                              # number of area lights
                        rotation: tuple[float, float, float] = (0.0, 0.0, 0.0),  # Euler XYZ (rad)
                        intensity: float = 1.0,              # multiplies the radiance
                        layout: StageLayout | None = None,   # a stage with a floor: below it is "missing"
                        missing: str = "drop",               # "drop" (reported) | "nearest" (kept)
                        ) -> Clustering:
    """Median-cut the (rotated) environment into at most ``k`` area lights (world frame)."""
    if k < 1:
        raise ValidationError(f"the number of area lights must be >= 1, got {k}")
    if missing not in MISSING_POLICIES:
        raise ValidationError(f"missing={missing!r}: use one of {MISSING_POLICIES}")
    floor = layout.floor_z if layout is not None else None
    lights, dropped, total = _median_cut(pixels, k, tuple(float(a) for a in rotation), floor, missing)
    scale = float(intensity)
    return Clustering([AreaLight(a.direction, a.radius, a.energy * scale) for a in lights],
                      dropped * scale, total * scale)
