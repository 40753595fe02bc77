"""LightRig (DESIGN.md contract 1): the target lighting, JSON-serialisable.

Every producer (the Blender scene, CLI flags, HDRI projection or clustering)
emits one; every consumer (model, compositor, farm) reads one. Directions are
in the Blender camera frame (towards the light; straight behind the camera is
(0, 0, 1)); ``intensity`` is the irradiance the light delivers at the subject
anchor on a surface facing it, in W/m²; ``rgb`` is linear colour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ValidationError
from ..io.atomic import atomic_write_text
from ..io.naming import light_layer_name, light_layer_names
from ..validation import as_number, as_numbers, check_fields, load_json
from .camera import world_to_camera_directions
from .hdri import LayoutProjection
from .layout import StageLayout

ENVIRONMENT_LAYER = "environment"  # the layer of a rig's environment (the HDRI); no light may take it

RIG_VERSION = 1
LIGHT_TYPES = ("point", "spot", "area", "sun", "olat")


@dataclass
class Light:
    name: str                                  # unique; its layer is light_<name> unless grouped
    type: str                                  # one of LIGHT_TYPES ("olat": a stage direction)
    direction: tuple[float, float, float]      # unit vector towards the light, camera frame
    size: float = 0.0                          # DifFRelight beta in [0, 1] (0 = one OLAT, 1 = flat-lit)
    rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)  # linear colour multiplier, >= 0
    intensity: float = 1.0                     # irradiance at the subject anchor, W/m², >= 0
    group: str | None = None                   # output layer shared with other lights (light group)

    def __post_init__(self):
        """Held in the parsed form whoever builds it (a rig made in Python serialises, hashes and
        relights exactly as its JSON read back): float fields, a unit direction. Range checks
        belong to the JSON edge (``LightRig.from_json``), which names the field."""
        d = np.asarray(self.direction, dtype=np.float64)
        norm = float(np.linalg.norm(d))
        self.direction = tuple((d if abs(norm - 1.0) < 1e-9 or norm < 1e-9 else d / norm).tolist())  # stable on re-save
        self.size, self.intensity = float(self.size), float(self.intensity)
        self.rgb = tuple(np.asarray(self.rgb, dtype=np.float64).tolist())

    @property
    def layer(self) -> str:
        return light_layer_name(self.group or self.name)


@dataclass
class Environment:
    path: str                                  # lat-long HDRI (EXR/HDR) in Cycles' convention
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)  # Euler XYZ radians, as Blender's Mapping node
    intensity: float = 1.0                     # Background strength multiplying the radiance

    def __post_init__(self):
        self.rotation = tuple(np.asarray(self.rotation, dtype=np.float64).tolist())
        self.intensity = float(self.intensity)


@dataclass
class LightRig:
    lights: list[Light] = field(default_factory=list)  # the lights, in layer order
    environment: Environment | None = None     # optional world HDRI
    camera_c2w: list[list[float]] | None = None  # Blender c2w of the camera the directions are relative to
    version: int = RIG_VERSION                 # schema version

    def __post_init__(self):
        if self.camera_c2w is not None:
            self.camera_c2w = np.asarray(self.camera_c2w, dtype=np.float64).tolist()

    def layers(self) -> dict[str, list[Light]]:
        """Output layer name -> the lights feeding it, in order of first appearance."""
        out: dict[str, list[Light]] = {}
        for light in self.lights:
            out.setdefault(light.layer, []).append(light)
        return out

    def to_json(self) -> dict:
        data: dict = {"version": self.version, "lights": []}
        for light in self.lights:
            item = {"name": light.name, "type": light.type, "direction": list(light.direction),
                    "size": light.size, "rgb": list(light.rgb), "intensity": light.intensity}
            if light.group:
                item["group"] = light.group
            data["lights"].append(item)
        if self.environment is not None:
            env = self.environment
            data["environment"] = {"path": env.path, "rotation": list(env.rotation), "intensity": env.intensity}
        if self.camera_c2w is not None:
            data["camera_c2w"] = self.camera_c2w
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.dumps() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "LightRig":
        return cls.from_json(load_json(path, "the rig file is missing"), source=str(path))

    @classmethod
    def from_json(cls, data: dict, source: str = "rig") -> "LightRig":
        """Parse and validate; errors name the file and the field (``lights[2].direction``)."""
        check_fields(data, source, {"version", "lights", "environment", "camera_c2w"}, required=())
        version = data.get("version", RIG_VERSION)
        if version != RIG_VERSION:
            raise ValidationError(f"{source}: version: {version!r} is not supported (this relit reads {RIG_VERSION})")
        raw_lights = data.get("lights", [])
        if not isinstance(raw_lights, list):
            raise ValidationError(f"{source}: lights: must be a list")
        lights = [_light(item, f"{source}: lights[{i}]") for i, item in enumerate(raw_lights)]
        names = [light.name for light in lights]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValidationError(f"{source}: lights: names must be unique, repeated: {dup}")
        env = data.get("environment")
        environment = None if env is None else environment_from_json(env, f"{source}: environment")
        layers = sorted({light.group or light.name for light in lights})
        if ENVIRONMENT_LAYER in layers:
            raise ValidationError(f"{source}: lights: {ENVIRONMENT_LAYER!r} names the environment's layer; rename the "
                                  "light (or its group)")
        try:  # two layers that become one pass name are refused before any inference
            light_layer_names(layers + [ENVIRONMENT_LAYER])
        except ValidationError as e:
            raise ValidationError(f"{source}: lights: {e}") from None
        c2w = data.get("camera_c2w")
        if c2w is not None:
            m = as_numbers(c2w, f"{source}: camera_c2w", shape=(4, 4))
            c2w = m.tolist()
        if not lights and environment is None:
            raise ValidationError(f"{source}: the rig has no lights and no environment; add at least one")
        return cls(lights, environment, c2w, version)


def _light(item, where: str) -> Light:
    check_fields(item, where, {"name", "type", "direction", "size", "rgb", "intensity", "group"},
            required=("name", "type", "direction"))
    name = item["name"]
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"{where}.name: must be a non-empty string")
    if item["type"] not in LIGHT_TYPES:
        raise ValidationError(f"{where}.type: {item['type']!r} is not a light type; use one of {LIGHT_TYPES}")
    d = as_numbers(item["direction"], f"{where}.direction", (3,))
    norm = float(np.linalg.norm(d))
    if norm < 1e-9:
        raise ValidationError(f"{where}.direction: is the zero vector; give the direction towards the light")
    rgb = as_numbers(item.get("rgb", (1.0, 1.0, 1.0)), f"{where}.rgb", (3,))
    if np.any(rgb < 0):
        raise ValidationError(f"{where}.rgb: must be >= 0, got {item['rgb']!r}")
    group = item.get("group")
    if group is not None and (not isinstance(group, str) or not group.strip()):
        raise ValidationError(f"{where}.group: must be a non-empty string when given")
    light = Light(
        name=name, type=item["type"], direction=tuple(d.tolist()),  # made a unit vector by Light
        size=as_number(item.get("size", 0.0), f"{where}.size", 0.0, 1.0),
        rgb=tuple(rgb.tolist()),
        intensity=as_number(item.get("intensity", 1.0), f"{where}.intensity", 0.0),
        group=group,
    )
    try:
        light.layer
    except ValidationError as e:
        raise ValidationError(f"{where}.name: {e}") from None
    return light


def environment_from_json(env, where: str) -> Environment:
    check_fields(env, where, {"path", "rotation", "intensity"}, required=("path",))
    if not isinstance(env["path"], str) or not env["path"]:
        raise ValidationError(f"{where}.path: must be the path of a lat-long EXR/HDR")
    rotation = as_numbers(env.get("rotation", (0.0, 0.0, 0.0)), f"{where}.rotation", (3,))
    return Environment(env["path"], tuple(rotation.tolist()),
                       as_number(env.get("intensity", 1.0), f"{where}.intensity", 0.0))


def stage_rig(layout: StageLayout,
              projection: LayoutProjection,
              c2w: np.ndarray,              # [4, 4] Blender camera-to-world the rig is seen from
              environment: Environment | None = None,
              ) -> LightRig:
    """One ``olat`` light per stage direction, weighted by an HDRI projection."""
    dirs = world_to_camera_directions(layout.directions, c2w)
    lights = []
    for name, d, w in zip(layout.names, dirs, projection.weights):
        peak = float(w.max())
        rgb = (w / peak).tolist() if peak > 0 else [0.0, 0.0, 0.0]
        lights.append(Light(name, "olat", tuple(d.tolist()), 0.0, tuple(rgb), peak))
    return LightRig(lights, environment, np.asarray(c2w, dtype=np.float64).tolist())
