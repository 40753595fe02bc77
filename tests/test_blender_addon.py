"""The Blender extension with real bpy 5.0.1: registration, scene -> LightRig, the job end to end."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from core.lighting.area import beta_from_radius
from tests.conftest import PYTHONPATH, ROOT

STAGE_RADIUS = 0.18


def run_bpy(code: str, *args: str, timeout: int = 300) -> dict:
    """Run ``code`` in a fresh Python with bpy (one bpy per process); it prints one JSON line last."""
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=PYTHONPATH), timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_register_and_unregister_twice():
    out = run_bpy("""
import json, bpy, blender_addon
seen = []
for _ in range(2):
    blender_addon.register()
    seen.append([hasattr(bpy.types, "RELIT_PT_main"), bpy.context.scene.relit.use_recipe_steps,
                 bpy.ops.relit.relight.idname()])
    blender_addon.unregister()
print(json.dumps({"seen": seen, "left": hasattr(bpy.types.Scene, "relit") or hasattr(bpy.types, "RELIT_PT_main")}))
""")
    assert out["seen"] == [[True, True, "RELIT_OT_relight"]] * 2 and out["left"] is False  # the bundle's steps


def test_the_panels_steps_reach_the_job_as_the_cli_reads_them(tmp_path):
    """Recipe steps (the default) leave the job's steps unset; off, the Steps field reaches the job as
    given, 0 included (a refine bundle's mean pass, what relit relight --steps 0 runs)."""
    out = run_bpy("""
import json, sys, types, bpy, blender_addon
from blender_addon import operators
blender_addon.register()
operators._prefs = lambda context: types.SimpleNamespace(bundle="", device="cpu")
settings = bpy.context.scene.relit
settings.plate, settings.output = sys.argv[1], sys.argv[2]
jobs = [operators.build_job(bpy.context)[0]]
settings.use_recipe_steps = False
for steps in (0, 3):
    settings.steps = steps
    jobs.append(operators.build_job(bpy.context)[0])
print(json.dumps([j["steps"] for j in jobs]))
""", str(tmp_path / "plate.exr"), str(tmp_path / "out"))
    assert out == [None, 0, 3]


def test_the_panels_delight_option_reaches_the_job(tmp_path):
    """Delight the plate (off by default) makes the job delight with relit's shipped delighter."""
    out = run_bpy("""
import json, sys, types, bpy, blender_addon
from blender_addon import operators
blender_addon.register()  # as a module, not an installed add-on: its preferences as they default
operators._prefs = lambda context: types.SimpleNamespace(bundle="", device="cpu")
build_job = operators.build_job
settings = bpy.context.scene.relit
settings.plate, settings.output = sys.argv[1], sys.argv[2]
jobs = [build_job(bpy.context)[0]]
settings.delight = True
jobs.append(build_job(bpy.context)[0])
print(json.dumps([j["delight"] for j in jobs]))
""", str(tmp_path / "plate.exr"), str(tmp_path / "out"))
    assert out == [None, "auto"]


SCENE = """
import json, math, sys, bpy
from blender_addon.scene_rig import scene_rig

bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
cam.location, cam.rotation_euler = (0, -3, 0), (math.radians(90), 0, 0)   # looks along +Y at the origin
scene.collection.objects.link(cam); scene.camera = cam
anchor = bpy.data.objects.new("head", None); anchor.location = (0, 0, 0); scene.collection.objects.link(anchor)

def lamp(name, kind, location=(0, 0, 0), rotation=(0, 0, 0), **props):
    data = bpy.data.lights.new(name, kind)
    for k, v in props.items():
        setattr(data, k, v)
    obj = bpy.data.objects.new(name, data)
    obj.location, obj.rotation_euler = location, rotation
    scene.collection.objects.link(obj)
    return obj

lamp("key", "POINT", (1, -1, 1), energy=100.0, shadow_soft_size=0.1, color=(1.0, 0.5, 0.25))
lamp("sun", "SUN", rotation=(0, math.radians(45), 0), energy=3.0, exposure=1.0, angle=math.radians(10))
lamp("spot_on", "SPOT", (0, -2, 0), (math.radians(90), 0, 0), energy=200.0, spot_size=math.radians(60),
     spot_blend=0.5, shadow_soft_size=0.0).lightgroup = "practicals"
edge = lamp("spot_edge", "SPOT", (0, -2, 0), (math.radians(90), 0, math.radians(25)), energy=200.0,
            spot_size=math.radians(60), spot_blend=0.5, shadow_soft_size=0.0)
edge.lightgroup = "practicals"
lamp("spot_off", "SPOT", (0, -2, 0), (math.radians(-90), 0, 0), energy=200.0, spot_size=math.radians(60))
lamp("panel", "AREA", (0, -2, 0), (math.radians(90), 0, 0), energy=50.0, shape="DISK", size=0.5)
lamp("hidden", "POINT", (0, -1, 0), energy=10.0).hide_render = True
lamp("dark", "POINT", (0, -1, 0), energy=0.0)
lamp("warm", "POINT", (-1, -1, 0), energy=10.0, use_temperature=True, temperature=2700.0)
world = bpy.data.worlds.new("w"); scene.world = world
nt = world.node_tree
bg = next(n for n in nt.nodes if n.type == "BACKGROUND")
bg.inputs["Strength"].default_value = 1.7
tex = nt.nodes.new("ShaderNodeTexEnvironment")
tex.image = bpy.data.images.load(sys.argv[1])
mapping = nt.nodes.new("ShaderNodeMapping")
mapping.inputs["Rotation"].default_value = (0.1, 0.2, 0.3)
coord = nt.nodes.new("ShaderNodeTexCoord")
nt.links.new(coord.outputs["Generated"], mapping.inputs["Vector"])
nt.links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
nt.links.new(tex.outputs["Color"], bg.inputs["Color"])
bpy.context.view_layer.update()
found = scene_rig(scene, anchor, %r)
print(json.dumps({"rig": found.rig.to_json(), "skipped": dict(found.skipped), "space": found.working_space,
                  "notes": dict(found.notes)}))
""" % STAGE_RADIUS


def test_relit_rig_blend_writes_the_rig_the_add_on_computes(tmp_path):
    """A TD's route: the scene saved as a .blend, ``relit rig --blend`` writes the rig the add-on's
    button computes in that scene (same lamps, same stage radius); bad names exit 2 naming the file."""
    from core.io.exr import write_rgba

    hdri = tmp_path / "sky.exr"
    write_rgba(hdri, np.ones((8, 16, 3), np.float32), np.ones((8, 16), np.float32))
    blend = tmp_path / "shot.blend"
    out = run_bpy(SCENE + """
from blender_addon.scene_rig import bundle_stage_radius
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])
print(json.dumps(scene_rig(scene, anchor, bundle_stage_radius("auto")).rig.to_json()))
""", str(hdri), str(blend))
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    cli = [sys.executable, "-m", "core.cli", "rig", "--blend", str(blend), "--anchor", "head"]
    run = subprocess.run(cli + ["-o", str(tmp_path / "rig.json")], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((tmp_path / "rig.json").read_text()) == out
    assert "hidden: left out (hidden from render)" in run.stdout
    bad = subprocess.run(cli + ["--camera", "nope", "-o", str(tmp_path / "bad.json")], capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "shot.blend: no camera object named 'nope'; it holds ['cam']" in bad.stderr
    assert not (tmp_path / "bad.json").exists()


def test_relit_rig_light_converts_lamps_given_on_the_command_line(tmp_path):
    """``relit rig --light``: lamps in Blender's units around a subject at the origin, seen from the front
    view, converted by the add-on's code; checked against the conversions computed by hand (area: radiance
    P / (pi A) x the solid angle of its disk; sun: its strength) and the camera frame; a bad lamp exits 2."""
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    cli = [sys.executable, "-m", "core.cli", "rig", "--light", "key", "area", "location=1,-1,1", "power=200",
           "size=0.5", "colour=1,0.5,0.25", "--light", "back", "sun", "from=0,1,1", "strength=3", "angle=10",
           "group=rim"]
    run = subprocess.run(cli + ["-o", str(tmp_path / "rig.json")], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rig = {item["name"]: item for item in json.loads((tmp_path / "rig.json").read_text())["lights"]}
    d, area = math.sqrt(3.0), 0.25
    omega = 2 * math.pi * (1 - d / math.sqrt(d * d + area / math.pi))
    assert rig["key"]["intensity"] == pytest.approx(200.0 / (math.pi * area) * omega, rel=1e-5)
    np.testing.assert_allclose(rig["key"]["direction"], np.ones(3) / math.sqrt(3), atol=1e-6)
    np.testing.assert_allclose(rig["key"]["rgb"], [1.0, 0.5, 0.25], atol=1e-6)
    assert rig["back"]["intensity"] == pytest.approx(3.0) and rig["back"]["group"] == "rim"
    np.testing.assert_allclose(rig["back"]["direction"], [0.0, 1 / math.sqrt(2), -1 / math.sqrt(2)], atol=1e-6)
    assert rig["back"]["size"] == pytest.approx(float(beta_from_radius(math.radians(5), 0.18)), rel=1e-5)
    bad = subprocess.run(cli[:5] + ["key", "area", "power=lots", "-o", str(tmp_path / "bad.json")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--light key power: give 1 number(s), got 'lots'" in bad.stderr and not (tmp_path / "bad.json").exists()
    wrong = subprocess.run(cli[:5] + ["back", "sun", "from=0,1,1", "power=5", "-o", str(tmp_path / "bad.json")],
                           capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert wrong.returncode == 2 and "'power=5' is not key=value with a key a sun lamp reads" in wrong.stderr


def test_scene_lights_become_a_rig_with_hand_computed_values(tmp_path):
    from core.io.exr import write_rgba

    hdri = tmp_path / "sky.exr"
    write_rgba(hdri, np.ones((8, 16, 3), np.float32), np.ones((8, 16), np.float32))
    out = run_bpy(SCENE, str(hdri))
    lights = {light["name"]: light for light in out["rig"]["lights"]}
    assert out["space"] == "lin_rec709"
    assert out["skipped"] == {"hidden": "hidden from render", "dark": "zero energy",
                              "spot_off": "the subject is outside its cone"}
    # camera frame: x = world x, y = world z, z = -world y (the camera sits at -Y looking at +Y)
    s3 = 1 / math.sqrt(3)
    key = lights["key"]
    np.testing.assert_allclose(key["direction"], [s3, s3, s3], atol=1e-6)
    np.testing.assert_allclose(key["intensity"], 100.0 / (4 * math.pi * 3), rtol=1e-5)
    np.testing.assert_allclose(key["rgb"], [1.0, 0.5, 0.25], rtol=1e-6)
    np.testing.assert_allclose(key["size"], beta_from_radius(math.atan2(0.1, math.sqrt(3)), STAGE_RADIUS), atol=1e-6)
    assert key["type"] == "point" and "group" not in key
    sun = lights["sun"]  # a sun turned 45 degrees about Y: the light is towards (sin 45, 0, cos 45)
    np.testing.assert_allclose(sun["direction"], [math.sqrt(0.5), math.sqrt(0.5), 0.0], atol=1e-6)
    np.testing.assert_allclose(sun["intensity"], 3.0 * 2.0, rtol=1e-6)  # strength x 2^exposure
    np.testing.assert_allclose(sun["size"], beta_from_radius(math.radians(5), STAGE_RADIUS), atol=1e-6)
    on = lights["spot_on"]  # on its axis, 2 m in front of the camera side
    np.testing.assert_allclose(on["direction"], [0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(on["intensity"], 200.0 / (4 * math.pi * 4), rtol=1e-5)
    assert on["group"] == "practicals" and lights["spot_edge"]["group"] == "practicals"
    # 25 degrees off the axis of a 60-degree cone with blend 0.5: Cycles' smoothstep by hand
    cos_half = math.cos(math.radians(30))
    t = (math.cos(math.radians(25)) - cos_half) / ((1 - cos_half) * 0.5)
    np.testing.assert_allclose(lights["spot_edge"]["intensity"], 200.0 / (16 * math.pi) * t * t * (3 - 2 * t),
                               rtol=1e-4)
    panel = lights["panel"]  # a 0.5 m disk of 50 W facing the subject from 2 m
    area = math.pi * 0.25 ** 2
    radiance = 50.0 / (math.pi * area)
    omega = 2 * math.pi * (1 - 2 / math.sqrt(4 + 0.25 ** 2))
    np.testing.assert_allclose(panel["intensity"], radiance * omega, rtol=1e-5)
    np.testing.assert_allclose(panel["size"], beta_from_radius(math.atan2(0.25, 2.0), STAGE_RADIUS), atol=1e-6)
    warm = lights["warm"]["rgb"]
    assert warm[0] == 1.0 and warm[0] > warm[1] > warm[2]  # 2700 K
    env = out["rig"]["environment"]
    assert env["path"] == str(hdri) and env["intensity"] == pytest.approx(1.7)
    np.testing.assert_allclose(env["rotation"], [0.1, 0.2, 0.3], atol=1e-6)
    np.testing.assert_allclose(np.array(out["rig"]["camera_c2w"])[:3, 3], [0, -3, 0], atol=1e-6)


SPHERE = """
import json, math, sys, bpy
from blender_addon.scene_rig import scene_rig
hdri, out = sys.argv[1], sys.argv[2]
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
bpy.ops.mesh.primitive_uv_sphere_add(segments=128, ring_count=64, radius=1.0)
sphere = bpy.context.object
bpy.ops.object.shade_smooth()
mat = bpy.data.materials.new("white")
nodes = mat.node_tree.nodes
bsdf = nodes.new("ShaderNodeBsdfDiffuse"); bsdf.inputs["Color"].default_value = (0.8, 0.8, 0.8, 1)
out_node = next(n for n in nodes if n.type == "OUTPUT_MATERIAL")
mat.node_tree.links.new(bsdf.outputs[0], out_node.inputs["Surface"])
sphere.data.materials.append(mat)
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
cam.data.type, cam.data.ortho_scale = "ORTHO", 2.2
cam.location, cam.rotation_euler = (0, -5, 0), (math.radians(90), 0, 0)
scene.collection.objects.link(cam); scene.camera = cam
world = bpy.data.worlds.new("w"); scene.world = world
nt = world.node_tree
bg = next(n for n in nt.nodes if n.type == "BACKGROUND"); bg.inputs["Strength"].default_value = 1.5
tex = nt.nodes.new("ShaderNodeTexEnvironment"); tex.image = bpy.data.images.load(hdri)
mapping = nt.nodes.new("ShaderNodeMapping"); mapping.inputs["Rotation"].default_value = (0.3, -0.2, 1.1)
coord = nt.nodes.new("ShaderNodeTexCoord")
nt.links.new(coord.outputs["Generated"], mapping.inputs["Vector"])
nt.links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
nt.links.new(tex.outputs["Color"], bg.inputs["Color"])
scene.render.engine = "CYCLES"; scene.cycles.samples = 256; scene.cycles.max_bounces = 1
scene.cycles.use_denoising = False; scene.render.film_transparent = True
scene.render.resolution_x = scene.render.resolution_y = 48; scene.render.resolution_percentage = 100
scene.view_settings.view_transform = "Standard"
scene.render.image_settings.file_format, scene.render.image_settings.color_depth = "OPEN_EXR", "32"
scene.render.filepath = out
bpy.context.view_layer.update()
found = scene_rig(scene)
bpy.ops.render.render(write_still=True)
print(json.dumps({"environment": found.rig.to_json()["environment"]}))
"""


def test_world_hdri_rig_matches_cycles_on_a_diffuse_sphere(tmp_path):
    """Render a white Lambertian sphere under a turned, scaled bundled HDRI with Cycles, and predict
    it from the rig the add-on extracted by direct integration over the map's texels."""
    from core.io.exr import read_channels
    from core.lighting.hdri import load_environment, texels
    from core.lighting.hdri import resolve_hdri

    hdri = resolve_hdri("sunset")
    out = run_bpy(SPHERE, str(hdri), str(tmp_path / "sphere.exr"), timeout=600)
    env = out["environment"]
    assert env["path"] == str(hdri)
    render = read_channels(tmp_path / "sphere.exr", ["R", "G", "B", "A"])
    n = render.shape[0]
    c = (np.arange(n) + 0.5) / n * 2.2 - 1.1
    x, z = np.meshgrid(c, -c)
    inside = x ** 2 + z ** 2 < 0.85 ** 2  # away from the silhouette's partial pixels
    normals = np.stack([x, -np.sqrt(np.clip(1 - x ** 2 - z ** 2, 0, 1)), z], -1)[inside]
    irradiance = np.zeros((len(normals), 3))
    for d, e in texels(load_environment(env["path"]), tuple(env["rotation"])):
        irradiance += np.maximum(normals @ d.T, 0.0) @ e
    predicted = 0.8 / math.pi * env["intensity"] * irradiance
    measured = render[inside][:, :3]
    rel = np.abs(measured - predicted).mean() / predicted.mean()
    assert rel < 0.03, f"mean relative error {rel:.3%}"
    # the same check with the rotation left out fails: the test can tell a wrong convention
    wrong = np.zeros((len(normals), 3))
    for d, e in texels(load_environment(env["path"]), (0.0, 0.0, 0.0)):
        wrong += np.maximum(normals @ d.T, 0.0) @ e
    assert np.abs(measured - 0.8 / math.pi * 1.5 * wrong).mean() / predicted.mean() > 3 * rel
