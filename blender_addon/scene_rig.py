"""The artist's Blender scene -> a LightRig: the one place Blender light units are converted.

Directions are measured from the subject anchor (an object; the world origin without one) and
expressed in the render camera's frame. Intensities are the irradiance each light delivers at the
anchor on a surface facing it (W/m², STACK.md's measured conversions):

- point, spot: E = P / (4 pi d^2), P the light's power (a spot's ``energy`` is what it would emit
  uncut by its cone), times the spot's cone and blend attenuation at the anchor (Cycles' smoothstep);
- sun: E = strength;
- area: radiance L = P / (pi A) (A = 1 m² when Normalize is off), E = L x the solid angle the
  light covers from the anchor (a disk of the same projected area: exact for a disk facing it).

Every power is multiplied by 2^exposure, every colour by the blackbody colour when Temperature is
on. Sizes become beta from the light's angular radius seen from the anchor (point/spot: the
radius, sun: half its angle, area: the radius of the disk of the same projected area) and the
bundle's stage OLAT radius. Lights hidden from render, with zero power, or facing away are left
out with a reason. Blender light groups become relit layers. A lamp's own node tree is read when
its Emission node's inputs are plain values (power x Strength, colour x Color); one fed by other nodes
(an IES Texture, a falloff, a texture) is approximated by the plain lamp and listed as approximated.
Emissive meshes become area lights (:mod:`.emitters`); the world is read from its Environment Texture
file or baked (:mod:`.world_bake`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from core.errors import ColourError, ValidationError
from core.io.colour import convert
from core.jobs import AUTO_BUNDLE
from core.lighting.area import beta_from_radius
from core.lighting.blackbody import blackbody_rgb
from core.lighting.camera import world_to_camera_directions
from core.lighting.rig import Light, LightRig
from core.validation import load_json

from .emitters import depsgraph_of, emissive_objects, emitter_light
from .world_bake import WorldLighting, world_lighting

# Blender's scene working spaces -> relit's
WORKING_SPACES = {"Linear Rec.709": "lin_rec709", "ACEScg": "acescg"}


@dataclass
class SceneRig:
    rig: LightRig | None                 # None only while it is being built
    working_space: str                   # relit's name of the scene's working colour space
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (light name, why it is left out)
    notes: list[tuple[str, str]] = field(default_factory=list)    # (light name, what the model will see)
    approximated: list[tuple[str, str]] = field(default_factory=list)  # (light name, what is approximated, how)
    world: WorldLighting | None = None   # how the world lights the subject


def bundle_stage_radius(bundle: str) -> float:
    """The bundle's stage OLAT radius (beta = 0), read from relit.json without loading the model; for
    the shipped bundles ("auto"), that of the stage they were all trained on (the default layout)."""
    if bundle == AUTO_BUNDLE:
        from core.lighting.layout import builtin_layout

        return float(builtin_layout("default").olat_radius)
    data = load_json(Path(bundle) / "relit.json", "the model bundle folder has no relit.json")
    return float(data.get("model", {}).get("stage_radius", 0.18))


def working_space(scene_data=None) -> str:
    name = (scene_data or bpy.data).colorspace.working_space
    if name not in WORKING_SPACES:
        raise ColourError(
            f"the blend file's working colour space is {name!r}; relit works in {sorted(WORKING_SPACES)}: "
            "change it in Properties > Color Management")
    return WORKING_SPACES[name]


def spot_factor(cos_angle: float, spot_size: float, spot_blend: float) -> float:
    """Cycles' spot cone: 0 outside half the spot size, a smoothstep over the blend, 1 inside."""
    cos_half = math.cos(spot_size / 2.0)
    if cos_angle <= cos_half:
        return 0.0
    smooth = (1.0 - cos_half) * spot_blend
    if smooth <= 0.0:
        return 1.0
    t = min(1.0, (cos_angle - cos_half) / smooth)
    return t * t * (3.0 - 2.0 * t)


def disk_solid_angle(area: float, distance: float) -> float:
    """Solid angle of a disk of ``area`` facing a point at ``distance`` (exact)."""
    r2 = area / math.pi
    return 2.0 * math.pi * (1.0 - distance / math.sqrt(distance * distance + r2))


def _area_m2(light) -> float:
    size_y = light.size_y if light.shape in ("RECTANGLE", "ELLIPSE") else light.size
    area = light.size * size_y
    return area * (math.pi / 4.0 if light.shape in ("DISK", "ELLIPSE") else 1.0)


def _colour(light, space: str) -> np.ndarray:
    rgb = np.array(light.color[:], dtype=np.float64)
    if getattr(light, "use_temperature", False):
        tint = blackbody_rgb(light.temperature)
        if space != "lin_rec709":
            tint = convert(tint[None], "lin_rec709", space)[0].astype(np.float64)
        rgb = rgb * tint
    return rgb


def lamp_nodes(light) -> tuple[float, np.ndarray, str | None]:
    """(power factor, colour factor [3], approximation or None) of a lamp's own node tree: Cycles
    multiplies the lamp's power and colour by its Emission node's Strength and Color."""
    if not getattr(light, "use_nodes", False) or light.node_tree is None:
        return 1.0, np.ones(3), None
    tree = light.node_tree
    output = next((n for n in tree.nodes if n.type == "OUTPUT_LIGHT" and n.is_active_output), None)
    if output is None or not output.inputs["Surface"].is_linked:
        return 0.0, np.ones(3), None
    emission = output.inputs["Surface"].links[0].from_node
    if emission.type != "EMISSION":
        return 1.0, np.ones(3), f"its node tree ends in {emission.bl_label}, not Emission: used as a plain lamp"
    strength, colour = emission.inputs["Strength"], emission.inputs["Color"]
    fed = sorted({s.links[0].from_node.bl_label for s in (strength, colour) if s.is_linked})
    factor = 1.0 if strength.is_linked else float(strength.default_value)
    tint = np.ones(3) if colour.is_linked else np.array(colour.default_value[:3], dtype=np.float64)
    how = (f"its Emission is fed by {', '.join(fed)}, which relit cannot apply: the lamp's power and colour "
           "are used as they are" if fed else None)
    return factor, tint, how


