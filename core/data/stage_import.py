"""``relit import-stage``: a light stage's own files -> a relit capture set.

A stage description (``stage.json``, format ``relit-stage``; docs/capture_sets.md) names the lights,
the cameras and where the OLAT images are::

    {
      "format": "relit-stage", "version": 1,
      "subject": "actor-01", "colour_space": "lin_rec709",
      "licence": "captured 2026 by ..., for ... only",       # recorded in the manifest and bundles
      "lights": [{"name": "L000", "direction": [x, y, z]},    # from the subject to the light (world, +Z up)
                 {"name": "L001", "position": [x, y, z]}, ...],   # or a position (from "centre")
      "centre": [0, 0, 0],                                    # the subject's place, for positions
      "irradiance": [[r, g, b], ...] | [e, ...] | null,       # W/m2 each light delivers; null: calibrate
      "calibration": {"card": {"camera": "cam00", "box": [x0, y0, x1, y1], "albedo": 0.8,
                               "normal": [x, y, z]}},          # a flat white/grey card in frame
      "floor_elevation_deg": null,                            # lowest light the stage has (cells stop there)
      "convention": "opencv" | "blender",                     # how c2w / w2c below are given
      "cameras": [{"name": "cam00", "width": 1024, "height": 1024,
                   "K": [[...]] | "lens_mm": 50, "sensor_width_mm": 36,
                   "c2w": [[...4x4...]] | "w2c": [[...4x4...]]}],
      "frames": [1, 2, ...],                                  # optional: default every frame of the first light
      "images": {"olat": "raw/{camera}/{light}.{frame:04d}.exr",   # a file per light ...
                 "olat_layer": null,                          # ... or one multi-layer file, layer "{light}"
                 "flat": null,                                # a flat-lit of its own, or null: the OLAT sum
                 "alpha": null}                               # a matte template, or null: the OLATs' A
    }

Light cells (the solid angles that weight an HDRI's projection) are always the spherical Voronoi
cells of the directions, clipped at the floor, so they tile what the stage covers.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import RelitIOError, ValidationError
from ..io.exr import read_channels, read_info, write_rgba
from ..lighting.camera import opencv_w2c_to_blender_c2w
from ..lighting.layout import StageLayout, voronoi_solid_angles
from ..validation import as_number, as_numbers, check_fields, load_json
from .manifest import MANIFEST, Camera, CaptureManifest, Frame
from .capture import CaptureSet, write_olats

FORMAT = "relit-stage"
VERSION = 1
FLAT, OLAT = "flat/{camera}/flat.{frame:04d}.exr", "olat/{camera}/olat.{frame:04d}.exr"
SUM_TOLERANCE = 0.02  # an imported flat-lit further than this (mean relative) from the OLATs' sum is warned about


@dataclass
class StageDescription:
    subject: str                 # subject id written into the manifest
    colour_space: str            # working space of the images
    licence: str                 # the capture's terms ("" when not stated)
    names: list[str]             # [N] light names
    directions: np.ndarray       # [N, 3] unit, world, from the subject towards the light
    irradiance: np.ndarray | None  # [N, 3] W/m2, or None (calibrate from the card)
    card: dict | None            # calibration card: camera, box, albedo, normal
    floor_z: float | None        # lowest z the stage covers
    cameras: list[Camera]        # Blender convention
    frames: list[int] | None     # frames to import (None: discover)
    olat: str                    # template with {camera}, {frame} and, per-light files, {light}
    olat_layer: str | None       # layer template with {light} in a multi-layer file, or None
    flat: str | None             # flat-lit template, or None (the OLATs' sum)
    alpha: str | None            # matte template, or None (the OLATs' A)
    source: Path                 # the stage.json, for messages and relative paths


def load_stage(path: str | Path) -> StageDescription:
    """Parse and validate a stage description; errors name the file and the entry."""
    path = Path(path)
    src = str(path)
    data = load_json(path, "give the stage description JSON (docs/capture_sets.md)")
    check_fields(data, src, {"format", "version", "subject", "colour_space", "licence", "lights", "centre",
                             "irradiance", "calibration", "floor_elevation_deg", "convention", "cameras", "frames",
                             "images"},
                 required=("format", "version", "subject", "lights", "convention", "cameras", "images"))
    if data["format"] != FORMAT or data["version"] != VERSION:
        raise ValidationError(f"{src}: format/version: expected {FORMAT!r} version {VERSION}")
    lights = data["lights"]
    if not isinstance(lights, list) or not lights:
        raise ValidationError(f"{src}: lights: must be a non-empty list")
    centre = as_numbers(data.get("centre", [0, 0, 0]), f"{src}: centre", (3,))
    names, dirs = [], []
    for i, light in enumerate(lights):
        where = f"{src}: lights[{i}]"
        check_fields(light, where, {"name", "direction", "position"}, required=("name",))
        if not isinstance(light["name"], str) or not light["name"]:
            raise ValidationError(f"{where}.name: must be a non-empty string")
        if ("direction" in light) == ("position" in light):
            raise ValidationError(f"{where}: give either direction or position")
        v = (as_numbers(light["direction"], f"{where}.direction", (3,)) if "direction" in light
             else as_numbers(light["position"], f"{where}.position", (3,)) - centre)
        if np.linalg.norm(v) < 1e-9:
            raise ValidationError(f"{where}: the direction has zero length (a position at the centre?)")
        names.append(light["name"])
        dirs.append(v / np.linalg.norm(v))
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValidationError(f"{src}: lights: names must be unique, repeated: {dup}")
    irradiance = None
    if data.get("irradiance") is not None:
        e = np.asarray(data["irradiance"], dtype=object)
        shape = (len(names),) if e.ndim == 1 else (len(names), 3)
        irradiance = as_numbers(data["irradiance"], f"{src}: irradiance", shape)
        irradiance = np.repeat(irradiance[:, None], 3, 1) if irradiance.ndim == 1 else irradiance
        if (irradiance <= 0).any():
            raise ValidationError(f"{src}: irradiance: every light must deliver a positive irradiance")
    card = None
    if data.get("calibration") is not None:
        cal = data["calibration"]
        check_fields(cal, f"{src}: calibration", {"card"}, required=("card",))
        card = cal["card"]
        check_fields(card, f"{src}: calibration.card", {"camera", "box", "albedo", "normal"},
                     required=("camera", "box", "albedo", "normal"))
        as_numbers(card["box"], f"{src}: calibration.card.box", (4,))
        as_number(card["albedo"], f"{src}: calibration.card.albedo", 1e-3, 1.0)
        as_numbers(card["normal"], f"{src}: calibration.card.normal", (3,))
    if irradiance is None and card is None:
        raise ValidationError(f"{src}: give each light's irradiance (W/m2), or a calibration card to measure it "
                              "(docs/capture_sets.md, calibration)")
    convention = data["convention"]
    if convention not in ("opencv", "blender"):
        raise ValidationError(f"{src}: convention: {convention!r} is not 'opencv' or 'blender'")
    cameras = [_camera(c, f"{src}: cameras[{i}]", convention) for i, c in enumerate(_nonempty(data, "cameras", src))]
    floor = data.get("floor_elevation_deg")
    floor_z = None if floor is None else math.sin(math.radians(as_number(floor, f"{src}: floor_elevation_deg",
                                                                          -90, 90)))
    images = data["images"]
    check_fields(images, f"{src}: images", {"olat", "olat_layer", "flat", "alpha"}, required=("olat",))
    layer = images.get("olat_layer")
    olat = _template(images["olat"], f"{src}: images.olat", {"camera", "frame"} | ({"light"} if not layer else set()))
    if layer is not None:
        _template(layer, f"{src}: images.olat_layer", {"light"})
    elif "{light}" not in olat:
        raise ValidationError(f"{src}: images.olat: a file per light needs {{light}} in the template (or give "
                              "olat_layer for multi-layer files)")
    flat = images.get("flat") and _template(images["flat"], f"{src}: images.flat", {"camera", "frame"})
    alpha = images.get("alpha") and _template(images["alpha"], f"{src}: images.alpha", {"camera", "frame"})
    frames = data.get("frames")
    if frames is not None and (not isinstance(frames, list) or not frames
                               or not all(isinstance(f, int) and not isinstance(f, bool) for f in frames)):
        raise ValidationError(f"{src}: frames: must be a non-empty list of integers")
    return StageDescription(str(data["subject"]), str(data.get("colour_space", "lin_rec709")),
                            str(data.get("licence", "")), names, np.array(dirs), irradiance, card, floor_z,
                            cameras, frames, olat, layer, flat, alpha, path)


def _nonempty(data: dict, key: str, src: str) -> list:
    if not isinstance(data[key], list) or not data[key]:
        raise ValidationError(f"{src}: {key}: must be a non-empty list")
    return data[key]


def _template(value, where: str, allowed: set[str]) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{where}: must be a path template string")
    try:
        fields = {f.split(":")[0] for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError as e:
        raise ValidationError(f"{where}: bad template {value!r} ({e})") from None
    if unknown := fields - allowed:
        raise ValidationError(f"{where}: unknown field(s) {sorted(unknown)}; this template takes "
                              f"{sorted('{' + a + '}' for a in allowed)}")
    return value


def _camera(item, where: str, convention: str) -> Camera:
    check_fields(item, where, {"name", "width", "height", "K", "lens_mm", "sensor_width_mm", "c2w", "w2c"},
                 required=("name", "width", "height"))
    for key in ("width", "height"):
        if not isinstance(item[key], int) or isinstance(item[key], bool) or item[key] <= 0:
            raise ValidationError(f"{where}.{key}: must be a positive integer")
    w, h = item["width"], item["height"]
    if "K" in item:
        K = as_numbers(item["K"], f"{where}.K", (3, 3))
    elif "lens_mm" in item and "sensor_width_mm" in item:
        f = as_number(item["lens_mm"], f"{where}.lens_mm", 1e-3) * w / as_number(
            item["sensor_width_mm"], f"{where}.sensor_width_mm", 1e-3)
        K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], dtype=np.float64)
    else:
        raise ValidationError(f"{where}: no intrinsics; give K (3x3, pixels) or lens_mm and sensor_width_mm")
    if ("c2w" in item) == ("w2c" in item):
        raise ValidationError(f"{where}: give either c2w or w2c")
    m = as_numbers(item.get("c2w", item.get("w2c")), f"{where}.{'c2w' if 'c2w' in item else 'w2c'}", (4, 4))
    if abs(np.linalg.det(m[:3, :3]) - 1.0) > 1e-3:
        raise ValidationError(f"{where}: the matrix's rotation part is not a rotation")
    if "c2w" in item:
        c2w = m if convention == "blender" else opencv_w2c_to_blender_c2w(np.linalg.inv(m))
    else:
        c2w = np.linalg.inv(m) if convention == "blender" else opencv_w2c_to_blender_c2w(m)
    return Camera(str(item["name"]), w, h, K, c2w)


def _olat_images(stage: StageDescription, camera: Camera, frame: int) -> tuple[np.ndarray, np.ndarray | None]:
    """([N, H, W, 3], [H, W] or None) of one view, in the description's light order."""
    root = stage.source.parent
    out, alpha = [], None
    for name in stage.names:
        if stage.olat_layer is None:
            path = root / stage.olat.format(camera=camera.name, frame=frame, light=name)
            layer = ""
        else:
            path = root / stage.olat.format(camera=camera.name, frame=frame)
            layer = stage.olat_layer.format(light=name)
        if not path.is_file():
            raise RelitIOError(f"{path}: not found (light {name}, camera {camera.name}, frame {frame}); "
                               f"the stage description {stage.source.name} names it")
        info = read_info(path)
        have = info.layers()
        if layer not in have or not {"R", "G", "B"} <= set(have[layer]):
            raise RelitIOError(f"{path}: no layer {layer or '(beauty)'!r} with R, G, B for light {name}; "
                               f"the file has {sorted(have)[:8]}")
        part = info.parts[0]
        if (part.width, part.height) != (camera.width, camera.height):
            raise RelitIOError(f"{path}: {part.width}x{part.height}, camera {camera.name} is "
                               f"{camera.width}x{camera.height}")
        prefix = f"{layer}." if layer else ""
        out.append(read_channels(path, [f"{prefix}{c}" for c in "RGB"]))
        if alpha is None and "A" in have.get("", []):
            alpha = read_channels(path, ["A"])[..., 0]
    return np.stack(out), alpha


