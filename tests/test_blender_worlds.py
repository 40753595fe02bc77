"""Every emitter counts, with real bpy 5.0.1: worlds baked by Cycles, emissive meshes as area lights,
lamp node trees; checked against the source image, analytic values and Cycles renders."""

import math

import numpy as np
import pytest

from core.io.exr import read_channels
from core.lighting.hdri import load_environment, resolve_hdri
from core.lighting.latlong import pixel_directions
from tests.test_blender_addon import SCENE, run_bpy

WORLDS = SCENE.split("def lamp(")[0] + """
from pathlib import Path
from blender_addon.world_bake import world_lighting
from core.synthetic.worlds import build_world
hdri, bakes = sys.argv[1], Path(sys.argv[2])
out = {}
for kind in ("light-path", "solid", "sky", "mix"):
    scene.world = world = build_world(kind, hdri)
    pending = world_lighting(world, None)
    found = scene_rig(scene, anchor, bake_dir=bakes)
    env = found.rig.environment
    again = world_lighting(world, bakes)
    out[kind] = {"pending": [pending.kind, pending.environment is None], "kind": found.world.kind,
                 "note": found.world.note,
                 "path": env.path, "rotation": list(env.rotation), "intensity": env.intensity,
                 "mtime": Path(env.path).stat().st_mtime_ns, "again": [again.environment.path,
                                                                     Path(env.path).stat().st_mtime_ns]}
world = bpy.data.worlds["world-solid"]
world.node_tree.nodes["Background"].inputs["Strength"].default_value = 2.0
out["solid x2"] = world_lighting(world, bakes).environment.path
plain = bpy.data.worlds.new("plain"); scene.world = plain
tex = plain.node_tree.nodes.new("ShaderNodeTexEnvironment"); tex.image = bpy.data.images.load(hdri)
plain.node_tree.links.new(tex.outputs["Color"], plain.node_tree.nodes["Background"].inputs["Color"])
found = world_lighting(plain, bakes)
out["plain"] = [found.kind, found.environment.path]
from blender_addon.world_bake import world_digest
# a Light Path inside a node group: the group's Fac is Is Camera Ray, mixing the HDRI with red
grouped = build_world("light-path", hdri)
nt = grouped.node_tree
group = bpy.data.node_groups.new("camera ray", "ShaderNodeTree")
group.interface.new_socket("Fac", in_out="OUTPUT", socket_type="NodeSocketFloat")
inner_path = group.nodes.new("ShaderNodeLightPath"); inner_out = group.nodes.new("NodeGroupOutput")
group.links.new(inner_path.outputs["Is Camera Ray"], inner_out.inputs["Fac"])
nt.nodes.remove(next(n for n in nt.nodes if n.type == "LIGHT_PATH"))
node = nt.nodes.new("ShaderNodeGroup"); node.node_tree = group
mix = next(n for n in nt.nodes if n.type == "MIX_SHADER")
nt.links.new(node.outputs["Fac"], mix.inputs["Fac"])
backdrop = next(n for n in nt.nodes if n.type == "BACKGROUND" and not n.inputs["Color"].is_linked)
backdrop.inputs["Color"].default_value = (1.0, 0.0, 0.0, 1.0)
found = world_lighting(grouped, bakes)
out["grouped"] = [found.note, found.environment.path, len(bpy.data.node_groups)]
# an animated world bakes at the scene's frame
animated = build_world("solid", hdri)
strength = animated.node_tree.nodes["Background"].inputs["Strength"]
for frame, value in ((1, 1.0), (10, 3.0)):
    strength.default_value = value
    strength.keyframe_insert("default_value", frame=frame)
scene.world = animated
scene.frame_set(10)
out["animated"] = scene_rig(scene, anchor, bake_dir=bakes).rig.environment.path
scene.frame_set(1)
ramp_world = bpy.data.worlds.new("ramp")
ramp = ramp_world.node_tree.nodes.new("ShaderNodeValToRGB")
ramp_world.node_tree.links.new(ramp.outputs["Color"], ramp_world.node_tree.nodes["Background"].inputs["Color"])
before = world_digest(ramp_world)
ramp.color_ramp.elements[1].position = 0.5  # a stop moved: another world
out["ramp"] = [before == world_digest(ramp_world), before == world_digest(ramp_world.copy())]
sky = bpy.data.worlds["world-sky"].node_tree.nodes["Sky Texture"]
out["sun"] = [sky.sun_elevation, sky.sun_rotation]
print(json.dumps(out))
"""


