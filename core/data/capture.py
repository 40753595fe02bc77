"""Lazy reading of a capture set: images are read when asked for, one at a time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ValidationError
from ..io.atomic import atomic_write_text
from ..io.exr import read_channels
from ..io.naming import light_layer_name
from ..io.passes import PassMetadata, RelitPasses, write_passes
from ..lighting.layout import StageLayout
from .manifest import Camera, CaptureManifest, Frame, load_manifest


@dataclass(frozen=True)
class Image:
    rgb: np.ndarray    # [H, W, 3] float32, scene-linear, premultiplied
    alpha: np.ndarray  # [H, W] float32 matte


class CaptureSet:
    """A capture set on disk. ``CaptureSet(folder)`` validates the manifest only."""

    def __init__(self, folder: str | Path):
        self.root = Path(folder)
        self.manifest: CaptureManifest = load_manifest(self.root)

    def __repr__(self) -> str:
        m = self.manifest
        return (f"CaptureSet({str(self.root)!r}, subject={m.subject!r}, cameras={len(m.cameras)}, "
                f"frames={len(m.frames)}, lights={len(m.layout)})")

    def camera(self, name: str) -> Camera:
        for cam in self.manifest.cameras:
            if cam.name == name:
                return cam
        raise ValidationError(f"{self.root}: no camera {name!r}; cameras: {[c.name for c in self.manifest.cameras]}")

    def frame(self, number: int) -> Frame:
        for f in self.manifest.frames:
            if f.frame == number:
                return f
        raise ValidationError(f"{self.root}: no frame {number}; frames: {[f.frame for f in self.manifest.frames]}")

    def path(self, template: str, camera: str, frame: int) -> Path:
        self.camera(camera)
        self.frame(frame)
        return self.root / template.format(camera=camera, frame=frame)

    def flat(self, camera: str, frame: int) -> Image:
        px = read_channels(self.path(self.manifest.flat_images, camera, frame), ["R", "G", "B", "A"])
        return Image(px[..., :3], px[..., 3])

    def olat(self, camera: str, frame: int, light: str) -> Image:
        """One stage light's image (per unit of its recorded irradiance it is *not* divided)."""
        self._check_olats()
        if light not in self.manifest.layout.names:
            raise ValidationError(f"{self.root}: no stage light {light!r}")
        layer = light_layer_name(light)
        px = read_channels(self.path(self.manifest.olat_images, camera, frame),
                           ["A", f"{layer}.R", f"{layer}.G", f"{layer}.B"])
        return Image(px[..., 1:], px[..., 0])

    def olats(self, camera: str, frame: int) -> tuple[np.ndarray, np.ndarray]:  # ([N, H, W, 3], [H, W])
        """Every stage light's image of one view, in layout order, and the matte."""
        self._check_olats()
        names = ["A"] + [f"{light_layer_name(n)}.{c}" for n in self.manifest.layout.names for c in "RGB"]
        px = read_channels(self.path(self.manifest.olat_images, camera, frame), names)
        h, w = px.shape[:2]
        return px[..., 1:].reshape(h, w, -1, 3).transpose(2, 0, 1, 3), px[..., 0]

    def motion(self, camera: str, frame: int) -> tuple[np.ndarray, np.ndarray]:  # ([H, W, 2], [H, W, 2])
        """True motion of a synthetic flat-lit frame (Cycles' Vector pass): each pixel's offset to
        where it is in the previous and in the next frame, +x right, +y down."""
        path = self.path(self.manifest.flat_images, camera, frame)
        names = ["motion_prev.X", "motion_prev.Y", "motion_next.X", "motion_next.Y"]
        px = read_channels(path, names)
        return px[..., :2], px[..., 2:]

    def landmarks(self, camera: str, frame: int) -> np.ndarray | None:  # [468, 3] or None
        """The face's landmarks in one view (MediaPipe's format, :func:`read_landmarks`) when the set
        records them, else None."""
        if not self.manifest.landmark_images:
            return None
        return read_landmarks(self.path(self.manifest.landmark_images, camera, frame))

    def _check_olats(self) -> None:
        if not self.manifest.olat_images:
            raise ValidationError(f"{self.root}: this capture set has flat-lit images only (no OLATs); render one "
                                  "with OLATs to train a relighting model")

    def hdri(self, name: str, camera: str, frame: int) -> Image:
        for h in self.manifest.hdri:
            if h.name == name:
                px = read_channels(self.path(h.images, camera, frame), ["R", "G", "B", "A"])
                return Image(px[..., :3], px[..., 3])
        raise ValidationError(f"{self.root}: no HDRI render {name!r}; have {[h.name for h in self.manifest.hdri]}")

    def views(self) -> Iterator[tuple[Camera, Frame]]:
        """Every (camera, frame) pair, frames outermost (streaming order for sequences)."""
        for f in self.manifest.frames:
            for cam in self.manifest.cameras:
                yield cam, f

    def problems(self, limit: int = 20) -> list[str]:
        """What is wrong with the files the manifest names, read from their headers (at most ``limit``):
        missing files, images of another size than their camera, flat-lit images without alpha, OLAT
        files lacking a stage light's layer or alpha."""
        from ..io.exr import read_info

        m, out = self.manifest, []
        wanted = {light_layer_name(n) for n in m.layout.names}
        for cam, f in self.views():
            checks = [(m.flat_images, {""}, "flat-lit")] + ([(m.olat_images, wanted | {""}, "OLAT")]
                                                           if m.olat_images else [])
            for template, layers, what in checks:
                path = self.path(template, cam.name, f.frame)
                if not path.exists():
                    out.append(f"{path}: missing ({what} image of camera {cam.name}, frame {f.frame})")
                    continue
                info = read_info(path)
                part = info.parts[0]
                if (part.width, part.height) != (cam.width, cam.height):
                    out.append(f"{path}: {part.width}x{part.height}, camera {cam.name} is {cam.width}x{cam.height}")
                have = info.layers()
                lacking = sorted(layers - set(have))
                if lacking:
                    out.append(f"{path}: lacks layer(s) {lacking[:4]}{' ...' if len(lacking) > 4 else ''} "
                               f"({len(lacking)} of the {what} layers the manifest names)")
                if "A" not in have.get("", []):
                    out.append(f"{path}: no alpha (A) channel; capture images carry the subject's matte")
            if len(out) >= limit:
                break
        return out[:limit]

    def missing_files(self) -> list[Path]:
        """Image files the manifest names that are not on disk."""
        out = []
        for cam, f in self.views():
            templates = [self.manifest.flat_images, self.manifest.olat_images, self.manifest.landmark_images] + [
                h.images for h in self.manifest.hdri]
            out += [p for t in templates if t and not (p := self.path(t, cam.name, f.frame)).exists()]
        return out


