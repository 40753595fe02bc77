"""Capture sets (DESIGN.md contract 2): ``manifest.json`` plus EXR images with alpha.

Synthetic subjects and real captures use this one format::

    {
      "format": "relit-capture", "version": 1,
      "subject": "face-0007",                     # subject id (bundles are subject-specific)
      "colour_space": "lin_rec709",               # working space of the images
      "cameras": [{"name": "cam00", "width": 128, "height": 128,
                   "K": [[...3x3...]], "c2w": [[...4x4, Blender convention...]]}],
      "stage": {"layout": {...StageLayout JSON: names, directions (world), solid_angles...},
                "irradiance": [[r, g, b], ...]},  # W/m² each stage light delivers at the subject
      "frames": [{"frame": 1, "expression": "neutral"}, ...],
      "images": {"flat": "flat/{camera}/flat.{frame:04d}.exr",   # R, G, B, A
                 "olat": "olat/{camera}/olat.{frame:04d}.exr"},  # A + light_<name>.R/G/B per light
      "hdri": [{"name": "forest_r030", "environment": {...Environment JSON...},
                "images": "hdri/forest_r030/{camera}/hdri.{frame:04d}.exr"}],  # optional ground truth
      "extra": {...}                              # producer provenance, free-form
    }

Image paths are templates relative to the manifest's folder with the fields
``{camera}`` and ``{frame}``.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ValidationError
from ..io.atomic import atomic_write_text
from ..lighting.layout import StageLayout, layout_from_json
from ..lighting.rig import Environment, environment_from_json
from ..validation import as_numbers, check_fields, load_json

MANIFEST = "manifest.json"
FORMAT = "relit-capture"
VERSION = 1


@dataclass(frozen=True)
class Camera:
    name: str            # unique camera name, used in image paths
    width: int           # image size in pixels
    height: int
    K: np.ndarray        # [3, 3] intrinsics, pixels, origin at the top-left pixel corner, +y down
    c2w: np.ndarray      # [4, 4] camera-to-world, Blender/OpenGL convention (looks along -Z)

    def to_json(self) -> dict:
        return {"name": self.name, "width": self.width, "height": self.height,
                "K": np.asarray(self.K).tolist(), "c2w": np.asarray(self.c2w).tolist()}


@dataclass(frozen=True)
class Frame:
    frame: int           # frame number (may start at 1001, may have gaps)
    expression: str = "neutral"  # expression label (held out by label in validation)


@dataclass(frozen=True)
class HdriRender:
    name: str                  # unique name of this ground-truth lighting
    environment: Environment   # the HDRI and rotation it was rendered under
    images: str                # path template with {camera} and {frame}


@dataclass
class CaptureManifest:
    subject: str                     # subject id
    cameras: list[Camera]            # the views
    layout: StageLayout              # stage light directions (world) and solid angles
    irradiance: np.ndarray           # [N, 3] W/m² each stage light delivers at the subject
    frames: list[Frame]              # frames in order
    flat_images: str                 # template of flat-lit images
    olat_images: str                 # template of OLAT files (one layer per stage light); "" when none
    colour_space: str = "lin_rec709"  # working space of every image
    hdri: list[HdriRender] = field(default_factory=list)  # optional HDRI ground-truth renders
    extra: dict = field(default_factory=dict)  # producer provenance
    landmark_images: str = ""        # template of face-landmark files (JSON, core.data.capture.read_landmarks);
                                     # "" when none (relit synth records its faces' exact landmarks)

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "version": VERSION, "subject": self.subject,
            "colour_space": self.colour_space,
            "cameras": [c.to_json() for c in self.cameras],
            "stage": {"layout": self.layout.to_json(), "irradiance": np.asarray(self.irradiance).tolist()},
            "frames": [{"frame": f.frame, "expression": f.expression} for f in self.frames],
            "images": {"flat": self.flat_images, "olat": self.olat_images,
                       **({"landmarks": self.landmark_images} if self.landmark_images else {})},
            "hdri": [{"name": h.name, "images": h.images,
                      "environment": {"path": h.environment.path, "rotation": list(h.environment.rotation),
                                      "intensity": h.environment.intensity}} for h in self.hdri],
            "extra": self.extra,
        }

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / MANIFEST
        atomic_write_text(path, json.dumps(self.to_json(), indent=1) + "\n")
        return path

    @classmethod
    def from_json(cls, data: dict, source: str) -> "CaptureManifest":
        """Validate a manifest; every error names the entry (``cameras[3].K``)."""
        check_fields(data, source, {"format", "version", "subject", "colour_space", "cameras", "stage",
                               "frames", "images", "hdri", "extra"},
                required=("format", "version", "subject", "cameras", "stage", "frames", "images"))
        if data["format"] != FORMAT:
            raise ValidationError(f"{source}: format: expected {FORMAT!r}, got {data['format']!r}")
        if data["version"] != VERSION:
            raise ValidationError(f"{source}: version: {data['version']!r} is not supported (this relit reads {VERSION})")
        cameras = [_camera(c, f"{source}: cameras[{i}]") for i, c in enumerate(_list(data, "cameras", source))]
        _unique([c.name for c in cameras], f"{source}: cameras")
        stage = data["stage"]
        check_fields(stage, f"{source}: stage", {"layout", "irradiance"}, required=("layout", "irradiance"))
        try:
            layout = layout_from_json(stage["layout"], source=f"{source}: stage.layout")
        except ValidationError as e:
            raise ValidationError(str(e)) from None
        irradiance = as_numbers(stage["irradiance"], f"{source}: stage.irradiance", (len(layout), 3))
        frames = []
        for i, f in enumerate(_list(data, "frames", source)):
            check_fields(f, f"{source}: frames[{i}]", {"frame", "expression"}, required=("frame",))
            if not isinstance(f["frame"], int) or isinstance(f["frame"], bool):
                raise ValidationError(f"{source}: frames[{i}].frame: must be an integer")
            frames.append(Frame(f["frame"], str(f.get("expression", "neutral"))))
        _unique([f.frame for f in frames], f"{source}: frames")
        images = data["images"]
        check_fields(images, f"{source}: images", {"flat", "olat", "landmarks"}, required=("flat", "olat"))
        for key in ("flat", "olat", "landmarks"):
            if key in images:
                _template(images[key], f"{source}: images.{key}")
        hdri = []
        for i, h in enumerate(data.get("hdri", [])):
            where = f"{source}: hdri[{i}]"
            check_fields(h, where, {"name", "environment", "images"}, required=("name", "environment", "images"))
            hdri.append(HdriRender(str(h["name"]), environment_from_json(h["environment"], f"{where}.environment"),
                                   _template(h["images"], f"{where}.images")))
        _unique([h.name for h in hdri], f"{source}: hdri")
        return cls(str(data["subject"]), cameras, layout, irradiance, frames, images["flat"], images["olat"],
                   str(data.get("colour_space", "lin_rec709")), hdri, dict(data.get("extra", {})),
                   images.get("landmarks", ""))


def _list(data: dict, key: str, source: str) -> list:
    value = data[key]
    if not isinstance(value, list) or not value:
        raise ValidationError(f"{source}: {key}: must be a non-empty list")
    return value


def _unique(values: list, where: str) -> None:
    dup = sorted({str(v) for v in values if values.count(v) > 1})
    if dup:
        raise ValidationError(f"{where}: names must be unique, repeated: {dup}")


def _template(value, where: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{where}: must be a path template string")
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError as e:
        raise ValidationError(f"{where}: bad template {value!r} ({e})") from None
    unknown = fields - {"camera", "frame"}
    if unknown:
        raise ValidationError(f"{where}: unknown template field(s) {sorted(unknown)}; use {{camera}} and {{frame}}")
    return value


def _camera(item, where: str) -> Camera:
    check_fields(item, where, {"name", "width", "height", "K", "c2w"}, required=("name", "width", "height", "K", "c2w"))
    for key in ("width", "height"):
        if not isinstance(item[key], int) or item[key] <= 0:
            raise ValidationError(f"{where}.{key}: must be a positive integer")
    K = as_numbers(item["K"], f"{where}.K", (3, 3))
    c2w = as_numbers(item["c2w"], f"{where}.c2w", (4, 4))
    if abs(np.linalg.det(c2w[:3, :3]) - 1.0) > 1e-3:
        raise ValidationError(f"{where}.c2w: the rotation part is not a rotation (det {np.linalg.det(c2w[:3, :3]):.4f})")
    return Camera(str(item["name"]), item["width"], item["height"], K, c2w)


def load_manifest(folder: str | Path) -> CaptureManifest:
    path = Path(folder) / MANIFEST
    return CaptureManifest.from_json(load_json(path, f"a capture set is a folder with a {MANIFEST}"), str(path))