def _discover_frames(stage: StageDescription) -> list[int]:
    import re

    cam, name = stage.cameras[0].name, stage.names[0]
    pattern = stage.olat.replace("{light}", name) if stage.olat_layer is None else stage.olat
    probe = pattern.format(camera=cam, frame=10 ** 9 + 7, light=name)
    head, _, tail = probe.partition(str(10 ** 9 + 7))
    folder = (stage.source.parent / head).parent
    rx = re.compile(re.escape(Path(head).name) + r"(\d+)" + re.escape(tail) + "$")
    frames = sorted(int(m.group(1)) for p in folder.glob("*") if (m := rx.match(p.name)))
    if not frames:
        raise RelitIOError(f"{folder}: no OLAT file of light {name}, camera {cam} matches {pattern}; check "
                           f"images.olat in {stage.source.name}")
    return frames


def calibrate_card(olats: np.ndarray,          # [N, H, W, 3] one view's OLATs
                   directions: np.ndarray,     # [N, 3] world, unit
                   box: tuple[int, int, int, int], albedo: float,
                   normal: np.ndarray,         # [3] the card's world normal
                   ) -> tuple[np.ndarray, np.ndarray]:  # ([N, 3] irradiance W/m2, [N] cos(theta_i))
    """Each light's irradiance from a Lambertian card of known albedo: the card's radiance under light i
    is albedo/pi * E_i * cos(theta_i), so E_i = pi * L_i / (albedo * cos(theta_i)). Lights with a small
    cos (behind the card, or grazing) cannot be measured this way: the caller refuses them."""
    x0, y0, x1, y1 = (int(v) for v in box)
    radiance = olats[:, y0:y1, x0:x1].reshape(len(olats), -1, 3).mean(1)
    n = np.asarray(normal, np.float64) / np.linalg.norm(normal)
    cos = directions @ n
    return np.pi * radiance / (albedo * np.maximum(cos, 1e-9)[:, None]), cos