def light_from_object(obj, anchor: np.ndarray, c2w: np.ndarray, stage_radius: float, space: str):
    """(Light or None, note, approximation or None): one Blender light object as relit sees it."""
    light = obj.data
    m = np.array(obj.matrix_world, dtype=np.float64)
    factor, tint, approximation = lamp_nodes(light)
    power = float(light.energy) * 2.0 ** float(getattr(light, "exposure", 0.0)) * factor
    if power <= 0.0:
        return None, "zero energy", None
    if light.type == "SUN":
        world_dir = m[:3, 2] / np.linalg.norm(m[:3, 2])  # a sun shines along its -Z: the light is at +Z
        irradiance, radius = power, float(light.angle) / 2.0
    else:
        offset = m[:3, 3] - anchor
        d = float(np.linalg.norm(offset))
        if d < 1e-6:
            return None, "sits on the subject anchor", None
        world_dir = offset / d
        if light.type in ("POINT", "SPOT"):
            irradiance = power / (4.0 * math.pi * d * d)
            radius = math.atan2(float(light.shadow_soft_size), d)
            if light.type == "SPOT":
                axis = -m[:3, 2] / np.linalg.norm(m[:3, 2])
                irradiance *= spot_factor(float(axis @ -world_dir), float(light.spot_size), float(light.spot_blend))
                if irradiance <= 0.0:
                    return None, "the subject is outside its cone", None
        elif light.type == "AREA":
            normal = -m[:3, 2] / np.linalg.norm(m[:3, 2])  # an area light emits along its -Z
            facing = float(normal @ -world_dir)
            if facing <= 0.0:
                return None, "faces away from the subject", None
            sx, sy = np.linalg.norm(m[:3, 0]), np.linalg.norm(m[:3, 1])
            area = _area_m2(light) * sx * sy
            radiance = power / (math.pi * (area if getattr(light, "normalize", True) else 1.0))
            projected = area * facing
            irradiance = radiance * disk_solid_angle(projected, d)
            radius = math.atan2(math.sqrt(projected / math.pi), d)
        else:
            return None, f"light type {light.type} is not supported", None
    rgb = _colour(light, space) * tint
    peak = float(rgb.max())
    if peak <= 0.0:
        return None, "black colour", None
    direction = world_to_camera_directions(world_dir, c2w)
    direction = direction / np.linalg.norm(direction)
    beta = float(beta_from_radius(radius, stage_radius))
    out = Light(name=obj.name, type=light.type.lower(), direction=tuple(direction.tolist()), size=beta,
                rgb=tuple((rgb / peak).tolist()), intensity=irradiance * peak,
                group=getattr(obj, "lightgroup", "") or None)
    note = (f"{irradiance * peak:.4g} W/m², beta {beta:.2f}, from "
            f"({', '.join(f'{v:+.2f}' for v in direction)}) in the camera frame")
    return out, note, approximation


def scene_rig(scene, anchor_object=None, stage_radius: float = 0.18, bake_dir: str | Path | None = None) -> SceneRig:
    """The LightRig of ``scene`` as seen by its render camera from ``anchor_object``. A world that is
    not a plain Environment Texture is baked into ``bake_dir`` (reused when its node tree has not
    changed); with ``bake_dir`` None it is only described and the rig has no environment."""
    if scene.camera is None:
        raise ValidationError(f"scene {scene.name!r} has no camera; relit needs the render camera to "
                              "express light directions as the plate sees them")
    space = working_space()
    c2w = np.array(scene.camera.matrix_world, dtype=np.float64)
    c2w[:3, :3] /= np.linalg.norm(c2w[:3, :3], axis=0)  # a scaled camera object keeps its orientation only
    anchor = np.array(anchor_object.matrix_world.translation if anchor_object is not None else (0.0, 0.0, 0.0))
    out = SceneRig(rig=None, working_space=space)
    lights = []
    for obj in sorted(scene.objects, key=lambda o: o.name):
        if obj.type != "LIGHT":
            continue
        if obj.hide_render:
            out.skipped.append((obj.name, "hidden from render"))
            continue
        light, note, approximation = light_from_object(obj, anchor, c2w, stage_radius, space)
        if light is None:
            out.skipped.append((obj.name, note))
            continue
        lights.append(light)
        out.notes.append((obj.name, note))
        if approximation:
            out.approximated.append((obj.name, approximation))
    depsgraph = depsgraph_of(scene)
    for obj in emissive_objects(scene):
        if obj == anchor_object:
            continue
        light, note, approximations = emitter_light(obj, depsgraph, anchor, c2w, stage_radius)
        if light is None:
            if note:
                out.skipped.append((obj.name, note))
            continue
        lights.append(light)
        out.notes.append((obj.name, note))
        out.approximated.extend((obj.name, how) for how in approximations)
    out.world = world_lighting(scene.world, bake_dir, scene.frame_current)
    env = out.world.environment
    if not lights and env is None and out.world.kind != "bake":
        raise ValidationError(f"scene {scene.name!r} has no light relit can use and no world light ({out.world.note})"
                              + (f" (left out: {out.skipped})" if out.skipped else ""))
    out.rig = LightRig(lights, env, c2w.tolist())
    return out
