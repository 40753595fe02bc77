"""Automatic mattes for plates without alpha: MediaPipe's selfie segmenter (whose weights ship
inside the ``mediapipe`` wheel; nothing is downloaded) keeps the person whose face its face
detector finds (the largest face when there are several), a guided filter with the plate as
guide brings the matte's edge onto the plate's own edges (hair, shoulders), and the face itself
(the hull of MediaPipe's face mesh) is opaque."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ValidationError
from . import mediapipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatteSettings:
    min_face_confidence: float = 0.5   # face detector confidence a plate's face must reach
    threshold: float = 0.5             # segmenter probability that counts as the person (for the component)
    guide_radius: float = 0.01         # guided-filter radius as a fraction of the plate's larger side
    guide_eps: float = 1e-3            # guided-filter regularisation (display-encoded [0, 1] guide)


# the face mesh's hull is made opaque this fraction of the face's width inside its outline (the mesh's
# jaw and temples can sit a few pixels outside the face on a turned head), with a feather of half that
OUTLINE_INSET = 0.04


def display_rgb8(rgb: np.ndarray) -> np.ndarray:  # [H, W, 3] linear Rec.709 -> uint8 sRGB
    """What the detectors were trained on: display-encoded 8-bit sRGB."""
    x = np.clip(rgb, 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.round(srgb * 255.0).astype(np.uint8)


def face_boxes(rgb8: np.ndarray, min_confidence: float) -> list[tuple[int, int, int, int]]:
    """Faces found by MediaPipe's full-range detector, as pixel boxes (x0, y0, x1, y1)."""
    mp = mediapipe()

    h, w = rgb8.shape[:2]
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=min_confidence) as fd:
        found = fd.process(rgb8).detections or []
    boxes = []
    for det in found:
        b = det.location_data.relative_bounding_box
        x0, y0 = min(w, max(0, int(b.xmin * w))), min(h, max(0, int(b.ymin * h)))
        x1, y1 = min(w, max(0, int((b.xmin + b.width) * w))), min(h, max(0, int((b.ymin + b.height) * h)))
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1, y1))
    return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)  # largest first


def plate_face(rgb: np.ndarray,  # [H, W, 3] scene-linear plate
               space: str = "lin_rec709",  # its working space
               min_confidence: float = MatteSettings.min_face_confidence,
               on_subject: np.ndarray | None = None,  # [H, W] the plate's matte: faces off it are ignored
               ) -> tuple[int, int, int, int] | None:
    """The largest face on a plate (on its subject, when the matte is given) as a pixel box
    (x0, y0, x1, y1), or None when none is found."""
    from ..io.colour import convert

    faces = face_boxes(display_rgb8(rgb if space == "lin_rec709" else convert(rgb, space, "lin_rec709")),
                       min_confidence)
    if on_subject is not None:  # a bystander or a poster in the background does not frame the shot
        faces = [(x0, y0, x1, y1) for x0, y0, x1, y1 in faces if on_subject[y0:y1, x0:x1].mean() > 0.5]
    return faces[0] if faces else None


def _box_mean(x: np.ndarray, r: int) -> np.ndarray:
    import cv2

    return cv2.blur(x, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray,  # [H, W] float32 in [0, 1]
                  src: np.ndarray,    # [H, W] float32
                  radius: int, eps: float) -> np.ndarray:  # [H, W]
    """He et al.'s guided filter (grey guide): ``src`` smoothed, with edges following ``guide``."""
    mean_i, mean_p = _box_mean(guide, radius), _box_mean(src, radius)
    cov = _box_mean(guide * src, radius) - mean_i * mean_p
    var = _box_mean(guide * guide, radius) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return _box_mean(a, radius) * guide + _box_mean(b, radius)


