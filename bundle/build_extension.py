"""Build the Blender extension zip with Blender's own packager.

The add-on (``blender_addon/``) is staged with the light parts of ``core`` and all of
``compositor_nodes`` vendored as its subpackages (Blender must never see a top-level ``core``;
both import their own modules relatively). The model code (torch, diffusers, gsplat) is not
vendored: it runs in the worker's environment.

    python bundle/build_extension.py -o dist
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# heavy or Blender-side parts of core that the add-on never imports
CORE_EXCLUDE = ("model", "relight", "synthetic", "temporal", "gaussians", "farm", "demo.py", "cli.py", "worker.py")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")
log = logging.getLogger("relit.bundle")


def blender_ext() -> Path:
    """Blender's extension packager, shipped inside the bpy wheel."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise SystemExit("bpy is not installed: pip install bpy==5.0.1 (the packager ships inside it)")
    found = sorted(Path(spec.origin).parent.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit(f"Blender's blender_ext.py not found under {Path(spec.origin).parent}")
    return found[-1]


def stage(folder: Path) -> Path:
    """The extension's source tree: the add-on with core and compositor_nodes inside it."""
    shutil.copytree(ROOT / "blender_addon", folder, ignore=IGNORE)
    shutil.copytree(ROOT / "core", folder / "core",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *CORE_EXCLUDE))
    shutil.copytree(ROOT / "compositor_nodes", folder / "compositor_nodes", ignore=IGNORE)
    shutil.copy(ROOT / "LICENSE", folder / "LICENSE")
    return folder


def build(output: Path) -> Path:
    output.mkdir(parents=True, exist_ok=True)
    packager = blender_ext()
    with tempfile.TemporaryDirectory() as tmp:
        source = stage(Path(tmp) / "relit")
        run = subprocess.run([sys.executable, str(packager), "build", "--source-dir", str(source),
                              "--output-dir", str(output)], capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"blender_ext build failed:\n{run.stdout}\n{run.stderr}")
    zips = sorted(output.glob("relit-*.zip"), key=lambda p: p.stat().st_mtime)
    if not zips:
        raise SystemExit(f"blender_ext wrote no relit-*.zip into {output}")
    check = subprocess.run([sys.executable, str(packager), "validate", str(zips[-1])], capture_output=True, text=True)
    if check.returncode != 0:
        raise SystemExit(f"blender_ext validate failed:\n{check.stdout}\n{check.stderr}")
    return zips[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="dist", help="folder for the zip (default dist/)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("%s", build(Path(args.output)))


if __name__ == "__main__":
    main()
