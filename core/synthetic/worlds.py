"""Worlds and emitters as artists build them in Blender, for checking what relit makes of them against
Cycles' own render (imports bpy; only ``core.synthetic`` and the add-on may).

Each world kind is one builder in :data:`WORLDS`: ``build_world(kind, hdri)`` returns a new bpy World.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def _bpy():
    import bpy

    return bpy


def _sky(world, hdri: str) -> None:
    """Blender 5's default sky model, sun 35 degrees up and turned 40 degrees, a tenth of its strength."""
    nt = world.node_tree
    sky = nt.nodes.new("ShaderNodeTexSky")
    sky.sun_elevation, sky.sun_rotation = math.radians(35.0), math.radians(40.0)
    nt.links.new(sky.outputs["Color"], nt.nodes["Background"].inputs["Color"])
    nt.nodes["Background"].inputs["Strength"].default_value = 0.1


def _solid(world, hdri: str) -> None:
    """A uniform warm grey."""
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (0.9, 0.75, 0.6, 1.0)
    background.inputs["Strength"].default_value = 1.0


def _hdri_background(world, hdri: str):
    """The world's Background node fed by the lat-long ``hdri`` (an Environment Texture)."""
    nt = world.node_tree
    texture = nt.nodes.new("ShaderNodeTexEnvironment")
    texture.image = _bpy().data.images.load(hdri, check_existing=True)
    lit = nt.nodes["Background"]
    nt.links.new(texture.outputs["Color"], lit.inputs["Color"])
    return lit


def _mixed(world, lit, other, fac) -> None:
    """World Output <- Mix Shader(``lit``, ``other``) by ``fac`` (a value, or an output socket)."""
    nt = world.node_tree
    mix = nt.nodes.new("ShaderNodeMixShader")
    if isinstance(fac, float):
        mix.inputs["Fac"].default_value = fac
    else:
        nt.links.new(fac, mix.inputs["Fac"])
    nt.links.new(lit.outputs["Background"], mix.inputs[1])
    nt.links.new(other.outputs["Background"], mix.inputs[2])
    nt.links.new(mix.outputs["Shader"], nt.nodes["World Output"].inputs["Surface"])


def _light_path(world, hdri: str) -> None:
    """The HDRI lights the subject while the camera sees a flat grey backdrop (Mix Shader on Is Camera Ray)."""
    nt = world.node_tree
    lit = _hdri_background(world, hdri)
    backdrop = nt.nodes.new("ShaderNodeBackground")
    backdrop.inputs["Color"].default_value = (0.18, 0.18, 0.18, 1.0)
    _mixed(world, lit, backdrop, nt.nodes.new("ShaderNodeLightPath").outputs["Is Camera Ray"])


def _mix(world, hdri: str) -> None:
    """Two thirds HDRI, one third a cool blue fill, mixed by a Mix Shader."""
    lit = _hdri_background(world, hdri)
    fill = world.node_tree.nodes.new("ShaderNodeBackground")
    fill.inputs["Color"].default_value = (0.2, 0.35, 0.8, 1.0)
    _mixed(world, lit, fill, 1.0 / 3.0)


WORLDS: dict[str, Callable] = {"sky": _sky, "solid": _solid, "light-path": _light_path, "mix": _mix}


def build_world(kind: str, hdri: str):
    """A new bpy World of ``kind`` (one of :data:`WORLDS`); ``hdri`` is the lat-long the HDRI kinds load."""
    world = _bpy().data.worlds.new(f"world-{kind}")
    WORLDS[kind](world, hdri)
    return world


def add_card(scene, centre: np.ndarray, target: np.ndarray, width: float, height: float,
             radiance: tuple[float, float, float], name: str = "card"):
    """A rectangular emissive card (Emission shader of ``radiance``) at ``centre`` facing ``target``."""
    bpy = _bpy()
    import mathutils

    mesh = bpy.data.meshes.new(name)
    w, h = width / 2.0, height / 2.0
    mesh.from_pydata([(-w, -h, 0), (w, -h, 0), (w, h, 0), (-w, h, 0)], [], [(0, 1, 2, 3)])
    material = bpy.data.materials.new(name)
    nt = material.node_tree
    for node in list(nt.nodes):
        if node.type != "OUTPUT_MATERIAL":
            nt.nodes.remove(node)
    emission = nt.nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (*radiance, 1.0)
    emission.inputs["Strength"].default_value = 1.0
    nt.links.new(emission.outputs["Emission"], nt.nodes["Material Output"].inputs["Surface"])
    mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    obj.location = tuple(float(v) for v in centre)
    facing = mathutils.Vector(tuple(float(v) for v in np.asarray(target) - np.asarray(centre)))
    obj.rotation_euler = facing.to_track_quat("Z", "Y").to_euler()  # its +Z normal points at the target
    scene.collection.objects.link(obj)
    return obj


def add_sun(scene, direction: np.ndarray, irradiance: np.ndarray, angular_radius: float, name: str = "sun"):
    """A sun lamp shining from world ``direction`` delivering ``irradiance`` (RGB, W/m²) on a surface facing it."""
    bpy = _bpy()
    import mathutils

    peak = float(np.max(irradiance))
    light = bpy.data.lights.new(name, "SUN")
    light.energy = peak
    light.color = tuple(float(v) for v in np.asarray(irradiance) / peak)
    light.angle = 2.0 * angular_radius
    obj = bpy.data.objects.new(name, light)
    obj.rotation_euler = mathutils.Vector(tuple(float(v) for v in direction)).to_track_quat("Z", "Y").to_euler()
    scene.collection.objects.link(obj)
    return obj
