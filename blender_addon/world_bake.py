"""The scene's world as relit sees it: an Environment Texture read from its file, or anything else
(Sky Texture, a solid colour, an HDRI behind Mix / Light Path nodes) baked to a lat-long by Cycles.

The bake renders the world alone through an equirectangular camera in a scene of its own, at the
orientation that makes the image read exactly as Blender's Environment Texture reads a file (measured:
the bake of an Environment Texture world reproduces its file). Light Path outputs are read as a
diffuse ray leaving the subject sees them (Is Camera Ray 0, Is Diffuse Ray 1, depth 1): what lights the
face, not the backdrop the camera sees. Bakes are cached in the bake folder by a digest of the world's
node tree (every node setting, default value, link and the files it reads), so an unchanged world
costs nothing on the next press.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bpy

from core.errors import ValidationError
from core.io.atomic import atomic_path
from core.lighting.rig import Environment

BAKE_WIDTH, BAKE_HEIGHT = 256, 128   # lat-long texels: 1.4 degrees, finer than the stage's OLAT cells
BAKE_SAMPLES = 256                   # Cycles samples per texel: a sun disc a fifth of a texel stays within 10 %
PANO_ROTATION = (math.pi / 2.0, 0.0, -math.pi / 2.0)  # camera Euler XYZ giving Blender's lat-long convention
BAKE_VERSION = 2                     # part of the digest: a change of bake settings re-bakes
WORLDS_FOLDER = "worlds"             # baked worlds, beside the rig or under the output folder

# a Light Path node's outputs as a diffuse ray leaving the subject sees them; every other output is 0
DIFFUSE_RAY = {"Is Diffuse Ray": 1.0, "Is Reflection Ray": 1.0, "Ray Length": 1.0e10, "Ray Depth": 1.0,
               "Diffuse Depth": 1.0}

# node properties that change how a node looks in the editor, not what it computes
_UI_PROPERTIES = {"rna_type", "location", "location_absolute", "width", "height", "dimensions", "name", "label",
                  "inputs", "outputs", "internal_links", "parent", "warning_propagation", "use_custom_color",
                  "color", "color_tag", "select", "show_options", "show_preview", "hide", "show_texture"}


@dataclass
class WorldLighting:
    environment: Environment | None  # what the rig gets; None: no world light, or not baked yet
    kind: str                        # "file": the texture as it is, "baked", "bake" (pending), "none"
    note: str                        # one line for the panel and `relit rig`


def _value(value):
    if hasattr(value, "__len__") and not isinstance(value, str):
        return [_value(v) for v in value]
    return value


def _image_key(image) -> list:
    if image is None:
        return []
    path = bpy.path.abspath(image.filepath, library=image.library)
    try:
        st = os.stat(path)
        stamp = [st.st_size, st.st_mtime_ns]
    except OSError:
        stamp = []
    return [path, image.source, image.colorspace_settings.name, *stamp]


def _properties(struct, depth: int = 0) -> dict:
    """Every setting of a node (or of a struct or list it holds: a Color Ramp's stops, a curve's points)
    that changes what it computes."""
    out = {}
    if depth > 6:  # deep enough for ramps and curve maps; guards against a struct that points back
        return out
    for prop in struct.bl_rna.properties:
        key = prop.identifier
        if key in _UI_PROPERTIES or key.startswith("bl_"):
            continue
        value = getattr(struct, key)
        if prop.type in {"BOOLEAN", "INT", "FLOAT", "STRING"}:
            out[key] = _value(value)
        elif prop.type == "ENUM":
            out[key] = sorted(value) if isinstance(value, set) else value
        elif prop.type == "POINTER" and value is not None:
            if isinstance(value, bpy.types.Image):
                out[key] = _image_key(value)
            elif isinstance(value, bpy.types.NodeTree):
                out[key] = tree_description(value)
            elif not isinstance(value, bpy.types.ID):
                out[key] = _properties(value, depth + 1)
        elif prop.type == "COLLECTION":
            out[key] = [_properties(item, depth + 1) for item in value]
    return out


def tree_description(tree) -> dict:
    """A node tree as plain data: nodes (type, settings, unlinked input values) and links."""
    nodes = {}
    for node in tree.nodes:
        inputs = {s.identifier: _value(s.default_value) for s in node.inputs
                  if not s.is_linked and hasattr(s, "default_value")}
        nodes[node.name] = {"type": node.bl_idname, "mute": node.mute, "settings": _properties(node),
                            "inputs": inputs}
    links = sorted([link.from_node.name, link.from_socket.identifier, link.to_node.name, link.to_socket.identifier]
                   for link in tree.links if link.is_valid and not link.is_muted)
    return {"nodes": nodes, "links": links}


def world_digest(world) -> str:
    text = json.dumps({"version": BAKE_VERSION, "size": [BAKE_WIDTH, BAKE_HEIGHT], "samples": BAKE_SAMPLES,
                       "tree": tree_description(world.node_tree)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _surface_node(world):
    output = next((n for n in world.node_tree.nodes if n.type == "OUTPUT_WORLD" and n.is_active_output), None)
    if output is None or not output.inputs["Surface"].is_linked:
        return None
    return output.inputs["Surface"].links[0].from_node


def _is_direction(socket) -> bool:
    """Whether a vector input reads the world direction (Texture Coordinate's Generated or Object)."""
    if not socket.is_linked:
        return False
    link = socket.links[0]
    return link.from_node.type == "TEX_COORD" and link.from_socket.name in ("Generated", "Object")


def _file_environment(world, background):
    """The rig Environment of a Background fed straight by an Environment Texture (through at most a
    Mapping node), or None when the world is anything else."""
    if background.type != "BACKGROUND" or background.inputs["Strength"].is_linked:
        return None
    if not background.inputs["Color"].is_linked:
        return None
    texture = background.inputs["Color"].links[0].from_node
    if texture.type != "TEX_ENVIRONMENT" or texture.image is None or texture.projection != "EQUIRECTANGULAR":
        return None
    rotation = (0.0, 0.0, 0.0)
    vector = texture.inputs["Vector"]
    if vector.is_linked:
        mapping = vector.links[0].from_node
        if (mapping.type != "MAPPING" or mapping.vector_type != "POINT"
                or not _is_direction(mapping.inputs["Vector"])
                or any(mapping.inputs[k].is_linked for k in ("Location", "Rotation", "Scale"))
                or any(abs(v) > 1e-9 for v in mapping.inputs["Location"].default_value)
                or any(abs(v - 1.0) > 1e-9 for v in mapping.inputs["Scale"].default_value)):
            return None  # anything but a plain rotation: baked
        rotation = tuple(float(v) for v in mapping.inputs["Rotation"].default_value)
    path = bpy.path.abspath(texture.image.filepath, library=texture.image.library)
    if not path or texture.image.packed_file is not None:
        raise ValidationError(
            f"world {world.name!r}: the environment image {texture.image.name!r} is packed or generated; relit "
            "reads HDRIs from files: unpack it (File > External Data > Unpack Resources)")
    strength = float(background.inputs["Strength"].default_value)
    return Environment(str(bpy.path.native_pathsep(path)), rotation, strength)


def _is_black(background) -> bool:
    """A Background whose light is zero for certain: zero strength, or an unlinked black colour."""
    strength = background.inputs["Strength"]
    if not strength.is_linked and float(strength.default_value) <= 0.0:
        return True
    colour = background.inputs["Color"]
    return not colour.is_linked and max(colour.default_value[:3]) <= 0.0


def _node_names(world) -> str:
    kinds = sorted({n.bl_label for n in world.node_tree.nodes if n.type not in ("OUTPUT_WORLD",)})
    return ", ".join(kinds)


def _all_nodes(tree):
    """The tree's nodes and those of the node groups it uses, at any depth."""
    for node in tree.nodes:
        yield node
        if node.type == "GROUP" and node.node_tree is not None:
            yield from _all_nodes(node.node_tree)


def world_lighting(world, bake_dir: Path | None, frame: int = 1) -> WorldLighting:
    """How the world lights the subject: its texture file as it is, a bake (written to ``bake_dir``,
    or reused from there), or nothing. With ``bake_dir`` None a world that needs a bake is only
    described (the panel draws without rendering). An animated world is baked at ``frame`` (the
    scene's current frame, whose values the digest holds)."""
    if world is None or world.node_tree is None:
        return WorldLighting(None, "none", "no world")
    surface = _surface_node(world)
    if surface is None:
        return WorldLighting(None, "none", f"world {world.name!r} has no surface: no environment light")
    if surface.type == "BACKGROUND":
        if _is_black(surface):
            return WorldLighting(None, "none", f"world {world.name!r} is black: no environment light")
        env = _file_environment(world, surface)
        if env is not None:
            return WorldLighting(env, "file", f"{bpy.path.basename(env.path)} x {env.intensity:g}, read from the file")
    light_path = any(n.type == "LIGHT_PATH" for n in _all_nodes(world.node_tree))
    how = f"{_node_names(world)}: baked to a {BAKE_WIDTH}x{BAKE_HEIGHT} lat-long by Cycles"
    if light_path:
        how += " (Light Path read as a diffuse ray from the subject)"
    if bake_dir is None:
        return WorldLighting(None, "bake", how + " when you press Relight")
    path = Path(bake_dir) / f"world-{world_digest(world)[:20]}.exr"
    if not path.exists():
        bake_world(world, path, frame)
    return WorldLighting(Environment(str(path), (0.0, 0.0, 0.0), 1.0), "baked", how)


def _as_diffuse_ray(tree, copies: list) -> None:
    """Replace every Light Path output's links by the constant a diffuse ray would read, in the tree
    and in copies of the node groups it uses (appended to ``copies``, for the caller to remove)."""
    for node in list(tree.nodes):
        if node.type == "GROUP" and node.node_tree is not None and any(
                n.type == "LIGHT_PATH" for n in _all_nodes(node.node_tree)):
            node.node_tree = node.node_tree.copy()
            copies.append(node.node_tree)
            _as_diffuse_ray(node.node_tree, copies)
        if node.type != "LIGHT_PATH":
            continue
        for output in node.outputs:
            if not output.is_linked:
                continue
            value = tree.nodes.new("ShaderNodeValue")
            value.outputs[0].default_value = DIFFUSE_RAY.get(output.name, 0.0)
            for socket in [link.to_socket for link in output.links]:
                tree.links.new(value.outputs[0], socket)  # replaces the input's link


def bake_world(world, path: Path, frame: int = 1) -> None:
    """Render ``world`` alone, at ``frame``, to a lat-long EXR at ``path`` (written atomically)."""
    scene = bpy.data.scenes.new("relit world bake")
    copy = world.copy()
    groups: list = []
    camera = bpy.data.cameras.new("relit world bake")
    obj = bpy.data.objects.new("relit world bake", camera)
    try:
        _as_diffuse_ray(copy.node_tree, groups)
        scene.world = copy
        scene.frame_set(frame)
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = BAKE_SAMPLES
        scene.cycles.use_adaptive_sampling = False
        scene.cycles.use_denoising = False
        scene.cycles.seed = 0
        scene.render.resolution_x, scene.render.resolution_y = BAKE_WIDTH, BAKE_HEIGHT
        scene.render.resolution_percentage = 100
        scene.render.film_transparent = False
        settings = scene.render.image_settings
        settings.file_format = "OPEN_EXR"
        settings.color_mode = "RGB"
        settings.color_depth = "32"
        settings.exr_codec = "ZIP"
        camera.type = "PANO"
        camera.panorama_type = "EQUIRECTANGULAR"
        obj.rotation_euler = PANO_ROTATION
        scene.collection.objects.link(obj)
        scene.camera = obj
        with tempfile.TemporaryDirectory(prefix="relit-bake-") as tmp:
            scene.render.filepath = str(Path(tmp) / "world.exr")
            bpy.ops.render.render(write_still=True, scene=scene.name)
            with atomic_path(path) as out:
                Path(scene.render.filepath).replace(out)
    finally:
        bpy.data.scenes.remove(scene)
        bpy.data.objects.remove(obj)
        bpy.data.cameras.remove(camera)
        bpy.data.worlds.remove(copy)
        for group in groups:
            bpy.data.node_groups.remove(group)
