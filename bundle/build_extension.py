"""Build the Blender extension zip with Blender's own packager.

What the extension carries follows from what the add-on imports, read from the import statements
(``import_graph``): every module of ``blender_addon/`` plus the modules of ``core`` and
``compositor_nodes`` they reach, transitively (lazy imports inside functions included). Those are
vendored as subpackages of the add-on, and their absolute imports of ``core`` / ``compositor_nodes``
are rewritten as relative ones, so Blender never sees a top-level ``core`` (all extensions share one
``sys.path``). The build fails, naming the import and its line, when

- an import reaches a project module that does not exist,
- the add-on's closure needs a third-party package that Blender's own Python does not have (torch,
  diffusers and gsplat run in the worker's environment, never in Blender),
- an ``import core...`` statement cannot be rewritten, or
- anything in the staged extension still resolves outside it.

    python bundle/build_extension.py -o dist [--graph docs/extension_imports.md]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from import_graph import Closure, ImportGraphError, Tree, closure

ROOT = Path(__file__).resolve().parent.parent
ADDON = "blender_addon"                    # the add-on's source folder (its files become the extension's root)
VENDORED = ("core", "compositor_nodes")    # packages the add-on may import; shipped as its subpackages
EXTENSION = "relit"                        # the staged package (the manifest's id)
# Blender's compiled-in modules (not files anywhere in the bpy wheel)
BLENDER_BUILTINS = ("bpy", "mathutils", "bmesh", "gpu", "aud", "bl_math", "idprop", "imbuf", "freestyle")
log = logging.getLogger("relit.bundle")


class BuildError(Exception):
    """The extension cannot be built as asked; the message says why and where."""


def bpy_folder() -> Path:
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise BuildError("bpy is not installed: pip install bpy==5.0.1 (Blender's packager ships inside it)")
    return Path(spec.origin).parent


def blender_ext() -> Path:
    """Blender's extension packager, shipped inside the bpy wheel."""
    found = sorted(bpy_folder().glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError(f"Blender's blender_ext.py not found under {bpy_folder()}")
    return found[-1]


def blender_python_modules() -> set[str]:
    """Top-level modules Blender's own Python has, read off the bpy wheel: its compiled-in modules,
    its script modules, the packages it bundles (OpenImageIO, PyOpenColorIO, ...) and the packages
    the wheel requires (numpy, requests, ...), which Blender's Python ships."""
    folder = bpy_folder()
    names = set(BLENDER_BUILTINS)
    for sub in [*folder.glob("*/scripts/modules"), *folder.glob("*/python/lib/python3*/site-packages")]:
        names |= {p.name.split(".")[0] for p in sub.iterdir() if not p.name.startswith("__")}
    required = {re.split(r"[<>=!~;\[ ]", r)[0].lower() for r in importlib.metadata.requires("bpy") or []}
    for module, dists in importlib.metadata.packages_distributions().items():
        if required & {d.lower() for d in dists}:
            names.add(module)
    return names


def addon_closure(tree: Tree) -> Closure:
    """The add-on's modules and everything they import from the vendored packages."""
    entries = [name for name in tree.modules if name.split(".")[0] == ADDON]
    return closure(tree, entries, (ADDON, *VENDORED))


def check_external(found: Closure, available: set[str], where: str) -> None:
    missing = {name: imps for name, imps in found.external.items() if name not in available}
    if missing:
        lines = [f"  {name}: imported by {imp.importer} line {imp.line}" for name, imps in sorted(missing.items())
                 for imp in imps[:3]]
        raise BuildError(f"{where} imports modules Blender's Python does not have (keep them in the worker, "
                         "or import them lazily in a module the add-on does not reach):\n" + "\n".join(lines))


_FROM = re.compile(rb"from(\s+)(\w+)")


def relative_source(tree: Tree, name: str, staged_package: str) -> str:
    """Module ``name``'s source with its absolute imports of the vendored packages made relative
    from ``staged_package`` (the package holding it in the extension)."""
    # bytes, split as Python's tokenizer splits lines: ast's columns are UTF-8 byte offsets
    lines = tree.modules[name].read_bytes().splitlines(keepends=True)
    dots = b"." * len(staged_package.split("."))
    statements = {(imp.line, imp.col): imp for imp in tree.imports(name)}  # one per statement
    for (line, col), imp in sorted(statements.items(), reverse=True):      # right to left on a line
        top = imp.target.split(".")[0]
        if imp.level or top not in (ADDON, *VENDORED):
            continue
        text = lines[line - 1]
        match = _FROM.match(text, col)
        if top == ADDON or match is None or match.group(2).decode() != top:
            raise BuildError(f"{tree.modules[name]}:{line}: write `from {top}.x import y` (a plain "
                             f"`import {top}...` cannot become relative inside the extension; the add-on itself "
                             "imports its own modules relatively)")
        lines[line - 1] = text[:match.start(2)] + dots + text[match.start(2):]
    return b"".join(lines).decode("utf-8")


def stage(folder: Path, tree: Tree, found: Closure) -> list[str]:
    """Write the extension's source tree into ``folder`` (= the package ``EXTENSION``); returns the
    repository modules it holds."""
    folder.mkdir(parents=True)
    for name in found.modules:
        parts = name.split(".")
        inside = parts[1:] if parts[0] == ADDON else parts         # path inside the extension
        is_package = tree.is_package(name)
        target = folder.joinpath(*inside, "__init__.py") if is_package else folder.joinpath(*inside[:-1],
                                                                                            inside[-1] + ".py")
        package = ".".join([EXTENSION, *(inside if is_package else inside[:-1])])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(relative_source(tree, name, package), encoding="utf-8")
    shutil.copy(ROOT / ADDON / "blender_manifest.toml", folder / "blender_manifest.toml")
    shutil.copy(ROOT / "LICENSE", folder / "LICENSE")
    return found.modules


def verify(folder: Path, available: set[str]) -> Closure:
    """Every import of the staged extension resolves inside it or to Blender's Python."""
    staged = Tree.scan(folder.parent, (EXTENSION,))
    try:
        found = closure(staged, sorted(staged.modules), (EXTENSION,))
    except ImportGraphError as e:
        raise BuildError(f"the staged extension is incomplete: {e}") from e
    check_external(found, available, "the staged extension")
    return found


def build(output: Path, graph: Path | None = None) -> Path:
    tree = Tree.scan(ROOT, (ADDON, *VENDORED))
    try:
        found = addon_closure(tree)
    except ImportGraphError as e:
        raise BuildError(str(e)) from e
    available = blender_python_modules()
    check_external(found, available, "the add-on")
    if graph is not None:
        write_graph(graph, found)
    output.mkdir(parents=True, exist_ok=True)
    packager = blender_ext()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / EXTENSION
        stage(source, tree, found)
        verify(source, available)
        run = subprocess.run([sys.executable, str(packager), "build", "--source-dir", str(source),
                              "--output-dir", str(output)], capture_output=True, text=True)
        if run.returncode != 0:
            raise BuildError(f"blender_ext build failed:\n{run.stdout}\n{run.stderr}")
    zips = sorted(output.glob(f"{EXTENSION}-*.zip"), key=lambda p: p.stat().st_mtime)
    if not zips:
        raise BuildError(f"blender_ext wrote no {EXTENSION}-*.zip into {output}")
    check = subprocess.run([sys.executable, str(packager), "validate", str(zips[-1])], capture_output=True, text=True)
    if check.returncode != 0:
        raise BuildError(f"blender_ext validate failed:\n{check.stdout}\n{check.stderr}")
    return zips[-1]


def write_graph(path: Path, found: Closure) -> None:
    """The add-on's import graph as Markdown: each module's imports of the project, and the
    third-party modules it needs inside Blender."""
    by_module: dict[str, set[str]] = {}
    for imp in found.edges:
        by_module.setdefault(imp.importer, set()).add(imp.target)
    lines = ["# What the Blender extension imports", "",
             "Generated by `python bundle/build_extension.py -o dist --graph docs/extension_imports.md` from the",
             "import statements of `blender_addon/` and what they reach in `core/` and `compositor_nodes/`",
             "(lazy imports inside functions included). These modules, and only these, are vendored.", "",
             "| module | imports |", "| --- | --- |"]
    for name in found.modules:
        targets = ", ".join(f"`{t}`" for t in sorted(by_module.get(name, ())))
        lines.append(f"| `{name}` | {targets} |")
    lines += ["", "Third-party modules it needs, all in Blender's own Python: "
              + ", ".join(f"`{n}`" for n in sorted(found.external)) + ".", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="dist", help="folder for the zip (default dist/)")
    ap.add_argument("--graph", type=Path, help="also write the add-on's import graph (Markdown) here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        log.info("%s", build(Path(args.output), args.graph))
    except BuildError as e:
        log.error("relit extension build: %s", e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
