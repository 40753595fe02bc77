"""Relit passes (DESIGN.md contract 3): one multi-layer EXR per frame.

Beauty in plain R, G, B, A; one layer per light or light group
``light_<name>.R/G/B``; the layers sum to the beauty, which is written from
their float32 sum. Colour channels half, data channels float32, ZIP,
scene-linear, premultiplied. Header metadata records how the frame was made.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .._version import __version__, git_hash
from ..errors import ValidationError
from .colour import working_space
from .exr import read_channels, read_info, write_exr
from .naming import LIGHT_PREFIX, light_layer_names

META_PREFIX = "relit/"


@dataclass
class PassMetadata:
    rig: dict                    # the LightRig JSON the frame was lit with
    bundle_id: str = ""          # model bundle identifier
    bundle_sha256: str = ""      # hash of what the bundle predicts with (core.model.bundle.bundle_sha256)
    objective: str = ""          # what the bundle's network was trained for (refine, diffusion, flow)
    sampler: str = ""            # e.g. "ddim"
    steps: int = 0               # sampler steps
    consistency: str = "none"    # stage predictions ratio-corrected to sum to the input ("ratio") or not
    guidance: dict = field(default_factory=dict)  # guidance scales by name (image, lighting, text)
    seed: int = 0                # noise seed
    samples: int = 1             # samples averaged per light
    noise: str = "fixed"         # initial noise over a sequence: fixed | flow (core.jobs.NOISE_MODES)
    temporal: float = 0.0        # share of the previous frame carried along the plate's flow (0: no blending)
    input_hash: str = ""         # hash of everything the frame depends on (resume skips matching frames)
    colour_space: str = "lin_rec709"  # working space key (core.io.colour.WORKING_SPACES)
    basis: list[dict] | None = None   # OLAT-basis files: per layer {layer, direction, world_direction, size, solid_angle}
    stage: dict | None = None         # OLAT-basis files: the stage layout JSON (re-weighting needs its cells)
    camera_c2w: list | None = None    # OLAT-basis files: Blender camera-to-world the directions are seen from
    delighter: dict | None = None     # {id, sha256} of the delighter that made the plate flat-lit before the
                                      # bundle relit it (two-stage); None: the plate was relit as it is
    version: str = __version__   # relit version that wrote the file
    git: str = field(default_factory=git_hash)  # relit commit that wrote the file


@dataclass
class RelitPasses:
    layers: dict[str, np.ndarray]  # light (or group) name -> [H, W, 3] premultiplied scene-linear
    alpha: np.ndarray              # [H, W] matte in [0, 1]
    data: dict[str, np.ndarray] = field(default_factory=dict)  # extra float32 layers -> [H, W, C]

    def beauty(self) -> np.ndarray:  # [H, W, 3] float32 sum of the light layers
        total = np.zeros(self.alpha.shape + (3,), dtype=np.float32)
        for img in self.layers.values():
            total += img.astype(np.float32)
        return total


HALF_MAX = 65504.0  # the largest finite half-float value


def _check(passes: RelitPasses) -> tuple[int, int]:
    if not passes.layers:
        raise ValidationError("relit passes need at least one light layer")
    h, w = passes.alpha.shape
    for name, img in list(passes.layers.items()) + list(passes.data.items()):
        if img.shape[:2] != (h, w):
            raise ValidationError(f"layer {name!r} is {img.shape[1]}x{img.shape[0]}, the matte is {w}x{h}")
        if not np.all(np.isfinite(img)):
            raise ValidationError(f"layer {name!r} has NaN or Inf pixels; nothing was written")
    return h, w


def write_passes(path: str | Path, passes: RelitPasses, meta: PassMetadata, precision: str = "half") -> Path:
    """Write a relit pass file atomically; returns its path. ``precision`` of the light layers:
    half (the contract) or float (intermediate files a merge sums, e.g. a farm unit's light chunk)."""
    import OpenImageIO as oiio

    if precision not in ("half", "float"):
        raise ValidationError(f"precision {precision!r}: use half or float")
    h, w = _check(passes)
    layer_of = light_layer_names(list(passes.layers))
    names, formats, columns = ["R", "G", "B", "A"], ["half"] * 4, []
    beauty = passes.beauty()
    halves = [("beauty", beauty)] + (list(passes.layers.items()) if precision == "half" else [])
    for name, img in halves:  # a half-float channel turns anything larger into Inf
        if (peak := float(np.abs(img).max())) > HALF_MAX:
            raise ValidationError(f"layer {name!r} reaches {peak:.3g}, beyond what a half-float EXR holds "
                                  f"({HALF_MAX:g}); nothing was written")
    columns += [beauty[..., 0], beauty[..., 1], beauty[..., 2], passes.alpha.astype(np.float32)]
    for light, img in passes.layers.items():
        for c, comp in enumerate("RGB"):
            names.append(f"{layer_of[light]}.{comp}")
            formats.append(precision)
            columns.append(img[..., c].astype(np.float32))
    for layer, img in passes.data.items():
        img = img.reshape(h, w, -1)
        comps = "XYZW"[: img.shape[2]] if img.shape[2] > 1 else "V"
        for c, comp in enumerate(comps):
            names.append(f"{layer}.{comp}")
            formats.append("float")
            columns.append(img[..., c].astype(np.float32))

    attributes: dict = {
        "oiio:ColorSpace": meta.colour_space,
        "chromaticities": (oiio.TypeDesc("float[8]"), working_space(meta.colour_space).chromaticities),
    }
    for key, value in asdict(meta).items():
        if value is not None:
            attributes[META_PREFIX + key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return write_exr(path, np.stack(columns, axis=-1), names, formats, attributes)


def read_metadata(path: str | Path) -> dict:
    """The ``relit/*`` header fields of a pass file, JSON values decoded."""
    attrs = read_info(path).parts[0].attributes
    out = {}
    for key, value in attrs.items():
        if key.startswith(META_PREFIX):
            try:
                out[key[len(META_PREFIX):]] = json.loads(value)
            except (TypeError, json.JSONDecodeError):
                out[key[len(META_PREFIX):]] = value
    return out


def read_pass_metadata(path: str | Path) -> PassMetadata:
    """A pass file's header as the metadata it was written from (text fields as written, the others
    decoded), to write another file from it (a farm merge); version and git are this relit's."""
    attrs = read_info(path).parts[0].attributes
    values = {}
    for f in fields(PassMetadata):
        raw = attrs.get(META_PREFIX + f.name)
        if raw is None or f.name in ("version", "git"):
            continue
        try:
            values[f.name] = raw if f.type in ("str", str) else json.loads(raw)
        except (TypeError, json.JSONDecodeError):
            raise ValidationError(f"{path}: header field {META_PREFIX}{f.name} is not what relit writes ({raw!r}); "
                                  "rerun the job that wrote the file") from None
    if "rig" not in values:
        raise ValidationError(f"{path}: no {META_PREFIX}rig in its header: not a relit pass file; rerun the job "
                              "that wrote it")
    return PassMetadata(**values)


def read_passes(path: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(light layers by layer name -> [H, W, 3], beauty [H, W, 3], alpha [H, W]) of a pass file."""
    layers = [layer for layer in read_info(path).layers() if layer.startswith(LIGHT_PREFIX)]
    names = ["R", "G", "B", "A"] + [f"{layer}.{c}" for layer in layers for c in "RGB"]
    pixels = read_channels(path, names)
    return ({layer: pixels[..., 4 + 3 * i: 7 + 3 * i] for i, layer in enumerate(layers)},
            pixels[..., :3], pixels[..., 3])
