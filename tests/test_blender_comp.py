"""The comp graph built as a Blender 5 compositor node group and rendered by real bpy equals the
OpenImageIO evaluation (within half-float rounding); with unit gains both equal the beauty."""

import json
import os
import subprocess
import sys

import numpy as np

from compositor_nodes.defaults import default_graph
from compositor_nodes.evaluate import evaluate
from core.io.exr import read_channels
from core.io.passes import PassMetadata, RelitPasses, read_passes, write_passes
from tests.conftest import PYTHONPATH, ROOT

H, W = 24, 40

RENDER = """
import json, sys
import bpy
from blender_addon.comp_builder import build_node_group
from compositor_nodes.graph import Graph

bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
graph = Graph.from_json(json.loads(sys.argv[1]))
tree = build_node_group(graph, scene)
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = {w}, {h}, 100
scene.render.use_compositing = True
scene.render.image_settings.file_format = "OPEN_EXR"
scene.render.image_settings.color_depth = "32"
scene.render.filepath = sys.argv[2]
bpy.ops.render.render(write_still=True)
frames = sorted(n.label for n in tree.nodes if n.type == "FRAME")
grades = sorted(n.name for n in tree.nodes if n.type == "GROUP")
print(json.dumps({{"frames": frames, "grades": grades, "group": scene.compositing_node_group.name}}))
"""


def _pass_file(path):
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:H, 0:W]
    alpha = np.clip(1.2 - np.hypot((yy - H / 2) / (H / 2.5), (xx - W / 2) / (W / 2.5)), 0, 1).astype(np.float32)
    layers = {n: (rng.random((H, W, 3)) * s * alpha[..., None]).astype(np.float32)
              for n, s in (("key", 3.0), ("rim", 1.0), ("environment", 6.0))}
    return write_passes(path, RelitPasses(layers, alpha), PassMetadata(rig={}))


def _render(graph, out):
    code = RENDER.format(w=W, h=H)
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(graph.to_json()), str(out)], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=PYTHONPATH), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_blender_node_group_renders_the_same_image_as_the_oiio_evaluator(tmp_path):
    passes = _pass_file(tmp_path / "relit.exr")
    graph = default_graph(str(passes), str(tmp_path / "oiio.exr"))
    info = _render(graph, tmp_path / "unit.exr")
    assert info["frames"] == ["light environment", "light key", "light rim"]
    assert info["grades"] == ["grade_environment", "grade_key", "grade_rim"]
    _, beauty, alpha = read_passes(passes)
    unit = read_channels(tmp_path / "unit.exr", ["R", "G", "B", "A"])
    np.testing.assert_allclose(unit[..., :3], beauty, rtol=2e-3, atol=4e-3)  # beauty: float sum rounded once
    np.testing.assert_allclose(unit[..., 3], alpha, atol=1e-6)
    graph.nodes["grade_key"].gain = 0.4
    graph.nodes["grade_rim"].tint = (1.0, 0.3, 2.5)
    graph.nodes["grade_environment"].exposure = -1.5
    evaluate(graph)
    _render(graph, tmp_path / "blender.exr")
    oiio = read_channels(tmp_path / "oiio.exr", ["R", "G", "B", "A"])  # written as half
    blender = read_channels(tmp_path / "blender.exr", ["R", "G", "B", "A"])  # float
    np.testing.assert_allclose(blender, oiio, rtol=1e-3, atol=1e-3)
    assert np.abs(blender[..., :3] - unit[..., :3]).max() > 0.1  # the gains did something
