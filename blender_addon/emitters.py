"""Emissive meshes as relit sees them: each visible mesh whose material emits becomes one area light.

A card's radiance is read from its material (an Emission shader, a Principled BSDF's emission, or
their sums through Add / Mix Shader nodes); its light is integrated exactly over its triangles as
seen from the subject anchor (Cycles' mesh emission is two-sided): Lambert's vector irradiance of each
triangle, (L / 2) sum over its edges of the edge's angle times the unit normal of the plane through the
edge and the anchor, gives the light's direction (their luminance-weighted sum) and its irradiance on
a surface facing it (exact while the mesh is above that surface's horizon); the size is the cap of
the mesh's solid angle (Van Oosterom and Strackee). Every triangle of an open mesh counts, from
either side (a card turned away lights with its back); of a closed mesh (every edge shared by two
triangles) only the side the anchor sees: the one that delivers more. Emission fed by a
texture or another node is read at the socket's own value and listed as approximated.
"""

from __future__ import annotations

import math

import bpy
import numpy as np

from core.io.colour import LUMINANCE  # Rec.709: weights the triangles' directions
from core.lighting.area import beta_from_radius
from core.lighting.camera import world_to_camera_directions
from core.lighting.rig import Light


def _socket(node, name: str, approximations: list[str]):
    socket = node.inputs[name]
    if socket.is_linked:
        approximations.append(f"{node.bl_label} {name} is fed by {socket.links[0].from_node.bl_label}: "
                              "its unlinked value is used")
    return socket.default_value


def shader_emission(node, approximations: list[str]) -> np.ndarray:  # [3] radiance
    """The radiance a shader node emits (Emission, Principled BSDF, Add / Mix Shader of them)."""
    if node is None or node.mute:
        return np.zeros(3)
    if node.type == "EMISSION":
        colour = np.array(_socket(node, "Color", approximations)[:3], dtype=np.float64)
        return colour * float(_socket(node, "Strength", approximations))
    if node.type == "BSDF_PRINCIPLED":
        colour = np.array(_socket(node, "Emission Color", approximations)[:3], dtype=np.float64)
        return colour * float(_socket(node, "Emission Strength", approximations))
    shaders = [s.links[0].from_node if s.is_linked else None for s in node.inputs if s.type == "SHADER"]
    if node.type == "ADD_SHADER":
        return sum((shader_emission(n, approximations) for n in shaders), np.zeros(3))
    if node.type == "MIX_SHADER":
        fac = float(_socket(node, "Fac", approximations))
        return (1.0 - fac) * shader_emission(shaders[0], approximations) + fac * shader_emission(shaders[1],
                                                                                                 approximations)
    return np.zeros(3)


def material_emission(material, approximations: list[str]) -> np.ndarray:  # [3] radiance
    if material is None or material.node_tree is None:
        return np.zeros(3)
    output = next((n for n in material.node_tree.nodes if n.type == "OUTPUT_MATERIAL" and n.is_active_output
                   and n.target in ("ALL", "CYCLES")), None)
    if output is None or not output.inputs["Surface"].is_linked:
        return np.zeros(3)
    return shader_emission(output.inputs["Surface"].links[0].from_node, approximations)


def triangle_solid_angles(tri: np.ndarray,  # [T, 3, 3] vertices relative to the viewpoint
                          ) -> np.ndarray:  # [T] unsigned solid angles
    """Van Oosterom and Strackee's exact solid angle of each triangle."""
    r = np.linalg.norm(tri, axis=-1)  # [T, 3]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    triple = np.einsum("ij,ij->i", a, np.cross(b, c))
    denom = (r[:, 0] * r[:, 1] * r[:, 2] + np.einsum("ij,ij->i", a, b) * r[:, 2]
             + np.einsum("ij,ij->i", a, c) * r[:, 1] + np.einsum("ij,ij->i", b, c) * r[:, 0])
    return np.abs(2.0 * np.arctan2(triple, denom))


def vector_irradiance(tri: np.ndarray,  # [T, 3, 3] vertices relative to the viewpoint
                      ) -> np.ndarray:  # [T, 3] irradiance vectors per unit radiance, pointing at each triangle
    """Lambert's formula: (1/2) sum over edges of the edge's angle x the unit normal of the plane through
    the edge and the viewpoint; turned towards the triangle (its emission is two-sided)."""
    u = tri / np.linalg.norm(tri, axis=-1, keepdims=True)
    out = np.zeros((len(tri), 3))
    for i in range(3):
        a, b = u[:, i], u[:, (i + 1) % 3]
        normal = np.cross(a, b)
        norm = np.linalg.norm(normal, axis=-1, keepdims=True)
        angle = np.arctan2(norm[:, 0], np.einsum("ij,ij->i", a, b))
        out += 0.5 * angle[:, None] * normal / np.maximum(norm, 1e-300)
    sign = np.sign(np.einsum("ij,ij->i", out, u.mean(axis=1)))
    return out * np.where(sign == 0, 1.0, sign)[:, None]


