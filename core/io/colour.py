"""Colour spaces through OpenColorIO.

The config is the one in ``$OCIO`` when set (a studio's, or Blender's), else
OCIO's built-in ``ocio://default``. Plates are converted to one of two
scene-linear working spaces on read; outputs carry the working space's name
and its ``chromaticities``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from ..errors import ColourError

LUMINANCE = np.array([0.2126, 0.7152, 0.0722])  # Rec.709 luminance weights (the lin_rec709 working space's Y)


@dataclass(frozen=True)
class WorkingSpace:
    key: str                    # relit's name: "lin_rec709" or "acescg"
    candidates: tuple[str, ...]  # OCIO names or aliases that mean this space, tried in order
    chromaticities: tuple[float, ...]  # EXR chromaticities: red xy, green xy, blue xy, white xy


WORKING_SPACES = {
    "lin_rec709": WorkingSpace(
        "lin_rec709", ("lin_rec709", "Linear Rec.709 (sRGB)", "Linear Rec.709", "Linear"),
        (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)),
    "acescg": WorkingSpace(
        "acescg", ("ACEScg", "lin_ap1", "ACES - ACEScg"),
        (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767)),
}

# names OpenImageIO puts in ``oiio:ColorSpace`` that OCIO configs may not know
_OIIO_NAMES = {"sRGB": "srgb_tx", "srgb": "srgb_tx", "linear": "lin_rec709", "Linear": "lin_rec709",
               "scene_linear": "lin_rec709", "lin_srgb": "lin_rec709"}


@functools.lru_cache(maxsize=4)
def _config(source: str):
    import PyOpenColorIO as ocio

    try:
        return ocio.Config.CreateFromFile(source)
    except Exception as e:  # OCIO raises its own exception types for missing/bad files
        raise ColourError(f"OCIO config {source!r} cannot be loaded ({e}); fix $OCIO or unset it") from None


def config():
    """The OCIO config in use: ``$OCIO`` or the built-in default."""
    return _config(os.environ.get("OCIO") or "ocio://default")


def working_space(key: str) -> WorkingSpace:
    try:
        return WORKING_SPACES[key]
    except KeyError:
        raise ColourError(f"working space {key!r} is not supported; use one of {sorted(WORKING_SPACES)}") from None


def resolve(name: str) -> str:
    """The config's colour space name for ``name`` (a working-space key, a name or an alias)."""
    cfg = config()
    key = name if name in WORKING_SPACES else _OIIO_NAMES.get(name, name)
    candidates = working_space(key).candidates if key in WORKING_SPACES else (name, key)
    for candidate in candidates:
        cs = cfg.getColorSpace(candidate)
        if cs is not None:
            return cs.getName()
    known = ", ".join(cs.getName() for cs in cfg.getColorSpaces())
    raise ColourError(f"colour space {name!r} is not in the OCIO config; known: {known}")


def convert(pixels: np.ndarray,  # [..., 3] float
            src: str,
            dst: str,
            ) -> np.ndarray:     # [..., 3] float32
    """Convert RGB pixels between two colour spaces of the config."""
    src_name, dst_name = resolve(src), resolve(dst)
    out = np.ascontiguousarray(pixels, dtype=np.float32).copy()
    if src_name == dst_name:
        return out
    processor = config().getProcessor(src_name, dst_name).getDefaultCPUProcessor()
    flat = out.reshape(-1, 3)
    processor.applyRGB(flat)
    return flat.reshape(out.shape)


def default_plate_space(path: str) -> str:
    """What a plate file holds when nothing says otherwise: EXR/HDR scene-linear Rec.709, else sRGB."""
    return "lin_rec709" if str(path).lower().endswith((".exr", ".hdr")) else "srgb_tx"
