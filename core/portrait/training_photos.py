"""Real photos for the portrait model's real-image task (core.model.real_tasks): each is framed as
relit frames a plate for a portrait bundle (automatic matte, premultiplied, the face's box), and
every draw moves that box a little, may mirror it and changes the exposure, so a handful of photos
gives many views."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ValidationError
from ..io.framing import face_framing, to_model
from ..io.matting import premultiplied


@dataclass(frozen=True)
class FramedPhoto:
    source: str                      # the file, for errors and logs
    plate: np.ndarray                # [H, W, 3] scene-linear, premultiplied by the automatic matte
    face: tuple[int, int, int, int]  # (x0, y0, x1, y1) the face's box in plate pixels


def load_framed_photo(path: str) -> FramedPhoto:
    """A photo as a portrait bundle sees a plate without alpha: its automatic matte applied."""
    from ..io.plates import read_plate
    from .matte import auto_matte, plate_face

    plate = read_plate(path)
    matte = auto_matte(plate.rgb, path)  # refuses a photo with no face
    face = plate_face(plate.rgb, on_subject=matte > 0.5)
    if face is None:
        raise ValidationError(f"{path}: the face found for the matte is not on it; use another photo")
    return FramedPhoto(path, premultiplied(plate.rgb, matte, str(path)), face)  # as relit relight premultiplies it


def jittered_view(photo: FramedPhoto,
                  resolution: int,           # the model's
                  rng: np.random.Generator,
                  shift: float = 0.08,       # the box moves by up to this fraction of the face's size
                  zoom: float = 0.15,        # and is scaled by up to 1 +- this
                  stops: float = 1.0,        # the exposure changes by up to +- this many stops
                  ) -> np.ndarray:           # [resolution, resolution, 3] scene-linear
    x0, y0, x1, y1 = photo.face
    size = max(x1 - x0, y1 - y0) * (1.0 + rng.uniform(-zoom, zoom))
    cx = (x0 + x1) / 2 + rng.uniform(-shift, shift) * size
    cy = (y0 + y1) / 2 + rng.uniform(-shift, shift) * size
    box = (int(round(cx - size / 2)), int(round(cy - size / 2)), int(round(cx + size / 2)), int(round(cy + size / 2)))
    view = to_model(photo.plate, face_framing(box, *photo.plate.shape[:2], resolution))
    if rng.random() < 0.5:
        view = view[:, ::-1]
    return np.ascontiguousarray(view * np.float32(2.0 ** rng.uniform(-stops, stops)))