def _world_triangles(obj, depsgraph) -> tuple[np.ndarray, np.ndarray, bool]:
    """([T, 3, 3] world-space triangles, [T] material index, whether the mesh is closed: every edge
    shared by exactly two triangles)."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        mesh.calc_loop_triangles()
        co = np.empty(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
        verts = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
        mesh.loop_triangles.foreach_get("vertices", verts)
        mats = np.empty(len(mesh.loop_triangles), dtype=np.int64)
        mesh.loop_triangles.foreach_get("material_index", mats)
    finally:
        evaluated.to_mesh_clear()
    m = np.array(obj.matrix_world, dtype=np.float64)
    world = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
    faces = verts.reshape(-1, 3)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return world[faces], mats, bool(len(counts)) and bool(np.all(counts == 2))


def emitter_light(obj, depsgraph, anchor: np.ndarray, c2w: np.ndarray, stage_radius: float):
    """(Light or None, note, approximations) for one mesh object: None when none of its materials emit
    (note empty) or when it is out of sight."""
    approximations: list[str] = []
    radiance = np.array([material_emission(slot.material, approximations) for slot in obj.material_slots])
    if len(radiance) == 0 or radiance.max() <= 0.0:
        return None, "", []
    tri, mats, closed = _world_triangles(obj, depsgraph)
    tri_radiance = radiance[np.clip(mats, 0, len(radiance) - 1)]  # [T, 3]
    keep = tri_radiance.max(axis=1) > 0.0
    tri, tri_radiance = tri[keep] - anchor, tri_radiance[keep]
    if len(tri) == 0:
        return None, "", []
    vector = vector_irradiance(tri)  # [T, 3] per unit radiance, each triangle two-sided
    if closed:  # a closed mesh shows the anchor one side of itself: its front (or, seen from inside, its back)
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        front = np.einsum("ij,ij->i", normal, -tri.mean(axis=1)) > 0.0
        weight = tri_radiance @ LUMINANCE
        side = max((front, ~front), key=lambda s: np.linalg.norm(weight[s] @ vector[s]))
        tri, tri_radiance, vector = tri[side], tri_radiance[side], vector[side]
    omega = triangle_solid_angles(tri)  # [T]
    total = (tri_radiance @ LUMINANCE) @ vector
    if np.linalg.norm(total) < 1e-12:
        return None, "its emission is not seen from the subject", approximations
    world_dir = total / np.linalg.norm(total)
    irradiance = (vector @ world_dir) @ tri_radiance  # [3] on a surface facing world_dir
    peak = float(irradiance.max())
    if peak <= 0.0:
        return None, "its emission is not seen from the subject", approximations
    radius = math.acos(max(-1.0, 1.0 - float(omega.sum()) / (2.0 * math.pi)))
    direction = world_to_camera_directions(world_dir, c2w)
    direction = direction / np.linalg.norm(direction)
    beta = float(beta_from_radius(radius, stage_radius))
    light = Light(name=obj.name, type="area", direction=tuple(direction.tolist()), size=beta,
                  rgb=tuple((irradiance / peak).tolist()), intensity=peak, group=getattr(obj, "lightgroup", "") or None)
    note = (f"emissive mesh as an area light: {peak:.4g} W/m², beta {beta:.2f}, from "
            f"({', '.join(f'{v:+.2f}' for v in direction)}) in the camera frame")
    return light, note, approximations


def emissive_objects(scene) -> list:
    """The scene's mesh objects shown in renders whose materials may emit, by name."""
    return [obj for obj in sorted(scene.objects, key=lambda o: o.name)
            if obj.type == "MESH" and not obj.hide_render and obj.material_slots
            and any(slot.material is not None and slot.material.node_tree is not None for slot in obj.material_slots)]


def depsgraph_of(scene):
    """The evaluated dependency graph of ``scene`` (its first view layer's, brought up to date, when it
    is not the context's scene: `relit rig --blend --scene S`)."""
    if bpy.context.scene == scene:
        return bpy.context.evaluated_depsgraph_get()
    depsgraph = scene.view_layers[0].depsgraph
    depsgraph.update()
    return depsgraph
