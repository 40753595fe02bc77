"""Reading whole images with OpenImageIO (any format it reads: EXR, HDR, PNG, ...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import RelitIOError


def open_input(path: str | Path):
    """An ``oiio.ImageInput`` for ``path``, or a RelitIOError naming the file and why."""
    import OpenImageIO as oiio

    p = Path(path)
    if not p.exists():
        raise RelitIOError(f"{p}: file not found")
    if p.is_dir():
        raise RelitIOError(f"{p}: is a folder, not an image file")
    inp = oiio.ImageInput.open(str(p))
    if inp is None:
        raise RelitIOError(f"{p}: cannot be read as an image ({oiio.geterror().strip()}); "
                           "is it truncated or of another format?")
    return inp


def select_rgb(pixels: np.ndarray,  # [H, W, C]
               names: list[str],   # [C] channel names
               source: str | Path,
               ) -> np.ndarray:    # [H, W, 3]
    """R, G, B by name, or grey from a single channel; other channels (X/Y/Z, a data pass) are
    refused rather than taken for colour."""
    if all(c in names for c in "RGB"):
        return np.ascontiguousarray(pixels[..., [names.index(c) for c in "RGB"]])
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    raise RelitIOError(f"{source}: has channels {names} and no R, G, B; relit reads colour images (the beauty "
                       "R, G, B of an EXR): give the colour pass")


def _first_part(path: str | Path) -> tuple[np.ndarray, list[str]]:  # [H, W, C] float32, [C] channel names
    """The first part's pixels and channel names."""
    from .exr import read_part_pixels

    inp = open_input(path)
    try:
        names = list(inp.spec().channelnames)
        pixels = read_part_pixels(inp, 0, path)
    finally:
        inp.close()
    return pixels, names


def read_rgb(path: str | Path) -> np.ndarray:  # [H, W, 3] float32
    """The first part's R, G, B channels."""
    pixels, names = _first_part(path)
    return select_rgb(pixels, names, path)


def read_matte(path: str | Path) -> np.ndarray:  # [H, W] float32 in [0, 1]
    """A matte file's coverage: its alpha where it has one that is not opaque everywhere (a roto
    written as RGBA, the matte in A), else its first channel (R, Y or a single grey channel)."""
    pixels, names = _first_part(path)
    alpha = pixels[..., names.index("A")] if "A" in names else None
    matte = alpha if alpha is not None and not np.all(alpha >= 1.0) else pixels[..., 0]
    if not np.isfinite(matte).all():
        raise RelitIOError(f"{path}: the matte has NaN or Inf pixels; fix or clamp it (e.g. oiiotool --fixnan box3)")
    return np.clip(matte, 0.0, 1.0).astype(np.float32)


def resize(img: np.ndarray,  # [H, W, C] float32
           height: int, width: int,
           filter: str = "") -> np.ndarray:  # [height, width, C]
    """OpenImageIO's filtered resize; ``filter`` names an OIIO filter ("box", "triangle", ...),
    default: the one OIIO picks for the scale (Lanczos, which rings: not for ratios)."""
    import OpenImageIO as oiio

    h, w, c = img.shape
    src = oiio.ImageBuf(oiio.ImageSpec(w, h, c, "float"))
    src.set_pixels(oiio.ROI(0, w, 0, h, 0, 1, 0, c), np.ascontiguousarray(img, dtype=np.float32))
    dst = oiio.ImageBufAlgo.resize(src, filtername=filter, roi=oiio.ROI(0, width, 0, height, 0, 1, 0, c))
    return np.asarray(dst.get_pixels(oiio.FLOAT), dtype=np.float32).reshape(height, width, c)


def box_downsample(img: np.ndarray,  # [..., H, W, C]
                   factor: int) -> np.ndarray:
    if factor == 1:
        return img
    *lead, h, w, c = img.shape
    return img.reshape(*lead, h // factor, factor, w // factor, factor, c).mean(axis=(-4, -2))
