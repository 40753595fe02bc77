"""The Blender extension exactly as shipped: the zip that ``bundle/build_extension.py`` builds,
installed into bpy with an isolated user folder, with no top-level ``core``, ``compositor_nodes``
or ``blender_addon`` importable and none of the worker's packages (torch, diffusers, ...) either,
as in an artist's Blender. Every operator a user can press is pressed, every panel drawn."""

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile

import numpy as np
import pytest

from tests.conftest import ROOT, write_plates

EXT = "bl_ext.user_default.relit"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """The build module (bundle/ is a folder of scripts, not a package)."""
    sys.path.insert(0, str(ROOT / "bundle"))
    try:
        import build_extension
        yield build_extension
    finally:
        sys.path.remove(str(ROOT / "bundle"))


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run = subprocess.run([sys.executable, str(ROOT / "bundle" / "build_extension.py"), "-o", str(out),
                          "--graph", str(out / "imports.md")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    (found,) = out.glob("relit-*.zip")
    return found


def worker_only_modules(build) -> list[str]:
    """Top-level modules of the project's dependencies that Blender's own Python does not have."""
    import importlib.metadata

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~;\[ ]", d)[0].lower().replace("_", "-") for d in deps}
    blender = build.blender_python_modules()
    return sorted(module for module, dists in importlib.metadata.packages_distributions().items()
                  if names & {d.lower().replace("_", "-") for d in dists} and module not in blender
                  and not module.startswith("_"))


# Blender's Python as an artist has it: none of the repository's packages, none of the worker's
INSTALL = """
import importlib, json, sys
for name in ["core", "compositor_nodes", "blender_addon", *json.loads(sys.argv[1])]:
    sys.modules[name] = None
sys.path = [p for p in sys.path if p not in ("", sys.argv[2])]
import bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
installed = bpy.ops.extensions.package_install_files(filepath=sys.argv[3], repo="user_default",
                                                      enable_on_install=True, overwrite=True)
ext = importlib.import_module("%s")
prefs = bpy.context.preferences.addons["%s"].preferences
""" % (EXT, EXT)


def run_shipped(build, extension_zip, tmp_path, script: str, *args: str, timeout: int = 600) -> dict:
    """Install the shipped zip into a fresh bpy process and run ``script`` (it prints one JSON line)."""
    # no repository on the path; only the network guard (the worker it spawns inherits it)
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"),
               PYTHONPATH=str(ROOT / "tests" / "no_network"))
    argv = [json.dumps(worker_only_modules(build)), str(ROOT), str(extension_zip), *args]
    proc = subprocess.run([sys.executable, "-c", INSTALL + script, *argv], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_zip_holds_exactly_the_modules_the_addon_imports(build, extension_zip):
    """What the zip vendors equals the closure of the add-on's imports as grimp (an independent
    import-graph tool) reads them, plus the packages those modules live in."""
    import grimp

    graph = grimp.build_graph("blender_addon", "compositor_nodes", "core", cache_dir=None)
    addon = {m for m in graph.modules if m.split(".")[0] == "blender_addon"}
    needed, todo = set(), set(addon)
    while todo:  # a module, what it imports, and the packages it lives in (their __init__ runs too)
        needed |= todo
        reached = set().union(*(graph.find_upstream_modules(m) for m in todo))
        parents = {".".join(m.split(".")[:i]) for m in todo | reached for i in range(1, len(m.split(".")))}
        todo = (reached | parents) - needed
    with zipfile.ZipFile(extension_zip) as z:
        files = [n for n in z.namelist() if n.endswith(".py")]
    shipped = set()
    for name in files:
        parts = name[:-3].split("/")
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        shipped.add(".".join(parts) if parts and parts[0] in ("core", "compositor_nodes")
                    else ".".join(["blender_addon", *parts]))
    assert shipped == needed
    assert {"core.jobs", "core.model.consistency", "compositor_nodes.graph"} <= shipped  # what broke before
    assert not {"core.model.pipeline", "core.worker", "core.cli"} & shipped                 # model code stays out


def test_the_import_graph_in_the_docs_is_the_code_s(build, extension_zip):
    written = (extension_zip.parent / "imports.md").read_text()
    assert (ROOT / "docs" / "extension_imports.md").read_text() == written, (
        "docs/extension_imports.md is stale: "
        "python bundle/build_extension.py -o dist --graph docs/extension_imports.md")


def test_the_build_fails_on_a_missing_module_a_heavy_import_or_an_absolute_import(build, tmp_path):
    from import_graph import ImportGraphError, Tree

    def tree(files: dict[str, str]):
        for rel, text in files.items():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(text)
        return Tree.scan(tmp_path, ("blender_addon", "core", "compositor_nodes"))

    base = {"blender_addon/__init__.py": "from . import ops\n", "core/__init__.py": "",
            "compositor_nodes/__init__.py": "", "core/light.py": "import numpy\n"}
    missing = tree({**base, "blender_addon/ops.py": "def f():\n    from core.gone import x\n"})
    with pytest.raises(ImportGraphError, match=r"ops.py:2: blender_addon.ops imports core.gone"):
        build.addon_closure(missing)
    heavy = tree({**base, "blender_addon/ops.py": "from core.light import y\nfrom core.model import m\n",
                  "core/model.py": "def load():\n    import torch\n"})
    found = build.addon_closure(heavy)
    assert found.modules == ["blender_addon", "blender_addon.ops", "core", "core.light", "core.model"]
    with pytest.raises(build.BuildError, match=r"torch: imported by core.model line 2"):
        build.check_external(found, build.blender_python_modules(), "the add-on")
    plain = tree({**base, "blender_addon/ops.py": "import core.light\n"})
    with pytest.raises(build.BuildError, match=r"ops.py:1: write `from core.x import y`"):
        build.relative_source(plain, "blender_addon.ops", "relit")
    # one statement, several names: rewritten once, relative from the staged package
    multi = tree({**base, "compositor_nodes/g.py": "x = 1\nif x:\n    from core.light import (a,\n        b)\n"})
    assert build.relative_source(multi, "compositor_nodes.g", "relit.compositor_nodes").splitlines()[2] == \
        "    from ..core.light import (a,"
    # two statements on one line, non-ASCII text before them (ast's columns count UTF-8 bytes)
    two = tree({**base, "blender_addon/ops.py": "s = 'ρ'; from core.light import a; from core import light\n"})
    assert build.relative_source(two, "blender_addon.ops", "relit") == \
        "s = 'ρ'; from .core.light import a; from .core import light\n"


# Every operator and panel of the extension, found by registration (a new one fails the test until
# it is pressed / drawn here). Relight runs through a real worker (the preferences' Python) with the
# shipped default bundle; its comp is rendered with a gain and a tint changed.
RELIGHT = """
import math, os
plate, out = sys.argv[4:6]
prefs.python, prefs.bundle = sys.executable, sys.argv[6]
scene = bpy.context.scene
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
cam.location, cam.rotation_euler = (0, -3, 0), (math.radians(90), 0, 0)
scene.collection.objects.link(cam); scene.camera = cam
key = bpy.data.objects.new("key", bpy.data.lights.new("key", "AREA"))
key.data.energy, key.data.size = 200.0, 0.5
key.location, key.rotation_euler = (1.5, -1.5, 1.0), (math.radians(60), 0, math.radians(45))
rim = bpy.data.objects.new("rim", bpy.data.lights.new("rim", "SUN"))
rim.data.energy, rim.rotation_euler = 2.0, (math.radians(-60), 0, 0)
for obj in (key, rim):
    scene.collection.objects.link(obj)
bpy.context.view_layer.update()

class Layout:
    \"\"\"Records what a draw function puts in a UILayout and checks it as Blender would.\"\"\"
    icons = {i.identifier for i in bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items}
    def __init__(self, log): self.log, self.scale_y = log, 1.0
    def _icon(self, icon):
        assert icon in self.icons, icon
    def box(self): return Layout(self.log)
    def row(self, **kw): return Layout(self.log)
    def column(self, **kw): return Layout(self.log)
    def label(self, text="", icon="NONE"):
        self._icon(icon); self.log.append(["label", text])
    def prop(self, data, name, **kw):
        assert name in data.bl_rna.properties, name
        self.log.append(["prop", name])
    def operator(self, idname, icon="NONE", **kw):
        self._icon(icon)
        module, name = idname.split(".")
        getattr(getattr(bpy.ops, module), name).get_rna_type()   # raises when no such operator
        self.log.append(["operator", idname])

class Drawn:
    def __init__(self, target, log): self.target, self.layout = target, Layout(log)
    def __getattr__(self, name): return getattr(self.target, name)

ours = lambda cls: cls.__module__.startswith(ext.__name__)
drawn = {}
for cls in [c for c in bpy.types.Panel.__subclasses__() + bpy.types.AddonPreferences.__subclasses__() if ours(c)]:
    log = drawn.setdefault(cls.__name__, [])
    cls.draw(Drawn(prefs if issubclass(cls, bpy.types.AddonPreferences) else cls, log), bpy.context)

s = scene.relit
s.plate, s.use_scene_range = plate, False
try:  # the default Output "//relit/" and no .blend saved: refused (an error report raises in background)
    unsaved = list(bpy.ops.relit.relight())
except RuntimeError as e:
    unsaved = str(e)
cwd = sorted(os.listdir("."))
s.output = out
operators = sorted(c.bl_idname for c in bpy.types.Operator.__subclasses__() if ours(c))
relit = bpy.ops.relit.relight()
tree = scene.compositing_node_group
grades = {n.name: n for n in tree.nodes if n.type == "GROUP"}
grades["grade_key"].inputs["Gain"].default_value = 0.5
grades["grade_rim"].inputs["Tint"].default_value = (2.0, 1.0, 0.5, 1.0)
rim.data.energy = 3.0  # a second press (another rig: a new version) rebuilds the same group, grades kept
relit_again = bpy.ops.relit.relight()
preview = list(bpy.ops.relit.preview())  # look-dev: the current frame, shown as the "relit preview" image
shown = bpy.data.images["relit preview"]
shown = [shown.filepath, shown.size[0], shown.size[1], sum(shown.pixels[:])]
tree = scene.compositing_node_group
groups = sorted(g.name for g in bpy.data.node_groups if g.bl_idname == "CompositorNodeTree")
scene.render.engine, scene.cycles.samples = "CYCLES", 1
scene.render.resolution_x = scene.render.resolution_y = 64
scene.render.resolution_percentage = 100
scene.render.image_settings.file_format, scene.render.image_settings.color_depth = "OPEN_EXR", "32"
scene.render.filepath = out + "/comp_render.exr"
bpy.ops.render.render(write_still=True)
bpy.ops.preferences.addon_disable(module=ext.__name__)
left = [n for n in ("RELIT_PT_main", "RELIT_OT_relight") if hasattr(bpy.types, n)] + (
    ["Scene.relit"] if hasattr(bpy.types.Scene, "relit") else [])
top_level = [m for m in sys.modules if m.split(".")[0] in ("core", "compositor_nodes", "blender_addon")
             and sys.modules[m] is not None]  # nothing imported a top-level package
print(json.dumps({"installed": list(installed), "relight": list(relit) + list(relit_again), "groups": groups,
                  "preview": preview, "shown": shown,
                  "unsaved": unsaved, "cwd": cwd,
                  "comp": tree.name, "operators": operators, "drawn": drawn,
                  "grades": sorted(grades), "left": left, "top_level": top_level,
                  "vendored": type(ext.scene_rig.scene_rig(scene).rig).__module__}))
"""


def test_the_shipped_extension_relights_through_the_worker_and_its_comp_renders(build, extension_zip, tmp_path):
    from core.io.exr import read_channels
    from core.io.passes import read_passes

    subject = json.loads((ROOT / "bundle" / "default" / "relit.json").read_text())["subject"]
    plate = write_plates(tmp_path, [1], size=64, subject=subject)  # a one-frame flat.####.exr sequence
    out = run_shipped(build, extension_zip, tmp_path, RELIGHT, plate, str(tmp_path / "relit"),
                      str(ROOT / "bundle" / "default"))
    assert out["installed"] == ["FINISHED"] and out["relight"] == ["FINISHED", "FINISHED"]
    # an unsaved .blend with the default "//relit/" output is refused, nothing written where Blender runs
    assert "Output '//relit/' is relative to the .blend file, which has not been saved" in out["unsaved"]
    assert "relit" not in out["cwd"]
    assert out["groups"] == sorted(["relit Grade", out["comp"]]), out["groups"]  # one group per shot
    assert out["vendored"] == f"{EXT}.core.lighting.rig" and out["top_level"] == []
    assert out["grades"] == ["grade_key", "grade_rim"]
    # the panel and the preferences drew everything they hold; every operator is pressed in this file
    assert set(out["drawn"]) == {"RELIT_PT_main", "RELIT_AddonPreferences"}
    main = out["drawn"]["RELIT_PT_main"]
    assert ["operator", "relit.relight"] in main and ["prop", "plate"] in main and ["prop", "temporal"] in main
    assert ["prop", "delight"] in main
    assert any(kind == "label" and text.startswith("key: ") and "W/m²" in text for kind, text in main)
    assert out["drawn"]["RELIT_AddonPreferences"] == [["prop", "python"], ["prop", "bundle"], ["prop", "device"]]
    assert out["operators"] == ["relit.import_gaussians", "relit.preview", "relit.relight",
                                "relit.render_gaussian_view"]
    assert ["operator", "relit.preview"] in main
    # the preview: its own folder, its beauty shown in Blender as it is on disk
    assert out["preview"] == ["FINISHED"]
    image = tmp_path / "relit" / "preview" / "preview_beauty.0001.exr"
    assert out["shown"][0] == str(image)
    plain = read_channels(image, ["R", "G", "B", "A"])
    assert out["shown"][1:3] == [plain.shape[1], plain.shape[0]]
    assert out["shown"][3] == pytest.approx(float(plain.astype(np.float64).sum()), rel=1e-5)
    assert out["left"] == []  # unregistered cleanly
    # the passes sum to the beauty; the comp render is the gained and tinted sum
    layers, beauty, alpha = read_passes(tmp_path / "relit" / "v002" / "relit.0001.exr")  # the plate's own frame
    from core.io.passes import read_metadata

    # the panel's Temporal blending (on by default) reaches the job of a sequence plate
    assert read_metadata(tmp_path / "relit" / "v002" / "relit.0001.exr")["temporal"] == 0.5
    assert sorted(layers) == ["light_key", "light_rim"]
    assert layers["light_key"].max() > 0 and layers["light_rim"].max() > 0
    np.testing.assert_allclose(layers["light_key"] + layers["light_rim"], beauty, rtol=2e-3, atol=1e-4)
    render = read_channels(tmp_path / "relit" / "comp_render.exr", ["R", "G", "B", "A"])
    expected = 0.5 * layers["light_key"] + layers["light_rim"] * np.array([2.0, 1.0, 0.5])
    np.testing.assert_allclose(render[..., :3], expected, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(render[..., 3], alpha, atol=1e-6)
    assert (tmp_path / "relit" / "logs").is_dir()


GAUSSIANS = """
from mathutils import Matrix
recon, views, c2w_json = sys.argv[4:7]
prefs.python = sys.executable
scene = bpy.context.scene
cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
cam.data.sensor_fit, cam.data.angle = "AUTO", math.radians(22.0)
cam.matrix_world = Matrix(json.loads(c2w_json))
scene.collection.objects.link(cam); scene.camera = cam
scene.render.resolution_x = scene.render.resolution_y = 32
scene.render.resolution_percentage = 100
scene.frame_start, scene.frame_end = 1, 2
s = scene.relit
s.recon, s.views_output = recon, views
rendered = bpy.ops.relit.render_gaussian_view()
imported = bpy.ops.relit.import_gaussians(directory=views + "/ply")
coll = bpy.data.collections["relit gaussians"]
objs = sorted(coll.objects, key=lambda o: o.name)
scene.frame_set(2)
shown = [o.name for o in objs if not o.hide_render]
mesh = objs[0].data
attributes = sorted(a.name for a in mesh.attributes if not a.name.startswith(".") and a.name != "position")
print(json.dumps({"rendered": list(rendered), "imported": list(imported), "plate": s.plate,
                  "camera": ext.gaussians_io.camera_json(scene), "objects": [o.name for o in objs],
                  "shown_at_2": shown, "points": len(mesh.vertices), "attributes": attributes}))
"""


def test_the_shipped_extension_renders_gaussians_from_the_scene_camera_and_imports_them(build, extension_zip,
                                                                                       tmp_path, capture):
    """A reconstruction rendered through the worker from the Blender camera equals a render from the
    capture camera it matches (camera_json's intrinsics), and its PLYs import as per-frame points."""
    from core.gaussians.deform import DeformConfig
    from core.gaussians.export import render_view
    from core.gaussians.train import ReconConfig, load_views, reconstruct, save_config
    from core.io.exr import read_channels

    cfg = ReconConfig(keyframes=2, gaussians=80, resolution=32, densify=False, kframe_iterations=10,
                      segment_iterations=10, warmup=2, deform=DeformConfig((4,), 2, 4, 8, 1))
    store = tmp_path / "recon"
    save_config(store, cfg, str(capture.root))
    recon = reconstruct(load_views(capture, 32), cfg, store=store)
    cam = capture.manifest.cameras[0]
    out = run_shipped(build, extension_zip, tmp_path, "import math\n" + GAUSSIANS, str(store), str(tmp_path / "views"),
                      json.dumps(cam.c2w.tolist()))
    assert out["rendered"] == ["FINISHED"] and out["imported"] == ["FINISHED"]
    assert out["plate"] == str(tmp_path / "views" / "flat.####.exr")
    np.testing.assert_allclose(out["camera"]["K"], cam.K, rtol=1e-5)
    frame = capture.manifest.frames[1].frame
    expected, _ = render_view(recon.model_for(frame), frame, cam.K, cam.c2w, 32, 32)
    got = read_channels(tmp_path / "views" / f"flat.{frame:04d}.exr", ["R", "G", "B", "A"])
    np.testing.assert_allclose(got[..., :3], expected, rtol=2e-3, atol=2e-3)  # half-float storage
    assert out["objects"] == ["relit gaussians.0001", "relit gaussians.0002"]
    assert out["shown_at_2"] == ["relit gaussians.0002"]
    assert out["points"] == 80 and out["attributes"] == ["color", "opacity", "rotation", "scale"]
