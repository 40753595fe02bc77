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
