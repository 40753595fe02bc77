"""Real portraits that ship inside installed packages (nothing is downloaded): the photos the demo
and the portrait benchmarks relight. Each is public domain."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _hopper() -> np.ndarray:
    import matplotlib
    import OpenImageIO as oiio

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return oiio.ImageBuf(str(path)).get_pixels(oiio.UINT8)[..., :3]


# name -> (loader of [H, W, 3] uint8 sRGB, where it ships and its licence)
PHOTOS: dict[str, tuple[Callable[[], np.ndarray], str]] = {
    "astronaut": (_astronaut, "scikit-image's data.astronaut (Eileen Collins, NASA; public domain)"),
    "hopper": (_hopper, "matplotlib's sample_data/grace_hopper.jpg (US Navy; public domain)"),
}


def packaged_photo(name: str) -> np.ndarray:  # [H, W, 3] uint8 sRGB
    return np.ascontiguousarray(PHOTOS[name][0]())


def write_photo(name: str, path: str | Path) -> Path:
    """The photo as an 8-bit sRGB PNG plate (a plate without alpha)."""
    import OpenImageIO as oiio

    pixels = packaged_photo(name)
    buf = oiio.ImageBuf(oiio.ImageSpec(pixels.shape[1], pixels.shape[0], 3, "uint8"))
    buf.set_pixels(oiio.ROI(), pixels)
    if not buf.write(str(path)):
        raise OSError(f"{path}: {buf.geterror()}")
    return Path(path)
