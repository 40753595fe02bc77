"""A synthetic view's face landmarks, known exactly (pure numpy).

The face shell and the people of ``relit synth`` are MediaPipe's canonical face mesh reshaped: their
first 468 vertices are its landmarks, in its order. Projected through a view's camera they are what
MediaPipe's landmarker reports on a photo, in its format (core.portrait.face_geometry): x right and
y down in pixels, z a depth in the same units, smaller nearer the camera. So geometry computed from
landmarks is computed the same way on synthetic renders and on real plates, without the landmarker
missing half the faces of small renders.
"""

from __future__ import annotations

import numpy as np

from ..data.manifest import Camera
from ..lighting.camera import project_points
from .subject import Subject, deform


def view_landmarks(subject: Subject,
                   weights: dict[str, float],  # the frame's expression weights (subject.deform)
                   camera: Camera,
                   ) -> np.ndarray | None:     # [468, 3] MediaPipe's format, or None (no face mesh)
    """The subject's landmarks as ``camera`` sees them in the frame posed by ``weights``.

    z is the depth relative to the landmarks' mean, scaled to pixels at that depth (fx / depth), as
    MediaPipe's weak-perspective z is scaled like x."""
    if "landmarks" not in subject.regions:
        return None
    world = deform(subject, weights)[subject.regions["landmarks"]]
    xy, depth = project_points(world, camera.K, camera.c2w)
    mean = float(depth.mean())
    z = (depth - mean) * float(camera.K[0, 0]) / mean
    return np.concatenate([xy, z[:, None]], axis=1)