def face_outline(rgb: np.ndarray,                  # [H, W, 3] scene-linear plate
                 face: tuple[int, int, int, int],   # the detector's face box (x0, y0, x1, y1)
                 space: str = "lin_rec709",         # the plate's working space
                 source: str = "plate",             # the plate's name, for the log
                 ) -> np.ndarray | None:            # [H, W] float32: 1 inside the face, 0 outside
    """The face's own region, certainly subject: the convex hull of MediaPipe's face-mesh landmarks, found
    in the square the portrait path frames around the face box, shrunk by OUTLINE_INSET of the face's width
    and feathered (its soft edge lies inside the hull). None where FaceMesh finds no face, or finds one whose
    landmarks do not centre in the detector's box (another face in the square: not the person matted)."""
    import cv2

    from ..io.framing import face_framing
    from .face_geometry import plate_landmarks

    h, w = rgb.shape[:2]
    landmarks = plate_landmarks(rgb, face_framing(face, h, w, 64), space)  # the model size plays no part
    if landmarks is None:
        return None
    x0, y0, x1, y1 = face
    cx, cy = landmarks[:, :2].mean(axis=0)
    if not (x0 <= cx <= x1 and y0 <= cy <= y1):
        log.info("%s: the face mesh found centres at (%.0f, %.0f), outside the detector's face box; the face is "
                 "not filled", source, cx, cy)
        return None
    hull = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(landmarks[:, :2]).astype(np.int32)), 1)
    inset = max(1, int(round(OUTLINE_INSET * (x1 - x0))))
    core = cv2.erode(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inset + 1, 2 * inset + 1)))
    return cv2.GaussianBlur(core.astype(np.float32), (0, 0), inset / 2.0) * hull  # the feather's tail cut at the hull


def auto_matte(rgb: np.ndarray,   # [H, W, 3] scene-linear plate, not premultiplied
               source: str,       # the plate's name, for errors
               space: str = "lin_rec709",  # the plate's working space
               settings: MatteSettings = MatteSettings(),
               shot_face: Callable[[], tuple[int, int, int, int] | None] | None = None,
               ) -> np.ndarray:   # [H, W] float32 in [0, 1]
    """The matte of the person whose face is found in ``rgb`` (the largest face): face, hair, neck,
    shoulders. Where this frame shows no face the detector finds (motion blur, a profile),
    ``shot_face()`` (the face box of the shot it belongs to) picks the person instead."""
    import cv2

    from ..io.colour import convert

    mp = mediapipe()
    rgb8 = display_rgb8(rgb if space == "lin_rec709" else convert(rgb, space, "lin_rec709"))
    found = face_boxes(rgb8, settings.min_face_confidence)
    faces = found[:1]
    if not faces and shot_face is not None and (box := shot_face()) is not None:
        log.warning("%s: no face found on this frame; the shot's face box picks the person for the automatic "
                    "matte", source)
        faces = [box]
    if not faces:
        raise ValidationError(f"{source}: no face found for the automatic matte; give the plate an alpha "
                              "channel or pass --matte FILE")
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        prob = seg.process(rgb8).segmentation_mask.astype(np.float32)
    # keep the connected person regions that hold a detected face
    count, labels = cv2.connectedComponents((prob > settings.threshold).astype(np.uint8))
    keep = np.zeros(count, bool)
    for x0, y0, x1, y1 in faces:
        inside = labels[y0:y1, x0:x1]
        keep[np.unique(inside[inside > 0])] = True
    if not keep.any():
        raise ValidationError(f"{source}: the segmenter found no person around the detected face; pass --matte FILE")
    region = keep[labels].astype(np.float32)
    soft = prob * cv2.dilate(region, np.ones((5, 5), np.uint8))
    grey = rgb8.astype(np.float32).mean(axis=2) / 255.0
    radius = max(1, int(round(settings.guide_radius * max(rgb.shape[:2]))))
    alpha = np.clip(guided_filter(grey, soft, radius, settings.guide_eps), 0.0, 1.0)
    outline = face_outline(rgb, faces[0], space, source)
    if outline is not None:  # the segmenter's doubt inside the face (a lens edge, a turned cheek) is not an edge
        alpha = np.maximum(alpha, outline)
    log.info("%s: automatic matte of the person with the largest of %d face(s) found, %.0f%% of the frame", source,
             len(found), 100 * alpha.mean())
    return alpha.astype(np.float32)
