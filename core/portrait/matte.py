"""Automatic mattes for plates without alpha: MediaPipe's selfie segmenter (whose weights ship
inside the ``mediapipe`` wheel; nothing is downloaded) keeps the person whose face its face
detector finds (the largest face when there are several) and segments that person's square again
at its full input, a guided filter with the plate's colour as guide brings the matte's edge onto
the plate's own edges (hair, shoulders), and the face itself (the hull of MediaPipe's face mesh)
is opaque."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ValidationError
from . import mediapipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MatteSettings:
    min_face_confidence: float = 0.5   # face detector confidence a plate's face must reach
    threshold: float = 0.5             # segmenter probability that counts as the person (for the component)
    guide_radius: float = 0.01         # guided-filter radius as a fraction of the plate's larger side
    guide_eps: float = 1e-4            # guided-filter regularisation of a grey edge (display-encoded [0, 1]
                                       # guide; bench/matte_edges.py); the colour guide gets 3x, the same there
    colour_guide: bool = True          # guide the filter by the plate's colour, not its grey (an edge of two
                                       # colours of one brightness: a dark shirt before dark foliage)
    clip: tuple[float, float] = (0.1, 0.9)  # the filtered matte's black and white points (a keyer's clip):
                                       # below the first is 0, above the second 1, linear between (the
                                       # filter's faint tails: a glow around hair over a pale backdrop)
    crop_margin: float | None = 0.15   # segment the person's box again, grown on each side by this fraction of
                                       # its size and made square, at the segmenter's full input (None: the
                                       # frame once; skipped where the box is most of the frame anyway)

    def __post_init__(self) -> None:
        for name in ("min_face_confidence", "threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValidationError(f"matte setting {name}: {getattr(self, name)} is not between 0 and 1")
        if not (self.guide_radius > 0.0 and self.guide_eps >= 1e-5):
            raise ValidationError(f"matte settings: guide_radius must be > 0 and guide_eps >= 1e-5 (got "
                                  f"{self.guide_radius}, {self.guide_eps})")
        if not 0.0 <= self.clip[0] < self.clip[1] <= 1.0:
            raise ValidationError(f"matte setting clip: {self.clip} is not (black, white) with 0 <= black < white <= 1")
        if self.crop_margin is not None and not 0.0 <= self.crop_margin <= 2.0:
            raise ValidationError(f"matte setting crop_margin: {self.crop_margin} is not between 0 and 2 (or None)")


# the second segmenter pass is skipped where the person's square covers more than this share of the frame
CROP_SKIP = 0.8

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


def guided_filter_colour(guide: np.ndarray,  # [H, W, 3] float32 in [0, 1]
                         src: np.ndarray,    # [H, W] float32
                         radius: int, eps: float) -> np.ndarray:  # [H, W] float32
    """He et al.'s guided filter with a colour guide: per window, ``src`` as an affine function of the
    guide's three channels (a 3x3 system, solved in closed form in float64: on a hard grey edge the
    system is close to singular). The coefficients are found at 1/s of the plate's size, s = radius / 4
    (He and Sun's fast guided filter), and applied at full size: a 4K plate holds about six float32
    planes of its size. OpenCV's ximgproc has a colour guided filter, but only in the contrib build,
    which relit's headless OpenCV dependency can shadow."""
    import cv2

    h, w = src.shape
    step = max(1, radius // 4)
    small = (max(1, round(w / step)), max(1, round(h / step)))
    g = cv2.resize(guide, small, interpolation=cv2.INTER_AREA).astype(np.float64)  # [h', w', 3]
    p = cv2.resize(src, small, interpolation=cv2.INTER_AREA).astype(np.float64)    # [h', w']
    r = max(1, round(radius / step))
    mean_i, mean_p = _box_mean(g, r), _box_mean(p, r)
    cov = _box_mean(g * p[..., None], r) - mean_i * mean_p[..., None]
    var = {(i, j): _box_mean(g[..., i] * g[..., j], r) - mean_i[..., i] * mean_i[..., j] + (eps if i == j else 0.0)
           for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))}
    # the symmetric matrix's cofactors: inverse = adjugate / determinant
    c00 = var[1, 1] * var[2, 2] - var[1, 2] ** 2
    c01 = var[0, 2] * var[1, 2] - var[0, 1] * var[2, 2]
    c02 = var[0, 1] * var[1, 2] - var[0, 2] * var[1, 1]
    c11 = var[0, 0] * var[2, 2] - var[0, 2] ** 2
    c12 = var[0, 2] * var[0, 1] - var[0, 0] * var[1, 2]
    c22 = var[0, 0] * var[1, 1] - var[0, 1] ** 2
    det = var[0, 0] * c00 + var[0, 1] * c01 + var[0, 2] * c02
    x, y, z = cov[..., 0], cov[..., 1], cov[..., 2]
    a = np.stack([c00 * x + c01 * y + c02 * z, c01 * x + c11 * y + c12 * z, c02 * x + c12 * y + c22 * z], -1)
    a /= det[..., None]
    b = mean_p - (a * mean_i).sum(-1)
    mean_a = cv2.resize(_box_mean(a, r).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)  # [H, W, 3]
    out = cv2.resize(_box_mean(b, r).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)      # [H, W]
    for c in range(3):
        out += mean_a[..., c] * guide[..., c]
    return out


