"""Camera rigs around a subject at the origin (pure numpy)."""

from __future__ import annotations

import math

import numpy as np

from ..data.manifest import Camera
from ..lighting.camera import intrinsics_from_fov, look_at_c2w


def arc_cameras(views: int, resolution: int, distance: float = 0.6, fov_deg: float = 22.0,
                arc_deg: float = 120.0, elevation_deg: float = 5.0) -> list[Camera]:
    """``views`` cameras on a horizontal arc in front of the subject (centred on -Y), looking at it."""
    K = intrinsics_from_fov(resolution, resolution, math.radians(fov_deg))
    azimuths = [0.0] if views == 1 else np.linspace(-arc_deg / 2, arc_deg / 2, views)
    el = math.radians(elevation_deg)
    cams = []
    for i, az in enumerate(azimuths):
        a = math.radians(float(az))
        eye = distance * np.array([math.sin(a) * math.cos(el), -math.cos(a) * math.cos(el), math.sin(el)])
        cams.append(Camera(f"cam{i:02d}", resolution, resolution, K, look_at_c2w(eye, np.zeros(3))))
    return cams


def portrait_cameras(views: int, resolution: int, seed: int, extent: float = 0.5,
                     target: tuple[float, float, float] = (0.0, 0.0, -0.07)) -> list[Camera]:
    """``views`` head-and-shoulders cameras for a person (``core.synthetic.person``): each with its own
    focal length (18-40 degree field of view, the distance set so ``extent`` metres fill the frame),
    azimuth spread over +-40 degrees with jitter, and elevation between -8 and 15 degrees."""
    rng = np.random.default_rng(seed + 7)
    spread = [0.0] if views == 1 else np.linspace(-40.0, 40.0, views)
    cams = []
    for i, az in enumerate(spread):
        fov = math.radians(rng.uniform(18.0, 40.0))
        distance = 0.5 * extent / math.tan(0.5 * fov)
        a = math.radians(float(az) + rng.uniform(-6.0, 6.0))
        el = math.radians(rng.uniform(-8.0, 15.0))
        centre = np.asarray(target, dtype=np.float64)
        eye = centre + distance * np.array([math.sin(a) * math.cos(el), -math.cos(a) * math.cos(el), math.sin(el)])
        K = intrinsics_from_fov(resolution, resolution, fov)
        cams.append(Camera(f"cam{i:02d}", resolution, resolution, K, look_at_c2w(eye, centre)))
    return cams
