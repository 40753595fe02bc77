"""Render the add-on's comp of a relit pass file with real bpy and save it for the docs: the
default graph built as a Blender compositor node group, with the key light's gain and tint changed
as an artist would, next to the untouched beauty. Writes docs/addon_comp.png and the node tree's
layout (docs/addon_comp_tree.txt).

    python bench/addon_comp_render.py --passes out/demo/relit/v001/relit.0001.exr
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCRIPT = r"""
import json, sys, bpy
from blender_addon.comp_builder import build_node_group
from compositor_nodes.defaults import default_graph
passes, out, w, h = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
tree = build_node_group(default_graph(passes, out), scene)
groups = {n.name: n for n in tree.nodes if n.type == "GROUP"}
groups["grade_key"].inputs["Gain"].default_value = 2.0
groups["grade_key"].inputs["Tint"].default_value = (1.0, 0.7, 0.45, 1.0)
groups["grade_environment"].inputs["Gain"].default_value = 0.5
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = w, h, 100
scene.render.image_settings.file_format, scene.render.image_settings.color_depth = "OPEN_EXR", "32"
scene.render.filepath = out
bpy.ops.render.render(write_still=True)
lines = []
for n in sorted(tree.nodes, key=lambda n: (n.location.x, -n.location.y)):
    parent = f" [in frame '{n.parent.label}']" if n.parent else ""
    links = [f"{l.from_node.name}.{l.from_socket.name}" for s in n.inputs for l in s.links]
    extra = ""
    if n.type == "GROUP":
        extra = " gain={:.2f} tint={}".format(n.inputs["Gain"].default_value,
                                             tuple(round(v, 2) for v in n.inputs["Tint"].default_value[:3]))
    lines.append(f"{n.bl_idname:26s} {n.name:22s}{parent}{extra}" + (f" <- {', '.join(links)}" if links else ""))
print(json.dumps({"tree": tree.name, "lines": lines}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", default="out/demo/relit/v001/relit.0001.exr")
    args = ap.parse_args()
    from core.io.exr import read_channels, read_info
    from core.io.passes import read_passes
    from core.io.preview import contact_sheet

    info = read_info(args.passes).parts[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "comp.exr"
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(Path(args.passes).resolve()), str(out),
                               str(info.width), str(info.height)], capture_output=True, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        comp = read_channels(out, ["R", "G", "B"])
    layers, beauty, _ = read_passes(args.passes)
    tiles = [("beauty (relit passes summed)", beauty, 0.0)]
    tiles += [(name.removeprefix("light_"), img, 0.0) for name, img in layers.items()]
    tiles += [("Blender comp: key x2 warm, env x0.5", comp, 0.0)]
    command = "python bench/addon_comp_render.py " + shlex.join(sys.argv[1:])
    contact_sheet(ROOT / "docs" / "addon_comp.png", tiles, columns=len(tiles), scale=max(1, 192 // info.width),
                  title=f"relit comp rendered by Blender 5 ({command})")
    (ROOT / "docs" / "addon_comp_tree.txt").write_text(
        f"# node group '{r['tree']}' built by blender_addon.comp_builder ({command})\n" + "\n".join(r["lines"]) + "\n")
    print("\n".join(r["lines"]))


if __name__ == "__main__":
    main()