def test_worlds_are_baked_as_cycles_renders_them(tmp_path):
    """Light Path (camera sees grey, light is the HDRI), Mix, solid and Sky worlds: each bake is what
    that world shows a diffuse ray, checked against the HDRI itself, the HDRI and fill mixed, the colour
    x strength, and the sun's analytic direction; bakes are reused while the node tree is unchanged; a plain Environment Texture
    world is read from its file, not baked."""
    hdri = str(resolve_hdri("sunset"))
    out = run_bpy(WORLDS, hdri, str(tmp_path / "worlds"), timeout=600)
    for kind in ("light-path", "solid", "sky", "mix"):
        got = out[kind]
        assert got["pending"] == ["bake", True] and got["kind"] == "baked" and "baked" in got["note"]
        assert got["rotation"] == [0.0, 0.0, 0.0] and got["intensity"] == 1.0
        assert got["again"] == [got["path"], got["mtime"]]  # the cache: same file, not rewritten
    assert "Light Path read as a diffuse ray" in out["light-path"]["note"]
    # the Light Path world lights with the HDRI (not the camera's grey): the bake is the map itself
    baked = read_channels(out["light-path"]["path"], ["R", "G", "B"])
    src = load_environment(hdri)
    h, w = baked.shape[:2]
    ref = src.reshape(h, src.shape[0] // h, w, src.shape[1] // w, 3).mean((1, 3))
    assert np.abs(baked - ref).mean() / ref.mean() < 0.04
    # a wrong orientation (the map turned a quarter) would be far off: the check can tell
    assert np.abs(np.roll(baked, w // 4, axis=1) - ref).mean() / ref.mean() > 0.2
    # the Mix world: two thirds the HDRI, one third the blue fill (core.synthetic.worlds)
    mix = read_channels(out["mix"]["path"], ["R", "G", "B"])
    expected = 2.0 / 3.0 * ref + 1.0 / 3.0 * np.array([0.2, 0.35, 0.8])
    assert np.abs(mix - expected).mean() / expected.mean() < 0.04
    solid = read_channels(out["solid"]["path"], ["R", "G", "B"])
    np.testing.assert_allclose(solid.reshape(-1, 3).mean(0), [0.9, 0.75, 0.6], rtol=1e-3)
    assert solid.std(axis=(0, 1)).max() < 1e-3
    assert out["solid x2"] != out["solid"]["path"]  # a changed strength is a new bake
    sky = read_channels(out["sky"]["path"], ["R", "G", "B"])
    elevation, rotation = out["sun"]
    sun = np.array([math.sin(rotation) * math.cos(elevation), math.cos(rotation) * math.cos(elevation),
                    math.sin(elevation)])
    brightest = pixel_directions(*sky.shape[:2])[np.unravel_index(np.argmax(sky.sum(-1)), sky.shape[:2])]
    assert math.degrees(math.acos(np.clip(brightest @ sun, -1, 1))) < 2.0
    assert out["plain"] == ["file", hdri]
    assert out["ramp"] == [False, False]  # a Color Ramp's stops are part of the digest
    # a Light Path inside a node group is read as a diffuse ray too (the HDRI, not the red backdrop),
    # and the group copies the bake made are gone again
    note, path, groups = out["grouped"]
    assert "Light Path read as a diffuse ray" in note and groups == 1
    grouped = read_channels(path, ["R", "G", "B"])
    assert np.abs(grouped - ref).mean() / ref.mean() < 0.04
    animated = read_channels(out["animated"], ["R", "G", "B"])
    np.testing.assert_allclose(animated.reshape(-1, 3).mean(0), 3.0 * np.array([0.9, 0.75, 0.6]), rtol=1e-3)


EMITTERS = SCENE.split("def lamp(")[0] + """
from core.synthetic.worlds import add_card
a, d = float(sys.argv[1]), float(sys.argv[2])
card = add_card(scene, (0.0, -d, 0.0), (0.0, 0.0, 0.0), a, a, (3.0, 2.0, 1.0))   # between camera and head
away = add_card(scene, (d, 0.0, 0.0), (2 * d, 0.0, 0.0), a, a, (1.0, 1.0, 1.0), name="turned away")
pair = add_card(scene, (0.0, 0.0, d), (0.0, 0.0, 0.0), a, a, (1.0, 1.0, 1.0), name="pair")  # above, facing down
mesh = pair.data  # a second card in the same object, below and facing away: open, mixed facing
n = len(mesh.vertices)
mesh.vertices.add(4); mesh.loops.add(4); mesh.polygons.add(1)
w = a / 2
z = 3 * d  # local +Z points down at the head: this quad lies 2d below it, its normal away from the head
mesh.vertices.foreach_set("co", [c for v in mesh.vertices[:n] for c in v.co] + [-w, -w, z, w, -w, z, w, w, z,
                                                                             -w, w, z])
mesh.loops.foreach_set("vertex_index", [0, 1, 2, 3, n, n + 1, n + 2, n + 3])
mesh.polygons.foreach_set("loop_start", [0, 4]); mesh.polygons.foreach_set("loop_total", [4, 4])
mesh.update()
plain = bpy.data.objects.new("plain", bpy.data.meshes.new("plain")); scene.collection.objects.link(plain)
lit = bpy.data.lights.new("noded", "POINT"); lit.energy = 100.0; lit.use_nodes = True
node = lit.node_tree.nodes["Emission"]; node.inputs["Strength"].default_value = 2.0
node.inputs["Color"].default_value = (1.0, 0.5, 0.25, 1.0)
obj = bpy.data.objects.new("noded", lit); obj.location = (0, -1, 0); scene.collection.objects.link(obj)
ies = bpy.data.lights.new("ies", "POINT"); ies.energy = 100.0; ies.use_nodes = True
tex = ies.node_tree.nodes.new("ShaderNodeTexIES")
ies.node_tree.links.new(tex.outputs["Fac"], ies.node_tree.nodes["Emission"].inputs["Strength"])
obj = bpy.data.objects.new("ies", ies); obj.location = (0, -1, 0); scene.collection.objects.link(obj)
bpy.context.view_layer.update()
found = scene_rig(scene, anchor)
print(json.dumps({"rig": {l["name"]: l for l in found.rig.to_json()["lights"]}, "notes": dict(found.notes),
                  "approximated": dict(found.approximated), "skipped": dict(found.skipped)}))
"""


def test_emissive_cards_and_lamp_node_trees(tmp_path):
    """A square emissive card facing the head becomes an area light with Lambert's exact irradiance
    4 L k atan(k), k = x / sqrt(1 + x^2), x = a / 2d, from its direction; a card turned away still
    lights with its back; a lamp's Emission node scales its power and colour; an IES-driven lamp is
    listed as approximated."""
    from core.lighting.area import beta_from_radius

    a, d = 0.4, 1.0
    out = run_bpy(EMITTERS, str(a), str(d))
    card = out["rig"]["card"]
    x = a / (2 * d)
    k = x / math.sqrt(1 + x * x)
    exact = 4.0 * k * math.atan(k)  # per unit radiance
    assert card["type"] == "area"
    np.testing.assert_allclose(np.array(card["rgb"]) * card["intensity"], exact * np.array([3.0, 2.0, 1.0]),
                               rtol=1e-6)
    np.testing.assert_allclose(card["direction"], [0.0, 0.0, 1.0], atol=1e-6)  # towards the camera
    omega = 4.0 * math.asin(a * a / (a * a + 4 * d * d))
    beta = float(beta_from_radius(math.acos(1 - omega / (2 * math.pi)), 0.18))
    assert card["size"] == pytest.approx(beta, rel=1e-6)
    away = out["rig"]["turned away"]
    np.testing.assert_allclose(away["intensity"], exact, rtol=1e-6)
    np.testing.assert_allclose(away["direction"], [1.0, 0.0, 0.0], atol=1e-6)  # +X of the camera looking +Y
    assert "plain" not in out["rig"] and "plain" not in out["skipped"]  # no material: not an emitter
    # two cards in one open mesh, one above the head facing it, one below facing away: both count, from
    # either side; the one below is twice as far (a / 2 over 2d)
    x2 = a / (4 * d)
    k2 = x2 / math.sqrt(1 + x2 * x2)
    pair = out["rig"]["pair"]
    np.testing.assert_allclose(pair["intensity"], abs(exact - 4.0 * k2 * math.atan(k2)), rtol=1e-6)
    noded = out["rig"]["noded"]
    np.testing.assert_allclose(noded["intensity"], 2.0 * 100.0 / (4 * math.pi), rtol=1e-6)
    np.testing.assert_allclose(noded["rgb"], [1.0, 0.5, 0.25], rtol=1e-6)
    assert "noded" not in out["approximated"]
    assert "IES Texture" in out["approximated"]["ies"]
    np.testing.assert_allclose(out["rig"]["ies"]["intensity"], 100.0 / (4 * math.pi), rtol=1e-6)
