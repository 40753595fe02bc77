"""The synthetic light stage in Blender Cycles (imports bpy; only ``core.synthetic`` may).

One scene holds the subject (animated by per-frame shape keys, so Cycles'
Vector pass carries its true motion), a camera, one sun light per stage
direction and a world. Stage lights are suns with the angular size of their
cell: a distant uniform disk, like an environment's cell, whose strength is
exactly the irradiance it delivers on a surface facing it (STACK.md), with no
inverse-square falloff across the head. OLATs render in small batches, each
light in its own light group, so every OLAT gets enough samples.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.manifest import Camera
from ..io.exr import read_channels
from ..lighting.area import cap_radius
from ..lighting.layout import StageLayout
from ..lighting.rig import Environment
from .person import PersonLook
from .subject import Subject, deform


@dataclass(frozen=True)
class RenderSettings:
    resolution: int = 128  # square image size in pixels
    samples: int = 64      # Cycles samples per pixel (no denoising: it would break linearity)
    batch: int = 8         # stage lights per OLAT render (each gets about 1/batch of the light samples)
    threads: int = 2       # Cycles CPU threads (fixed, for reproducible timing)
    seed: int = 0          # Cycles noise seed


def _bpy():
    import bpy

    return bpy


def _rotation_towards(d: np.ndarray) -> np.ndarray:  # [3, 3] with local +Z along d
    z = d / np.linalg.norm(d)
    helper = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


LIP_TINT = (0.8, 0.5, 0.52)  # lips: the skin's albedo, redder and darker


def _skin_material(bpy, look, seed: int):
    mat = bpy.data.materials.new("skin")
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes.get("Principled BSDF")
    coords = nodes.new("ShaderNodeTexCoord")
    noise = nodes.new("ShaderNodeTexNoise")
    noise.noise_dimensions = "4D"
    noise.inputs["Scale"].default_value = 40.0
    noise.inputs["W"].default_value = float(seed % 997)
    links.new(coords.outputs["Object"], noise.inputs["Vector"])
    ramp = nodes.new("ShaderNodeMix")
    ramp.data_type = "RGBA"
    base = np.array(look.albedo)
    ramp.inputs[6].default_value = (*(base * 0.85), 1.0)
    ramp.inputs[7].default_value = (*np.minimum(base * 1.15, 1.0), 1.0)
    links.new(noise.outputs["Fac"], ramp.inputs["Factor"])
    colour = ramp.outputs[2]
    if isinstance(look, PersonLook):  # lips and brows painted by the per-vertex weights core.synthetic.person sets
        for attribute, paint in (("lips", base * np.array(LIP_TINT)), ("brows", np.array(look.hair_colour))):
            weight = nodes.new("ShaderNodeAttribute")
            weight.attribute_name = attribute
            mix = nodes.new("ShaderNodeMix")
            mix.data_type = "RGBA"
            links.new(weight.outputs["Fac"], mix.inputs["Factor"])
            links.new(colour, mix.inputs[6])
            mix.inputs[7].default_value = (*paint, 1.0)
            colour = mix.outputs[2]
    links.new(colour, bsdf.inputs["Base Color"])
    rough = nodes.new("ShaderNodeMapRange")
    rough.inputs["To Min"].default_value = look.roughness - 0.08
    rough.inputs["To Max"].default_value = look.roughness + 0.08
    links.new(noise.outputs["Fac"], rough.inputs["Value"])
    links.new(rough.outputs["Result"], bsdf.inputs["Roughness"])
    bsdf.inputs["Subsurface Weight"].default_value = look.subsurface
    bsdf.inputs["Subsurface Radius"].default_value = (1.0, 0.35, 0.2)
    bsdf.inputs["Subsurface Scale"].default_value = 0.004
    if isinstance(look, PersonLook):
        bsdf.inputs["Subsurface Scale"].default_value = look.subsurface_radius
        bsdf.inputs["Specular IOR Level"].default_value = look.specular
    return mat


def _streaks(bpy, mat, scale: tuple[float, float, float], seed: int):
    """A noise texture stretched along ``scale`` (object coordinates): hair strands, fabric weave."""
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    coords = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = scale
    noise = nodes.new("ShaderNodeTexNoise")
    noise.noise_dimensions = "4D"
    noise.inputs["W"].default_value = float(seed % 991)
    noise.inputs["Detail"].default_value = 4.0
    links.new(coords.outputs["Object"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], noise.inputs["Vector"])
    return noise


def _mix_colours(bpy, mat, fac, low, high):
    mix = mat.node_tree.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.inputs[6].default_value = (*low, 1.0)
    mix.inputs[7].default_value = (*high, 1.0)
    mat.node_tree.links.new(fac, mix.inputs["Factor"])
    return mix.outputs[2]


def _hair_material(bpy, look: PersonLook, seed: int):
    """Strand-like streaks running down the hair (a mesh shell, not curves)."""
    mat = bpy.data.materials.new("hair")
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    noise = _streaks(bpy, mat, (120.0, 120.0, 8.0), seed)
    base = np.array(look.hair_colour)
    colour = _mix_colours(bpy, mat, noise.outputs["Fac"], base * 0.55, np.minimum(base * 1.5, 1.0))
    mat.node_tree.links.new(colour, bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.38
    bsdf.inputs["Specular IOR Level"].default_value = 0.6
    return mat


def _cloth_material(bpy, look: PersonLook, seed: int):
    mat = bpy.data.materials.new("cloth")
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    noise = _streaks(bpy, mat, (300.0, 300.0, 300.0), seed + 1)
    base = np.array(look.cloth_colour)
    colour = _mix_colours(bpy, mat, noise.outputs["Fac"], base * 0.85, np.minimum(base * 1.15, 1.0))
    mat.node_tree.links.new(colour, bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = look.cloth_roughness
    bsdf.inputs["Sheen Weight"].default_value = look.cloth_sheen
    return mat


def _opening_material(bpy):
    """The lid openings: see-through (light and view rays reach the eyeball behind)."""
    mat = bpy.data.materials.new("opening")
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.remove(nodes.get("Principled BSDF"))
    links.new(nodes.new("ShaderNodeBsdfTransparent").outputs["BSDF"], nodes.get("Material Output").inputs["Surface"])
    return mat


def _eye_material(bpy, look):
    """White sclera, an iris and pupil around the eye's -Y pole, and a glossy cornea (coat)."""
    mat = bpy.data.materials.new("eye")
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes.get("Principled BSDF")
    geo = nodes.new("ShaderNodeNewGeometry")
    # the normal's -Y component: 1 at the front pole of each eyeball
    dot = nodes.new("ShaderNodeVectorMath")
    dot.operation = "DOT_PRODUCT"
    dot.inputs[1].default_value = (0.0, -1.0, 0.0)
    links.new(geo.outputs["Normal"], dot.inputs[0])
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.interpolation = "CONSTANT"
    ramp.color_ramp.elements[0].position = 0.0
    ramp.color_ramp.elements[0].color = (0.75, 0.72, 0.7, 1.0)
    iris = ramp.color_ramp.elements.new(0.86)
    iris.color = (*look.eye_colour, 1.0)
    pupil = ramp.color_ramp.elements.new(0.965)
    pupil.color = (0.01, 0.01, 0.01, 1.0)
    links.new(dot.outputs["Value"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.3
    bsdf.inputs["Coat Weight"].default_value = 1.0
    bsdf.inputs["Coat Roughness"].default_value = 0.02
    return mat


class StageScene:
    """A Blender scene of one subject on a virtual light stage."""

    def __init__(self, subject: Subject, tracks: dict[int, dict[str, float]], layout: StageLayout,
                 irradiance: np.ndarray, settings: RenderSettings):
        bpy = _bpy()
        bpy.ops.wm.read_factory_settings(use_empty=True)
        self.bpy, self.subject, self.layout, self.settings = bpy, subject, layout, settings
        self.irradiance = np.asarray(irradiance, dtype=np.float64)  # [N, 3]
        scene = self.scene = bpy.context.scene
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = settings.samples
        scene.cycles.use_adaptive_sampling = False
        scene.cycles.use_denoising = False
        scene.cycles.seed = settings.seed
        scene.render.threads_mode = "FIXED"
        scene.render.threads = settings.threads
        scene.render.resolution_x = scene.render.resolution_y = settings.resolution
        scene.render.resolution_percentage = 100
        scene.render.film_transparent = True
        scene.render.image_settings.media_type = "MULTI_LAYER_IMAGE"
        scene.render.image_settings.file_format = "OPEN_EXR_MULTILAYER"
        scene.render.image_settings.color_depth = "32"
        scene.render.image_settings.exr_codec = "ZIP"
        self.view_layer = scene.view_layers[0]
        self._build_world()
        self._build_subject(tracks)
        self._build_camera()
        self._build_lights()
        self._tmp = tempfile.TemporaryDirectory(prefix="relit-synth-")

    # --- construction ----------------------------------------------------------------------
    def _build_world(self) -> None:
        bpy = self.bpy
        world = bpy.data.worlds.new("stage")
        self.scene.world = world
        nodes, links = world.node_tree.nodes, world.node_tree.links
        self.background = nodes.get("Background")
        self.background.inputs["Strength"].default_value = 0.0
        self.env_texture = nodes.new("ShaderNodeTexEnvironment")
        self.mapping = nodes.new("ShaderNodeMapping")
        self.mapping.vector_type = "POINT"
        coords = nodes.new("ShaderNodeTexCoord")
        links.new(coords.outputs["Generated"], self.mapping.inputs["Vector"])
        links.new(self.mapping.outputs["Vector"], self.env_texture.inputs["Vector"])

    def _build_subject(self, tracks: dict[int, dict[str, float]]) -> None:
        bpy, s = self.bpy, self.subject
        mesh = bpy.data.meshes.new(s.name)
        mesh.from_pydata(s.vertices.tolist(), [], s.triangles.tolist())
        mesh.update()
        mesh.polygons.foreach_set("material_index", s.material.astype(np.int32))
        mesh.shade_smooth()
        mesh.materials.append(_skin_material(bpy, s.look, zlib.crc32(s.name.encode())))
        mesh.materials.append(_eye_material(bpy, s.look))
        if isinstance(s.look, PersonLook):  # material indices follow core.synthetic.person
            mesh.materials.append(_hair_material(bpy, s.look, zlib.crc32(s.name.encode())))
            mesh.materials.append(_cloth_material(bpy, s.look, zlib.crc32(s.name.encode())))
            mesh.materials.append(_opening_material(bpy))
            for name in ("lips", "brows"):
                mesh.attributes.new(name, "FLOAT", "POINT").data.foreach_set("value", s.regions[name])
        obj = self.subject_obj = bpy.data.objects.new(s.name, mesh)
        self.scene.collection.objects.link(obj)
        sub = obj.modifiers.new("smooth", "SUBSURF")
        sub.levels = sub.render_levels = 1
        obj.shape_key_add(name="rest")
        for frame, weights in tracks.items():
            key = obj.shape_key_add(name=f"f{frame}", from_mix=False)
            key.data.foreach_set("co", deform(s, weights).astype(np.float32).ravel())
            for f in tracks:  # 1 at its own frame, 0 at every other, linear in between
                key.value = 1.0 if f == frame else 0.0
                key.keyframe_insert("value", frame=f)
        anim = mesh.shape_keys.animation_data
        if anim and anim.action:
            for fcurve in _fcurves(anim):
                for point in fcurve.keyframe_points:
                    point.interpolation = "LINEAR"

    def _build_camera(self) -> None:
        bpy = self.bpy
        cam = bpy.data.cameras.new("camera")
        cam.sensor_fit = "HORIZONTAL"
        cam.sensor_width = 36.0
        cam.clip_start, cam.clip_end = 0.01, 100.0
        self.camera_obj = bpy.data.objects.new("camera", cam)
        self.scene.collection.objects.link(self.camera_obj)
        self.scene.camera = self.camera_obj

    def _build_lights(self) -> None:
        bpy = self.bpy
        self.lights = []
        radius = cap_radius(self.layout.solid_angles)
        for name, d, r in zip(self.layout.names, self.layout.directions, radius):
            light = bpy.data.lights.new(f"stage_{name}", type="SUN")
            light.angle = float(2.0 * r)  # angular diameter of the cell-sized disk
            light.energy = 1.0
            obj = bpy.data.objects.new(f"stage_{name}", light)
            obj.matrix_world = _matrix(bpy, _rotation_towards(d), np.zeros(3))
            self.scene.collection.objects.link(obj)
            self.lights.append(obj)
        self.groups = [f"slot{i:02d}" for i in range(self.settings.batch)]
        for g in self.groups:
            self.view_layer.lightgroups.add(name=g)

    # --- per render --------------------------------------------------------------------------
    def set_view(self, camera: Camera, frame: int) -> None:
        fx = float(camera.K[0, 0])
        self.camera_obj.data.lens = fx * self.camera_obj.data.sensor_width / camera.width
        self.camera_obj.matrix_world = _matrix(self.bpy, camera.c2w[:3, :3], camera.c2w[:3, 3])
        self.scene.frame_set(frame)

    def _render(self, passes: list[str]) -> np.ndarray:
        path = Path(self._tmp.name) / "render.exr"
        self.scene.render.filepath = str(path)
        with _quiet_stdout():
            self.bpy.ops.render.render(write_still=True)
        layer = self.view_layer.name
        return read_channels(path, [f"{layer}.{p}" for p in passes])

    def _lights_on(self, on: set[int], colour_from_irradiance: bool = True) -> None:
        for i, obj in enumerate(self.lights):
            obj.hide_render = i not in on
            e = self.irradiance[i]
            peak = float(e.max())
            obj.data.energy = peak
            obj.data.color = tuple((e / peak).tolist()) if peak > 0 else (1.0, 1.0, 1.0)

    def render_flat(self, with_vector: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(rgb [H,W,3], alpha [H,W], vector [H,W,4] or None) with every stage light on."""
        self.background.inputs["Strength"].default_value = 0.0
        self._lights_on(set(range(len(self.lights))))
        for obj in self.lights:
            obj.lightgroup = ""
        self.view_layer.use_pass_vector = with_vector
        names = ["Combined.R", "Combined.G", "Combined.B", "Combined.A"]
        if with_vector:
            names += ["Vector.X", "Vector.Y", "Vector.Z", "Vector.W"]
        px = self._render(names)
        self.view_layer.use_pass_vector = False
        return px[..., :3], px[..., 3], (px[..., 4:] if with_vector else None)

    def render_olats(self, progress=None) -> tuple[np.ndarray, np.ndarray]:  # ([N,H,W,3], [H,W])
        """Every stage light's image, in batches of ``settings.batch`` light groups."""
        self.background.inputs["Strength"].default_value = 0.0
        n, b = len(self.lights), self.settings.batch
        out, alpha = None, None
        for start in range(0, n, b):
            idx = list(range(start, min(n, start + b)))
            self._lights_on(set(idx))
            for slot, i in enumerate(idx):
                self.lights[i].lightgroup = self.groups[slot]
            names = ["Combined.A"] + [f"Combined_{self.groups[s]}.{c}" for s in range(len(idx)) for c in "RGB"]
            px = self._render(names)
            h, w = px.shape[:2]
            if out is None:
                out = np.zeros((n, h, w, 3), np.float32)
                alpha = px[..., 0]
            out[idx] = px[..., 1:].reshape(h, w, len(idx), 3).transpose(2, 0, 1, 3)
            for i in idx:
                self.lights[i].lightgroup = ""
            if progress:
                progress(1)
        return out, alpha

    def render_mix(self, irradiance: np.ndarray) -> np.ndarray:  # [N, 3] per stage light -> [H, W, 3]
        """The stage lights together at the given RGB irradiances, in one render: by linearity the
        sum of their unit OLATs weighted by ``irradiance`` (up to sampling noise)."""
        irradiance = np.asarray(irradiance, dtype=np.float64)
        self.background.inputs["Strength"].default_value = 0.0
        for obj, e in zip(self.lights, irradiance):
            peak = float(e.max())
            obj.hide_render, obj.lightgroup = peak <= 0.0, ""
            if peak > 0.0:
                obj.data.energy = peak
                obj.data.color = tuple((e / peak).tolist())
        return self._render(["Combined.R", "Combined.G", "Combined.B"])

    def render_environment(self, env: Environment, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(rgb, alpha) lit by the environment alone, rotated as Blender's Mapping node does."""
        self._lights_on(set())
        image = self.bpy.data.images.load(str(path), check_existing=True)
        image.colorspace_settings.name = "Linear Rec.709"
        self.env_texture.image = image
        self.mapping.inputs["Rotation"].default_value = tuple(env.rotation)
        self.background.inputs["Strength"].default_value = env.intensity
        links = self.scene.world.node_tree.links
        links.new(self.env_texture.outputs["Color"], self.background.inputs["Color"])
        px = self._render(["Combined.R", "Combined.G", "Combined.B", "Combined.A"])
        self.background.inputs["Strength"].default_value = 0.0
        return px[..., :3], px[..., 3]

    def render_world(self, world=None) -> tuple[np.ndarray, np.ndarray]:
        """(rgb, alpha) with every stage light off, under ``world`` (a bpy World; None: the stage's own,
        black) and whatever the caller has added to the scene (an emissive card, a lamp)."""
        self._lights_on(set())
        stage_world = self.scene.world
        self.scene.world = world if world is not None else stage_world
        try:
            px = self._render(["Combined.R", "Combined.G", "Combined.B", "Combined.A"])
        finally:
            self.scene.world = stage_world
        return px[..., :3], px[..., 3]

    def render_panorama(self, width: int, height: int, rotation: tuple[float, float, float]) -> np.ndarray:
        """[height, width, 3] lat-long of the scene without the subject or the stage lights, seen from the
        subject's origin by an equirectangular camera turned by Euler ``rotation``."""
        bpy, scene = self.bpy, self.scene
        camera = bpy.data.cameras.new("panorama")
        camera.type, camera.panorama_type = "PANO", "EQUIRECTANGULAR"
        obj = bpy.data.objects.new("panorama", camera)
        obj.rotation_euler = rotation
        scene.collection.objects.link(obj)
        saved = scene.camera, scene.render.resolution_x, scene.render.resolution_y, scene.render.film_transparent
        self._lights_on(set())
        self.subject_obj.hide_render = True
        scene.camera, scene.render.resolution_x, scene.render.resolution_y = obj, width, height
        scene.render.film_transparent = False
        try:
            return self._render(["Combined.R", "Combined.G", "Combined.B"])
        finally:
            scene.camera, scene.render.resolution_x, scene.render.resolution_y, scene.render.film_transparent = saved
            self.subject_obj.hide_render = False
            bpy.data.objects.remove(obj)
            bpy.data.cameras.remove(camera)

    def close(self) -> None:
        self._tmp.cleanup()


@contextlib.contextmanager
def _quiet_stdout():
    """Blender prints a line per render tile and file to C-level stdout: send it to /dev/null."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def vector_to_flow(vector: np.ndarray,  # [H, W, 4] Cycles' Vector pass
                   ) -> tuple[np.ndarray, np.ndarray]:  # ([H, W, 2] to previous, [H, W, 2] to next)
    """Cycles' Vector pass -> pixel offsets to the previous and next frames, +x right, +y down.

    Measured against projected vertex motion: XY is the offset to the previous
    frame and ZW minus the offset to the next, both with +y up.
    """
    to_prev = np.stack([vector[..., 0], -vector[..., 1]], axis=-1)
    to_next = np.stack([-vector[..., 2], vector[..., 3]], axis=-1)
    return to_prev, to_next


def _fcurves(anim):
    """F-curves of an animation (Blender 5 keeps them in layered actions' channelbags)."""
    action = anim.action
    if hasattr(action, "fcurves") and len(getattr(action, "fcurves", [])):
        return list(action.fcurves)
    out = []
    for layer in getattr(action, "layers", []):
        for strip in layer.strips:
            for bag in strip.channelbags:
                out += list(bag.fcurves)
    return out


def _matrix(bpy, rotation: np.ndarray, translation: np.ndarray):
    import mathutils

    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = translation
    return mathutils.Matrix(m.tolist())


def suzanne_subject(seed: int) -> Subject:
    """Blender's Suzanne (a non-face subject), about head-sized, facing -Y, with per-seed look."""
    from .subject import SubjectLook, SKIN_TONES

    bpy = _bpy()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_monkey_add(size=0.16)
    mesh = bpy.context.active_object.data
    mesh.calc_loop_triangles()
    v = np.array([p.co[:] for p in mesh.vertices], dtype=np.float64)
    tri = np.array([t.vertices[:] for t in mesh.loop_triangles], dtype=np.int32)
    v -= 0.5 * (v.min(0) + v.max(0))
    rng = np.random.default_rng(seed)
    albedo = SKIN_TONES[rng.integers(len(SKIN_TONES))]
    look = SubjectLook(tuple(albedo.tolist()), float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.0, 0.15)),
                       (0.1, 0.05, 0.02))
    return Subject(f"suzanne-{seed:04d}", v, tri, np.zeros(len(tri), np.int32), look)
