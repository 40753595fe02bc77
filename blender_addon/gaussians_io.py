"""Dynamic Gaussians in the artist's scene: a PLY sequence (``relit render-views --ply``) as points
with their attributes, one object per frame shown only on its frame; and the scene camera as the
JSON camera ``relit render-views`` renders from."""

from __future__ import annotations

import re
from pathlib import Path

import bpy
import numpy as np

from core.errors import RelitIOError, ValidationError
from core.io.ply import read_ply

_FRAME = re.compile(r"\.(\d+)\.ply$")


def camera_json(scene) -> dict:
    """The render camera as {K, c2w, width, height}: pinhole intrinsics in pixels from the focal
    length, sensor fit and lens shift, and the Blender camera-to-world."""
    cam = scene.camera
    if cam is None or cam.type != "CAMERA":
        raise ValidationError(f"scene {scene.name!r} has no camera to render the Gaussians from")
    r = scene.render
    width = round(r.resolution_x * r.resolution_percentage / 100)
    height = round(r.resolution_y * r.resolution_percentage / 100)
    data = cam.data
    if data.sensor_fit == "AUTO":  # the sensor width spans the longer side
        sensor, span = data.sensor_width, max(width, height)
    elif data.sensor_fit == "HORIZONTAL":
        sensor, span = data.sensor_width, width
    else:
        sensor, span = data.sensor_height, height
    f = data.lens / sensor * span
    longest = max(width, height)
    K = [[f, 0.0, width / 2 - data.shift_x * longest], [0.0, f, height / 2 + data.shift_y * longest], [0.0, 0.0, 1.0]]
    c2w = np.array(cam.matrix_world, dtype=np.float64)
    c2w[:3, :3] /= np.linalg.norm(c2w[:3, :3], axis=0)
    return {"K": K, "c2w": c2w.tolist(), "width": width, "height": height}


def ply_frames(folder: str | Path) -> dict[int, Path]:
    found = {int(m.group(1)): p for p in Path(folder).glob("*.ply") if (m := _FRAME.search(p.name))}
    if not found:
        raise RelitIOError(f"{folder}: no NAME.####.ply files (relit render-views --ply writes "
                                                 "them)")
    return dict(sorted(found.items()))


def _points_object(name: str, ply: dict[str, np.ndarray], collection) -> bpy.types.Object:
    means = np.stack([ply["x"], ply["y"], ply["z"]], axis=1)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(means))
    mesh.vertices.foreach_set("co", means.astype(np.float32).ravel())
    sh_c0 = 0.28209479177387814
    colour = np.clip(np.stack([ply[f"f_dc_{i}"] for i in range(3)], 1) * sh_c0 + 0.5, 0, None)
    attrs = {"opacity": ("FLOAT", 1.0 / (1.0 + np.exp(-ply["opacity"]))),
             "scale": ("FLOAT_VECTOR", np.exp(np.stack([ply[f"scale_{i}"] for i in range(3)], 1))),
             "rotation": ("QUATERNION", np.stack([ply[f"rot_{i}"] for i in range(4)], 1)),
             "color": ("FLOAT_COLOR", np.concatenate([colour, np.ones((len(colour), 1))], 1))}
    for key, (kind, values) in attrs.items():
        attr = mesh.attributes.new(key, kind, "POINT")
        field = {"FLOAT": "value", "FLOAT_VECTOR": "vector", "QUATERNION": "value", "FLOAT_COLOR": "color"}[kind]
        attr.data.foreach_set(field, values.astype(np.float32).ravel())
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    return obj


def import_ply_sequence(folder: str | Path, scene, name: str = "relit gaussians") -> bpy.types.Collection:
    """One point object per frame (position, opacity, scale, rotation, colour as point attributes),
    each visible in the viewport and render on its own frame only."""
    frames = ply_frames(folder)
    collection = bpy.data.collections.new(name)
    scene.collection.children.link(collection)
    for frame, path in frames.items():
        obj = _points_object(f"{name}.{frame:04d}", read_ply(path), collection)
        for f, hidden in ((frame - 1, True), (frame, False), (frame + 1, True)):
            obj.hide_viewport = obj.hide_render = hidden
            obj.keyframe_insert("hide_viewport", frame=f)
            obj.keyframe_insert("hide_render", frame=f)  # booleans hold their value between keys
    scene.frame_start, scene.frame_end = min(frames), max(frames)
    return collection
