"""DESIGN.md's layering: the light parts of core load without bpy or torch, bpy stays at the edge."""

import ast
import json

from tests.conftest import ROOT, run_python

LIGHT_MODULES = [
    "core", "core.cli", "core.errors", "core.validation",
    "core.lighting.sh", "core.lighting.area", "core.lighting.encoding", "core.lighting.latlong",
    "core.lighting.rotation", "core.lighting.camera", "core.lighting.layout", "core.lighting.hdri",
    "core.lighting.rig", "core.io.exr", "core.io.passes", "core.io.colour", "core.io.plates",
    "core.io.sequence", "core.io.naming", "core.io.atomic", "core.data.manifest", "core.data.capture",
    "core.jobs", "core.lighting.cluster", "compositor_nodes", "compositor_nodes.graph",
    "compositor_nodes.evaluate", "compositor_nodes.defaults", "compositor_nodes.nuke", "compositor_nodes.expand",
]
HEAVY = ["bpy", "torch", "diffusers", "gsplat"]


def test_light_parts_import_without_bpy_or_torch():
    code = (
        "import importlib, json, sys\n"
        f"for m in {LIGHT_MODULES!r}: importlib.import_module(m)\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_bpy_is_imported_only_in_the_addon_and_core_synthetic():
    offenders = []
    for folder in ("core", "compositor_nodes", "bundle"):
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("core/synthetic/"):
                continue
            if {"bpy", "mathutils"} & set(_imports(path)):
                offenders.append(rel)
    assert offenders == []


def test_imports_point_down_and_core_imports_itself_relatively():
    # Blender must never see a top-level `core`: core imports its own modules relatively (the one
    # exception is the shell, core/cli.py, which DESIGN.md lets import compositor_nodes for `relit comp`).
    # compositor_nodes and blender_addon import core with plain statements, which the extension build
    # rewrites as relative ones; nothing imports a package above it.
    above = {"core": {"core", "compositor_nodes", "blender_addon"}, "compositor_nodes": {"compositor_nodes",
                                                                                        "blender_addon"},
             "blender_addon": {"blender_addon"}}
    offenders = []
    for folder, banned in above.items():
        for path in (ROOT / folder).rglob("*.py"):
            allowed = {"compositor_nodes"} if path == ROOT / "core" / "cli.py" else set()
            if (banned - allowed) & set(_imports(path)):
                offenders.append(path.relative_to(ROOT).as_posix())
    assert offenders == []


def test_the_addon_and_the_compositor_reach_core_by_import_statements_only():
    """No module looked up by a string (importlib) where an import statement would show it."""
    offenders = [path.relative_to(ROOT).as_posix() for folder in ("blender_addon", "compositor_nodes")
                 for path in (ROOT / folder).rglob("*.py") if "importlib" in set(_imports(path))]
    assert offenders == []


def test_the_network_guard_of_the_test_processes_catches_a_connection(tmp_path):
    """The guard every test process runs under (tests/no_network) stops and records a connection
    beyond this machine, and lets loopback through (Ray's local cluster uses it)."""
    import os
    import subprocess
    import sys

    from tests.conftest import PYTHONPATH

    code = ("import socket\n"
            "try:\n"
            "    socket.create_connection(('192.0.2.1', 80), timeout=0.5)\n"
            "except OSError as e:\n"
            "    print('refused:', e)\n"
            "s = socket.socket(); s.settimeout(0.5)\n"
            "print('loopback:', s.connect_ex(('127.0.0.1', 9)))\n")
    log = tmp_path / "network.log"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=PYTHONPATH, RELIT_NETWORK_LOG=str(log)))
    assert "refused: relit tests: a network connection to ('192.0.2.1', 80)" in run.stdout
    assert "loopback:" in run.stdout and "192.0.2.1" in log.read_text()