def _person_probability(seg: Any,                            # MediaPipe's SelfieSegmentation, open
                        rgb8: np.ndarray,                    # [H, W, 3] uint8
                        faces: list[tuple[int, int, int, int]],
                        threshold: float,
                        ) -> tuple[np.ndarray, np.ndarray]:  # [H, W] probability, [H, W] bool: the person's region
    """The segmenter's person probability and the connected regions of it that hold a detected face."""
    import cv2

    prob = seg.process(rgb8).segmentation_mask.astype(np.float32)
    count, labels = cv2.connectedComponents((prob > threshold).astype(np.uint8))
    keep = np.zeros(count, bool)
    for x0, y0, x1, y1 in faces:
        inside = labels[y0:y1, x0:x1]
        keep[np.unique(inside[inside > 0])] = True
    return prob, keep[labels]


def _person_square(region: np.ndarray,  # [H, W] bool: the person
                   margin: float,       # grown on each side by this fraction of the box's size
                   ) -> tuple[int, int, int, int]:  # (x0, y0, x1, y1), as square as the frame allows
    """The box the second segmenter pass sees: the person's box grown, then its short side grown to its
    long one (the segmenter stretches its input to a square: a tall crop would be squashed), kept inside
    the frame."""
    h, w = region.shape
    ys, xs = np.nonzero(region)
    y0, y1 = ys.min() - margin * (np.ptp(ys) + 1), ys.max() + 1 + margin * (np.ptp(ys) + 1)
    x0, x1 = xs.min() - margin * (np.ptp(xs) + 1), xs.max() + 1 + margin * (np.ptp(xs) + 1)
    side = min(max(y1 - y0, x1 - x0), h, w)

    def span(lo: float, hi: float, size: int) -> tuple[int, int]:
        lo, hi = (lo + hi - max(hi - lo, side)) / 2, (lo + hi + max(hi - lo, side)) / 2
        shift = max(0.0, -lo) - max(0.0, hi - size)
        return max(0, int(round(lo + shift))), min(size, int(round(hi + shift)))

    (sx0, sx1), (sy0, sy1) = span(x0, x1, w), span(y0, y1, h)
    return sx0, sy0, sx1, sy1


def auto_matte(rgb: np.ndarray,   # [H, W, 3] scene-linear plate, not premultiplied
               source: str,       # the plate's name, for errors
               space: str = "lin_rec709",  # the plate's working space
               settings: MatteSettings = MatteSettings(),
               shot_face: Callable[[], tuple[int, int, int, int] | None] | None = None,
               ) -> np.ndarray:   # [H, W] float32 in [0, 1]
    """The matte of the person whose face is found in ``rgb`` (the largest face): face, hair, neck,
    shoulders (``settings``: the second pass on the person's square, the guide). Where this frame shows
    no face the detector finds (motion blur, a profile), ``shot_face()`` (the face box of the shot it
    belongs to) picks the person instead."""
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
    h, w = rgb8.shape[:2]
    with mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0) as seg:
        prob, region = _person_probability(seg, rgb8, faces, settings.threshold)
        if not region.any():
            raise ValidationError(f"{source}: the segmenter found no person around the detected face; pass "
                                  "--matte FILE")
        x0, y0, x1, y1 = _person_square(region, settings.crop_margin or 0.0)
        if settings.crop_margin is not None and (x1 - x0) * (y1 - y0) < CROP_SKIP * h * w:
            # the person again, filling the segmenter's input
            crop = np.ascontiguousarray(rgb8[y0:y1, x0:x1])
            inner = [(max(0, fx0 - x0), max(0, fy0 - y0), fx1 - x0, fy1 - y0) for fx0, fy0, fx1, fy1 in faces]
            sub, sub_region = _person_probability(seg, crop, inner, settings.threshold)
            if sub_region.any():
                # the finer pass draws the edge; the whole frame's pass, pulled in by one pixel of the
                # segmenter's input, keeps the person's inside where the finer one doubts (a neck, a shirt)
                pull = 2 * max(1, int(round(max(h, w) / 256))) + 1
                kernel = np.ones((pull, pull), np.uint8)
                inside = cv2.erode(prob * region, kernel)
                prob, region = inside, cv2.erode(region.astype(np.uint8), kernel) > 0
                prob[y0:y1, x0:x1] = np.maximum(prob[y0:y1, x0:x1], sub)
                region[y0:y1, x0:x1] |= sub_region
    soft = prob * cv2.dilate(region.astype(np.float32), np.ones((5, 5), np.uint8))
    radius = max(1, int(round(settings.guide_radius * max(h, w))))
    if settings.colour_guide:
        alpha = guided_filter_colour(rgb8.astype(np.float32) / 255.0, soft, radius, 3.0 * settings.guide_eps)
    else:
        alpha = guided_filter(rgb8.astype(np.float32).mean(axis=2) / 255.0, soft, radius, settings.guide_eps)
    black, white = settings.clip
    alpha = np.clip((alpha - black) / (white - black), 0.0, 1.0)
    outline = face_outline(rgb, faces[0], space, source)
    if outline is not None:  # the segmenter's doubt inside the face (a lens edge, a turned cheek) is not an edge
        alpha = np.maximum(alpha, outline)
    log.info("%s: automatic matte of the person with the largest of %d face(s) found, %.0f%% of the frame", source,
             len(found), 100 * alpha.mean())
    return alpha.astype(np.float32)
