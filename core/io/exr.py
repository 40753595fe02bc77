"""EXR reading (every part, by channel name) and header inspection, with OpenImageIO.

Blender writes multilayer EXRs as one part per pass (``ViewLayer.Combined.R``
...); relit writes one part. Either way channels are addressed by their full
names and a *layer* is everything before a channel name's last dot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MissingChannelError, RelitIOError
from .atomic import atomic_path
from .images import open_input


@dataclass(frozen=True)
class PartInfo:
    index: int                    # part (subimage) number in the file
    name: str                     # the part's name ("" when unnamed)
    width: int                    # data window size in pixels
    height: int
    channels: tuple[str, ...]     # full channel names, in file order
    pixel_types: tuple[str, ...]  # one per channel: "half", "float", "uint"
    compression: str              # e.g. "zip", "dwab"
    attributes: dict = field(default_factory=dict)  # other header attributes, by name


@dataclass(frozen=True)
class ExrInfo:
    path: Path
    format: str                   # OpenImageIO's format name ("openexr", "hdr", ...)
    parts: tuple[PartInfo, ...]

    def channels(self) -> dict[str, tuple[int, int]]:
        """Every channel's full name -> (part index, channel index within the part)."""
        out: dict[str, tuple[int, int]] = {}
        for part in self.parts:
            for i, name in enumerate(part.channels):
                out.setdefault(name, (part.index, i))
        return out

    def layers(self) -> dict[str, list[str]]:
        """Layer name -> its channel suffixes ("" is the plain R, G, B, A layer)."""
        out: dict[str, list[str]] = {}
        for name in self.channels():
            layer, _, suffix = name.rpartition(".")
            out.setdefault(layer, []).append(suffix)
        return out


def _plain_value(value):
    if isinstance(value, (str, int, float)):
        return value
    try:
        return tuple(float(v) for v in value)
    except TypeError:
        return str(value)


def read_info(path: str | Path) -> ExrInfo:
    """Headers of every part (no pixels)."""
    inp = open_input(path)
    try:
        parts = []
        index = 0
        while inp.seek_subimage(index, 0):
            spec = inp.spec()
            types = spec.channelformats or (spec.format,) * spec.nchannels
            attrs = {a.name: _plain_value(a.value) for a in spec.extra_attribs
                     if a.name not in ("name", "compression")}
            parts.append(PartInfo(
                index=index,
                name=str(spec.getattribute("name") or ""),
                width=spec.width,
                height=spec.height,
                channels=tuple(spec.channelnames),
                pixel_types=tuple(str(t) for t in types),
                compression=str(spec.getattribute("compression") or ""),
                attributes=attrs,
            ))
            index += 1
        return ExrInfo(Path(path), inp.format_name(), tuple(parts))
    finally:
        inp.close()


def read_part_pixels(inp, part: int, path: str | Path) -> np.ndarray:  # [H, W, C] float32
    """All channels of one part of an open ``ImageInput`` as float32."""
    if not inp.seek_subimage(part, 0):
        raise RelitIOError(f"{path}: has no part {part}")
    spec = inp.spec()
    # pass the part number explicitly: after seek_subimage(i), 0 would read part 0 (STACK.md)
    pixels = inp.read_image(part, 0, 0, spec.nchannels, "float")
    if pixels is None:
        raise RelitIOError(f"{path}: part {part} could not be read ({inp.geterror().strip()}); "
                           "the file is probably truncated or corrupt: render or copy it again")
    pixels = np.asarray(pixels, dtype=np.float32)
    return pixels.reshape(spec.height, spec.width, spec.nchannels)


def read_channels(path: str | Path,
                  names: list[str] | tuple[str, ...],
                  ) -> np.ndarray:  # [H, W, len(names)] float32
    """Channels by full name, from whichever parts hold them."""
    info = read_info(path)
    where = info.channels()
    missing = [n for n in names if n not in where]
    if missing:
        raise MissingChannelError(
            f"{path}: no channel(s) {missing}; layers in the file: {sorted(info.layers())}"
        )
    inp = open_input(path)
    try:
        cache: dict[int, np.ndarray] = {}
        columns = []
        for n in names:
            part, ch = where[n]
            if part not in cache:
                cache[part] = read_part_pixels(inp, part, path)
            columns.append(cache[part][..., ch])
    finally:
        inp.close()
    shapes = {c.shape for c in columns}
    if len(shapes) > 1:
        raise RelitIOError(f"{path}: channels {list(names)} come from parts of different sizes {shapes}")
    return np.stack(columns, axis=-1)


def read_layer(path: str | Path, layer: str, components: str = "RGB") -> np.ndarray:  # [H, W, len(components)]
    """One layer's components, e.g. ``read_layer(p, "light_key")`` -> light_key.R/G/B.

    ``layer=""`` reads the plain beauty channels R, G, B.
    """
    prefix = f"{layer}." if layer else ""
    return read_channels(path, [prefix + c for c in components])


def write_exr(path: str | Path,
              pixels: np.ndarray,            # [H, W, C] float32
              channels: list[str],           # [C] full channel names
              pixel_types: list[str] | None = None,  # [C] "half" | "float"; default all half
              attributes: dict | None = None,        # header attributes: str, int, float or (TypeDesc, value)
              ) -> Path:
    """Write one single-part EXR atomically (ZIP, no DateTime: reproducible bytes); nothing is left
    behind on failure."""
    import OpenImageIO as oiio

    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    h, w, c = pixels.shape
    if len(channels) != c:
        raise ValueError(f"{path}: {c} channels of pixels but {len(channels)} names")
    types = pixel_types or ["half"] * c
    spec = oiio.ImageSpec(w, h, c, "float")
    spec.channelnames = tuple(channels)
    spec.channelformats = tuple(oiio.TypeDesc(t) for t in types)
    spec.attribute("compression", "zip")
    # no write time in the header (OpenImageIO adds one unless told): the same inputs give the same bytes
    spec.attribute("DateTime", "")
    for key, value in (attributes or {}).items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], oiio.TypeDesc):
            spec.attribute(key, value[0], value[1])
        else:
            spec.attribute(key, value)
    with atomic_path(path) as tmp:
        out = oiio.ImageOutput.create(str(tmp))
        if out is None or not out.open(str(tmp), spec):
            raise RelitIOError(f"{path}: cannot open for writing ({oiio.geterror()})")
        ok = out.write_image(pixels)
        error = out.geterror()
        out.close()
        if not ok:
            raise RelitIOError(f"{path}: writing failed ({error})")
    return Path(path)


def write_rgba(path: str | Path,
               rgb: np.ndarray,    # [H, W, 3] premultiplied scene-linear
               alpha: np.ndarray,  # [H, W]
               attributes: dict | None = None) -> Path:
    """A plain half-float RGBA EXR (plates, flat-lit and ground-truth images)."""
    return write_exr(path, np.concatenate([rgb, alpha[..., None]], axis=-1), ["R", "G", "B", "A"],
                     attributes=attributes)
