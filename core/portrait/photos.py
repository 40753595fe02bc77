"""Real portraits that ship inside installed packages (nothing is downloaded): the photos the demo
and the portrait benchmarks relight, each with its licence. The astronaut and Grace Hopper are public
domain; thumbor's test fixtures are Wikimedia Commons portraits under CC BY-SA (credit the
photographer; images made from them, such as relit contact sheets, share alike)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ValidationError


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _hopper() -> np.ndarray:
    import matplotlib
    import OpenImageIO as oiio

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return oiio.ImageBuf(str(path)).get_pixels(oiio.UINT8)[..., :3]


def _thumbor(file: str) -> Callable[[], np.ndarray]:
    """A photo among thumbor's filter fixtures (its wheel ships them; thumbor is not imported)."""
    def load() -> np.ndarray:
        import importlib.metadata

        import OpenImageIO as oiio

        try:
            dist = importlib.metadata.distribution("thumbor")
        except importlib.metadata.PackageNotFoundError:
            raise ValidationError(f"photo {file}: ships inside thumbor's wheel; install it with "
                                  "pip install -e \".[bench]\" (thumbor==7.8.0)") from None
        path = Path(dist.locate_file(f"thumbor/fixtures/filters/{file}"))
        return oiio.ImageBuf(str(path)).get_pixels(oiio.UINT8)[..., :3]
    return load


# name -> (loader of [H, W, 3] uint8 sRGB, where it ships and its licence)
PHOTOS: dict[str, tuple[Callable[[], np.ndarray], str]] = {
    "astronaut": (_astronaut, "scikit-image's data.astronaut (Eileen Collins, NASA; public domain)"),
    "hopper": (_hopper, "matplotlib's sample_data/grace_hopper.jpg (US Navy; public domain)"),
    "guido": (_thumbor("800px-Guido-portrait-2014.jpg"),
              "thumbor 7.8.0's fixtures/filters/800px-Guido-portrait-2014.jpg (Guido van Rossum, "
              "photo Daniel Stroud; CC BY-SA 4.0, Wikimedia Commons)"),
    "maher": (_thumbor("800px-Katherine_Maher.jpg"),
              "thumbor 7.8.0's fixtures/filters/800px-Katherine_Maher.jpg (Katherine Maher, "
              "photo Victor Grigas; CC BY-SA 3.0, Wikimedia Commons)"),
    "henner": (_thumbor("800px-Christophe_Henner_-_June_2016.jpg"),
               "thumbor 7.8.0's fixtures/filters/800px-Christophe_Henner_-_June_2016.jpg (Christophe Henner, "
               "photo Ruby Mizrahi / Wikimedia Foundation; CC BY-SA 3.0, Wikimedia Commons)"),
    "giunchedi": (_thumbor("Giunchedi%2C_Filippo_January_2015_01.jpg"),
                  "thumbor 7.8.0's fixtures/filters/Giunchedi%2C_Filippo_January_2015_01.jpg (Filippo Giunchedi, "
                  "photo Myleen Hollero / Wikimedia Foundation; CC BY-SA 3.0, Wikimedia Commons)"),
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