def write_olats(path: str | Path,
                layout: StageLayout,
                olats: np.ndarray,       # [N, H, W, 3] premultiplied scene-linear, layout order
                alpha: np.ndarray,       # [H, W]
                irradiance: np.ndarray,  # [N, 3] W/m² each light delivered at the subject
                colour_space: str = "lin_rec709") -> Path:
    """One view's OLAT file: a layer per stage light, its world direction and cell in the header."""
    basis = [{"layer": light_layer_name(n), "direction": d.tolist(), "frame": "world", "size": 0.0,
              "solid_angle": float(o), "irradiance": e.tolist()}
             for n, d, o, e in zip(layout.names, layout.directions, layout.solid_angles, irradiance)]
    passes = RelitPasses(dict(zip(layout.names, olats)), alpha)
    return write_passes(path, passes, PassMetadata(rig={}, colour_space=colour_space, basis=basis))


LANDMARKS_FORMAT = "relit.landmarks"
LANDMARK_COUNT = 468  # MediaPipe's face mesh


def write_landmarks(path: str | Path, points: np.ndarray) -> Path:  # points [468, 3]
    """One view's face landmarks: x right, y down in pixels from the image's top-left corner, z a depth
    in the same units, smaller nearer the camera (MediaPipe's convention, core.portrait.face_geometry)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": LANDMARKS_FORMAT, "convention": "x right, y down (pixels from the top-left corner), "
            "z depth in pixels, smaller nearer; MediaPipe face-mesh order",
            "points": np.round(np.asarray(points, np.float64), 4).tolist()}
    atomic_write_text(path, json.dumps(data) + "\n")
    return path


def read_landmarks(path: str | Path) -> np.ndarray:  # [468, 3] float64
    """A landmark file written by :func:`write_landmarks`; a missing or malformed one is an error naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        points = np.asarray(data["points"], np.float64)
    except FileNotFoundError:
        raise ValidationError(f"{path}: missing (the capture set's manifest names face landmarks; rerun the same "
                              "`relit synth` command to write them)") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValidationError(f"{path}: not a landmark file ({e}); rerun the same `relit synth` command to "
                              "write it again") from None
    if data.get("format") != LANDMARKS_FORMAT or points.shape != (LANDMARK_COUNT, 3) or not np.isfinite(points).all():
        raise ValidationError(f"{path}: expected {LANDMARKS_FORMAT!r} with {LANDMARK_COUNT} finite [x, y, z] points")
    return points


IDENTITIES = "identities.json"  # the index `relit synth --identities` keeps beside its capture sets


def open_captures(paths: list[str | Path]) -> list[CaptureSet]:
    """Capture sets named by ``paths``: each a capture set folder, or a folder of people written by
    ``relit synth --identities`` (its finished identities, in order)."""
    import json

    out = []
    for path in map(Path, paths):
        index = path / IDENTITIES
        if index.exists():
            entries = [e for e in json.loads(index.read_text())["identities"] if e.get("complete")]
            if not entries:
                raise ValidationError(f"{index}: no finished identity yet; let relit synth --identities run longer")
            out += [CaptureSet(path / e["folder"]) for e in entries]
        else:
            out.append(CaptureSet(path))
    if not out:
        raise ValidationError("no capture set given")
    return out