@dataclass
class ImportReport:
    capture: CaptureSet          # the capture set written
    flat: str                    # "imported" or "sum of the OLATs"
    flat_vs_sum: float | None    # mean relative difference of an imported flat-lit from the OLATs' sum
    calibration: str             # how the irradiance was known
    warnings: list[str]          # what the user should look at


def import_stage(stage_path: str | Path, out: str | Path) -> ImportReport:
    """Write the capture set of a stage description into ``out`` (which must not hold one yet).
    Everything is read and checked before the first file is written."""
    stage = load_stage(stage_path)
    out = Path(out)
    if (out / MANIFEST).exists():
        raise ValidationError(f"{out}: already holds a capture set; give a new folder")
    if out.exists() and not out.is_dir():
        raise ValidationError(f"-o {out}: is a file; a capture set is a folder")
    frames = stage.frames or _discover_frames(stage)
    views = {}
    for cam in stage.cameras:
        for frame in frames:
            views[cam.name, frame] = _olat_images(stage, cam, frame)
    irradiance, calibration, extra_cal = stage.irradiance, "given in the stage description", {}
    if irradiance is None:
        card = stage.card
        cams = {c.name for c in stage.cameras}
        if card["camera"] not in cams:
            raise ValidationError(f"{stage.source}: calibration.card.camera {card['camera']!r} is not one of "
                                  f"{sorted(cams)}")
        irradiance, cos = calibrate_card(views[card["camera"], frames[0]][0], stage.directions, card["box"],
                                         float(card["albedo"]), np.asarray(card["normal"], np.float64))
        if (bad := [n for n, c in zip(stage.names, cos) if c <= 0.05]):
            raise ValidationError(f"{stage.source}: calibration.card: light(s) {bad[:6]} shine on the card from "
                                  "behind or at grazing angle; turn the card towards them or give their irradiance")
        calibration = f"white card, albedo {card['albedo']}, camera {card['camera']}, box {card['box']}"
        extra_cal = {"card": card}
    layout = StageLayout("imported", stage.directions, voronoi_solid_angles(stage.directions, stage.floor_z),
                         tuple(stage.names), stage.floor_z, {"source": str(stage.source)})
    differences = []
    root = stage.source.parent
    for (cam_name, frame), (olats, alpha) in views.items():
        if stage.alpha:
            alpha = read_channels(root / stage.alpha.format(camera=cam_name, frame=frame), ["A"])[..., 0]
        if alpha is None:
            raise RelitIOError(f"{stage.source}: the OLAT files of camera {cam_name} carry no alpha (A); give "
                               "images.alpha (a matte per view)")
        flat = olats.sum(0)
        if stage.flat:
            given = read_channels(root / stage.flat.format(camera=cam_name, frame=frame), ["R", "G", "B"])
            differences.append(float(np.abs(given - flat).mean() / max(float(np.abs(flat).mean()), 1e-12)))
            flat = given
        views[cam_name, frame] = (olats, alpha, flat)
    for (cam_name, frame), (olats, alpha, flat) in views.items():
        write_olats(out / OLAT.format(camera=cam_name, frame=frame), layout, olats, alpha, irradiance,
                    stage.colour_space)
        write_rgba(out / FLAT.format(camera=cam_name, frame=frame), flat, alpha)
    diff = max(differences) if differences else None
    manifest = CaptureManifest(stage.subject, stage.cameras, layout, irradiance, [Frame(f) for f in frames],
                               FLAT, OLAT, stage.colour_space,
                               extra={"generator": "relit import-stage", "licence": stage.licence,
                                      "stage_description": str(stage.source), "calibration": calibration,
                                      **extra_cal, "flat": "imported" if stage.flat else "sum of the OLATs",
                                      "flat_vs_olat_sum": diff})
    manifest.save(out)
    warnings = []
    if diff is not None and diff > SUM_TOLERANCE:
        warnings.append(f"the imported flat-lit differs from the sum of the OLATs by {100 * diff:.1f} % (more than "
                        f"{100 * SUM_TOLERANCE:.0f} %): lights missing from the OLATs, another exposure or a moving "
                        "subject? Training pins its relit images to the flat-lit; drop images.flat to use the sum")
    return ImportReport(CaptureSet(out), "imported" if stage.flat else "sum of the OLATs", diff, calibration,
                        warnings)

