"""Plates: any image OpenImageIO reads, converted to the scene-linear working space on read."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import ValidationError
from .colour import convert, default_plate_space
from .exr import read_info
from .images import open_input, resize, select_rgb

SUBJECT_ATTRIBUTE = "relit/subject"  # header field naming the captured subject (flat-lit renders, 3DGS views)
GENERAL_SUBJECT = "portrait"  # the subject a bundle trained on many people records: it relights anyone


@dataclass(frozen=True)
class Plate:
    rgb: np.ndarray     # [H, W, 3] float32 in the working space, premultiplied as stored
    alpha: np.ndarray   # [H, W] float32 (ones when the file has no alpha)
    colour_space: str   # the space the file was read as
    path: Path
    subject: str | None = None  # the subject the header names (SUBJECT_ATTRIBUTE), if any
    has_alpha: bool = True      # whether the file has an alpha channel (else ``alpha`` is ones)


def read_plate(path: str | Path, colour_space: str | None = None, working: str = "lin_rec709") -> Plate:
    """Read a plate's first part as RGB(A) and convert it to ``working``.

    The file's space is ``colour_space`` when given, else the header's
    ``oiio:ColorSpace``, else scene-linear Rec.709 for EXR/HDR and sRGB for
    display-referred formats (PNG, JPEG, TIFF).
    """
    from .exr import read_part_pixels

    info = read_info(path)
    part = info.parts[0]
    names = list(part.channels)
    inp = open_input(path)
    try:
        pixels = read_part_pixels(inp, 0, path)
    finally:
        inp.close()
    rgb = select_rgb(pixels, names, path)
    alpha = pixels[..., names.index("A")] if "A" in names else np.ones(pixels.shape[:2], np.float32)
    bad = ~np.isfinite(rgb).all(axis=-1) | ~np.isfinite(alpha)
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise ValidationError(f"{path}: {int(bad.sum())} pixel(s) are NaN or Inf (first at x={x}, y={y}); fix or "
                              "clamp the plate (e.g. oiiotool --fixnan box3) before relighting it")
    source = colour_space or part.attributes.get("oiio:ColorSpace") or default_plate_space(str(path))
    return Plate(convert(rgb, str(source), working), alpha.astype(np.float32), str(source), Path(path),
                 part.attributes.get(SUBJECT_ATTRIBUTE), "A" in names)


def unpremultiplied(plate: Plate) -> Plate:
    """A plate stored premultiplied by its own alpha, divided by it: what a separate matte (a roto, the
    automatic matte) is applied to, so that a soft edge is not applied twice (a dark fringe)."""
    if not plate.has_alpha:
        return plate
    a = plate.alpha[..., None]
    rgb = np.where(a > 0, plate.rgb / np.maximum(a, 1e-6), 0.0)
    return replace(plate, rgb=rgb.astype(np.float32))


def fit_square(rgb: np.ndarray, alpha: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre-crop to a square and resize to ``size`` (whole-plate checks; relighting crops to the matte)."""
    h, w = alpha.shape
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    both = np.concatenate([rgb, alpha[..., None]], axis=-1)[y0:y0 + s, x0:x0 + s]
    out = both if s == size else resize(both, size, size)
    return out[..., :3], out[..., 3]
