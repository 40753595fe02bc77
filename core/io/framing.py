"""Plates of any size in, model-resolution squares through the model, full resolution out.

The subject is cropped from the matte (a square box around it with a margin,
padded with black where it leaves the frame) and resized to the model's
resolution; a portrait bundle's plates are framed by the face instead, as its
training people were (``face_framing``), and the shading change is carried past
the box to whatever of the subject it leaves out. The relit result comes back as a *ratio* to the flat-lit input at
model resolution, upsampled and multiplied into the full-resolution plate, so
the plate's own detail (pores, hair, sharpness) survives and only the shading
changes. The plate fed to the model is premultiplied by its matte, and so is
the output: the matte composites it, and the output's alpha is that matte.
A plate that already is a square at the model's resolution goes through pixel
for pixel (no resampling; a dim pixel's ratio still leans on its neighbours').
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ValidationError
from .images import resize

MATTE_THRESHOLD = 0.05  # matte values above this count as subject when finding the box
RATIO_EPS = 0.02        # ratio denominator floor, relative to the subject's mean flat-lit value: a darker
                        # channel (matte edges, deep shadow, a saturated colour) takes its neighbours' ratio
                        # (_fill); at 1e-3 a photo's dark hair edge turned magenta (docs/portrait.md, section 7)
RATIO_TRUST = 5.0       # a channel's relit/flat ratio is fully trusted from this many times the floor up; below,
                        # it blends toward its neighbours' (a model's lifted blacks are not multiplied into the plate)
LAYER_CHUNK = 16        # layers resized together (bounds the memory of big plates)
EXTEND_GRID = 8         # cells across the box of the coarse ratio held past its edges (to_plate)
EXTEND_FEATHER = 0.1    # width of the blend into that coarse ratio inside the box, as a fraction of the box


@dataclass(frozen=True)
class Framing:
    x0: int        # top-left of the square box in plate pixels (may be negative: padded)
    y0: int
    size: int      # side of the box in plate pixels
    height: int    # plate size
    width: int
    model: int     # model resolution
    extend: bool = False  # the subject may leave the box: to_plate carries the shading change past its edges

    @property
    def identity(self) -> bool:
        return self.size == self.model and (self.x0, self.y0, self.height, self.width) == (0, 0, self.model,
                                                                                            self.model)


def subject_framing(matte: np.ndarray,  # [H, W] in [0, 1]
                    model: int,          # model resolution
                    margin: float = 0.1,  # extra border on each side, as a fraction of the box
                    source: str = "plate",
                    ) -> Framing:
    """The square box around the subject (the whole plate when it already is the model's size)."""
    h, w = matte.shape
    if (h, w) == (model, model):
        return Framing(0, 0, model, h, w, model)
    ys, xs = np.nonzero(matte > MATTE_THRESHOLD)
    if len(ys) == 0:
        raise ValidationError(f"{source}: the matte is empty (no pixel above {MATTE_THRESHOLD}); "
                              "give a matte with --matte or a plate with an alpha channel")
    side = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    size = int(np.ceil(side * (1 + 2 * margin)))
    cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
    return Framing(int(round(cx - size / 2)), int(round(cy - size / 2)), size, h, w, model)


@dataclass(frozen=True)
class FaceFraming:
    """Where a face sits in a model's square: what a portrait bundle saw in training, so a plate of any
    framing (a wide shot, a close-up) reaches the model framed the same way."""

    width: float     # the face detector's box width, as a fraction of the square's side
    centre_x: float  # the box centre from the left, as a fraction of the side
    centre_y: float  # the box centre from the top, as a fraction of the side


# The synthetic people's training inputs (relit synth's portrait cameras, subject-framed at 64 px):
# MediaPipe's face box measured on them, 0.385 +- 0.025 wide, centred at (0.494, 0.356) over 25
# views of 12 people (tests/test_person.py checks new renders against it).
PORTRAIT_FRAMING = FaceFraming(width=0.385, centre_x=0.5, centre_y=0.356)


def face_framing(face: tuple[int, int, int, int],  # (x0, y0, x1, y1) the face's box in plate pixels
                 height: int, width: int,            # plate size
                 model: int,                         # model resolution
                 framing: FaceFraming = PORTRAIT_FRAMING) -> Framing:
    """The square box that puts ``face`` where ``framing`` says (it may leave the plate: padded;
    the subject may leave it: :func:`to_plate` extends the shading change past its edges)."""
    x0, y0, x1, y1 = face
    # the detector's box is square; the larger side survives a face cut off by the plate's edge
    size = max(1, int(round(max(x1 - x0, y1 - y0) / framing.width)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return Framing(int(round(cx - framing.centre_x * size)), int(round(cy - framing.centre_y * size)), size,
                   height, width, model, extend=True)


def _overlap(f: Framing) -> tuple[slice, slice, slice, slice]:
    """(box rows, box cols, plate rows, plate cols) of the part of the box inside the plate."""
    y0, y1 = max(f.y0, 0), min(f.y0 + f.size, f.height)
    x0, x1 = max(f.x0, 0), min(f.x0 + f.size, f.width)
    return (slice(y0 - f.y0, y1 - f.y0), slice(x0 - f.x0, x1 - f.x0), slice(y0, y1), slice(x0, x1))


def crop_box(img: np.ndarray, f: Framing) -> np.ndarray:  # [H, W, C] -> [size, size, C], img's dtype
    """The box at the plate's resolution, black outside the plate."""
    by, bx, py, px = _overlap(f)
    box = np.zeros((f.size, f.size, img.shape[2]), img.dtype)
    box[by, bx] = img[py, px]
    return box


def to_model(img: np.ndarray, f: Framing) -> np.ndarray:  # [H, W, C] -> [model, model, C]
    """Crop the box (black outside the plate) and resize it to the model's resolution (box filter)."""
    if f.identity:
        return img.astype(np.float32, copy=False)
    box = crop_box(img.astype(np.float32, copy=False), f)
    if f.size == f.model:
        return box
    return resize(box, f.model, f.model, "box" if f.size > f.model else "triangle")


def ratio_eps(flat: np.ndarray, matte: np.ndarray) -> float:
    """Denominator floor of the relit/flat ratio: a small fraction of the subject's mean value."""
    inside = matte > 0.5
    mean = float(flat[inside].mean()) if inside.any() else float(flat.mean())
    return RATIO_EPS * max(mean, 1e-12)


def _fill(ratio: np.ndarray,  # [m, m, C]
          trust: np.ndarray,  # [m, m] in [0, 1] (or bool): how far the ratio is trusted
          ) -> np.ndarray:    # [m, m, C], untrusted pixels filled from trusted neighbours (push-pull)
    """Extend the ratio past the subject's edge so upsampling does not blend it with the black
    outside (a dark fringe), and blend dim pixels' ratios toward their neighbours' in proportion
    to their distrust. Weights depend on the plate only, so the fill is linear in the ratio."""
    import cv2

    weight = trust.astype(np.float32)
    if weight.min() >= 1.0 or not weight.any():
        return ratio
    h, w = weight.shape
    small = (max(1, h // 2), max(1, w // 2))
    num = cv2.resize(ratio * weight[..., None], small[::-1], interpolation=cv2.INTER_AREA).reshape(small + (-1,))
    den = cv2.resize(weight, small[::-1], interpolation=cv2.INTER_AREA)
    # a coarse cell is trusted as much as its pixels on average: a wholly dim region borrows from afar
    coarse = num / np.maximum(den, 1e-12)[..., None]
    if (h, w) != small:
        coarse = _fill(coarse, den)
    up = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR).reshape(ratio.shape)
    return weight[..., None] * ratio + (1.0 - weight[..., None]) * up


def _filled(ratio: np.ndarray,  # [l, m, m, 3] layers' relit/flat ratios
            trust: np.ndarray,  # [m, m, 3] per channel, in [0, 1]
            ) -> np.ndarray:    # [l, m, m, 3]
    """Each channel's ratio filled where that channel is dim: a saturated colour keeps its other two."""
    stacked = np.ascontiguousarray(ratio.transpose(1, 2, 0, 3))  # [m, m, l, 3]
    for c in range(3):
        stacked[..., c] = _fill(stacked[..., c], trust[..., c])
    return stacked.transpose(2, 0, 1, 3)


def _leaves_box(source: np.ndarray, f: Framing) -> bool:
    """Whether any of the subject (non-zero premultiplied plate) lies outside the box."""
    by, bx, py, px = _overlap(f)
    inside = np.zeros(source.shape[:2], bool)
    inside[py, px] = True
    return bool(np.any(source[~inside]))


def _outside_weight(f: Framing) -> np.ndarray:  # [H, W] float32 in [0, 1]
    """How much of each plate pixel's ratio comes from the coarse extension rather than the model's
    square: 0 well inside the box, 1 outside it, a linear ramp over the box's inner EXTEND_FEATHER
    along each edge that lies inside the plate (an edge on the plate's border needs none)."""
    band = max(1.0, EXTEND_FEATHER * f.size)
    ys, xs = np.arange(f.height, dtype=np.float32), np.arange(f.width, dtype=np.float32)

    def inside(pos: np.ndarray, lo: int, hi: int, size: int) -> np.ndarray:  # 1 deep inside, 0 outside
        w = np.ones_like(pos)
        if lo > 0:
            w = np.minimum(w, (pos + 0.5 - lo) / band)
        if hi < size:
            w = np.minimum(w, (hi - pos - 0.5) / band)
        return np.clip(w, 0.0, 1.0)

    wy = inside(ys, f.y0, f.y0 + f.size, f.height)
    wx = inside(xs, f.x0, f.x0 + f.size, f.width)
    return (1.0 - wy[:, None] * wx[None, :]).astype(np.float32)


def _hold_weights(n: int, start: int, size: int) -> np.ndarray:  # [n, EXTEND_GRID] float32
    """Linear interpolation weights from EXTEND_GRID cells over [start, start + size) to ``n`` pixel
    centres, each outer cell's value held past the box's edges (rows sum to 1)."""
    g = np.clip((np.arange(n) + 0.5 - start) / (size / EXTEND_GRID) - 0.5, 0.0, EXTEND_GRID - 1.0)
    lo = np.minimum(np.floor(g).astype(int), EXTEND_GRID - 2)
    t = (g - lo).astype(np.float32)
    w = np.zeros((n, EXTEND_GRID), np.float32)
    w[np.arange(n), lo] = 1.0 - t
    w[np.arange(n), lo + 1] += t
    return w


def _extended(coarse: np.ndarray,  # [EXTEND_GRID, EXTEND_GRID, 3] one layer's ratio, box-averaged
              wy: np.ndarray,      # [H, EXTEND_GRID] _hold_weights of the rows
              wx: np.ndarray,      # [W, EXTEND_GRID] and of the columns
              ) -> np.ndarray:     # [H, W, 3]
    """The ratio's low frequencies over the whole plate, each cell held past the box's edges: a
    subject that leaves the box (shoulders below a face-framed square) keeps the shading change of
    the nearest part the model saw. Separable and exact bilinear; linear in ``coarse``."""
    rows = np.einsum("hg,gjc->hjc", wy, coarse)  # [H, G, 3]
    return np.einsum("hjc,wj->hwc", rows, wx)


def to_plate(relit: np.ndarray,        # [L, m, m, 3] relit layers at model resolution
             flat: np.ndarray,         # [m, m, 3] the premultiplied flat-lit input the model saw
             source: np.ndarray,       # [H, W, 3] the premultiplied full-resolution plate
             f: Framing,
             eps: float,               # ratio floor (ratio_eps)
             ) -> np.ndarray:          # [L, H, W, 3] float32
    """Carry relit layers back to the plate as ratios to the flat-lit input.

    Where the subject leaves the box (a face-framed square), the ratio's coarse version is held past
    the box's edges and blended in over a feather inside them. Linear in ``relit``: layers that sum
    at model resolution still sum here.
    """
    ratio = (relit / np.maximum(flat, eps)[None]).astype(np.float32)
    # [m, m, 3] how far each channel's ratio is trusted: none at the floor, fully from RATIO_TRUST x the floor;
    # a dim channel (a matte edge, deep shadow, black cloth) leans on its neighbours' ratio
    trust = np.clip((flat - eps) / ((RATIO_TRUST - 1.0) * eps), 0.0, 1.0)
    if f.identity:  # pixel for pixel, but a dim edge pixel still takes its neighbours' ratio, not the model's
        # colour there (coloured specks along the silhouette)
        return np.concatenate([_filled(ratio[i:i + LAYER_CHUNK], trust) * source[None]
                               for i in range(0, len(ratio), LAYER_CHUNK)]) if len(ratio) else ratio * source[None]
    n = len(relit)
    out = np.zeros((n, f.height, f.width, 3), np.float32)
    by, bx, py, px = _overlap(f)
    extend = f.extend and _leaves_box(source, f)
    if extend:
        outside = _outside_weight(f)[..., None]  # [H, W, 1]
        wy, wx = _hold_weights(f.height, f.y0, f.size), _hold_weights(f.width, f.x0, f.size)
    for i in range(0, n, LAYER_CHUNK):
        chunk = ratio[i:i + LAYER_CHUNK]
        stacked = _filled(chunk, trust).transpose(1, 2, 0, 3).reshape(f.model, f.model, -1)  # [m, m, l*3]
        if extend:
            import cv2

            coarse = cv2.resize(stacked, (EXTEND_GRID, EXTEND_GRID), interpolation=cv2.INTER_AREA)
            coarse = coarse.reshape(EXTEND_GRID, EXTEND_GRID, len(chunk), 3)
        if f.size != f.model:
            stacked = resize(stacked, f.size, f.size, "triangle")
        up = stacked.reshape(f.size, f.size, len(chunk), 3).transpose(2, 0, 1, 3)
        for j in range(len(chunk)):  # one layer at a time: a few plate-size arrays, whatever the layer count
            if extend:
                layer = _extended(coarse[:, :, j], wy, wx) * outside
                layer[py, px] += up[j, by, bx] * (1.0 - outside[py, px])
                out[i + j] = layer * source
            else:
                out[i + j, py, px] = up[j, by, bx] * source[py, px]
    return out
