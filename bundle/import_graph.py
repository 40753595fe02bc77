"""The import graph of a tree of Python packages, read from its own import statements.

Every ``import`` and ``from ... import`` counts, at module level or inside a function (a lazy
import runs too, just later). Relative imports are resolved against the importing module's
package; ``from pkg import name`` points at the submodule ``pkg.name`` when there is one. The
extension build uses this twice: on the repository, to find what the add-on needs (the modules it
vendors), and on the staged extension, to prove that every import there resolves inside it.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Import:
    importer: str   # dotted name of the importing module
    target: str     # dotted name imported (absolute; a submodule where the name is one)
    line: int       # line of the import statement in the importer
    level: int      # 0: absolute, n: relative with n leading dots
    col: int        # column of the statement's first character


@dataclass
class Tree:
    """The modules of some packages under one folder."""

    root: Path                    # folder holding the packages
    modules: dict[str, Path]      # dotted name -> source file (a package is its __init__.py)

    @classmethod
    def scan(cls, root: Path, packages: tuple[str, ...]) -> Tree:
        modules: dict[str, Path] = {}
        for package in packages:
            for path in sorted((root / package).rglob("*.py")):
                if "__pycache__" in path.parts:
                    continue
                parts = path.relative_to(root).with_suffix("").parts
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                modules[name] = path
        return cls(root, modules)

    def is_package(self, name: str) -> bool:
        return self.modules[name].name == "__init__.py"

    def imports(self, name: str) -> list[Import]:
        """Every import statement of module ``name``, resolved to absolute dotted names."""
        path = self.modules[name]
        package = name if self.is_package(name) else name.rpartition(".")[0]
        found = []
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.Import):
                found += [Import(name, alias.name, node.lineno, 0, node.col_offset) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(package, node.module, node.level, path, node.lineno)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in self.modules else base
                    found.append(Import(name, target, node.lineno, node.level, node.col_offset))
        return found


def _resolve(package: str, module: str | None, level: int, path: Path, line: int) -> str:
    if level == 0:
        return module or ""
    parts = package.split(".") if package else []
    if level - 1 > len(parts) - 1:
        raise ImportGraphError(f"{path}:{line}: a relative import goes above the top-level package")
    base = parts[:len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))


class ImportGraphError(Exception):
    """An import that cannot be satisfied where the code will run."""


@dataclass
class Closure:
    """What a set of entry modules pulls in, transitively."""

    modules: list[str]                                   # project modules reached, sorted
    edges: list[Import] = field(default_factory=list)    # imports between project modules
    external: dict[str, list[Import]] = field(default_factory=dict)  # third-party top-level name -> imports


def closure(tree: Tree, entries: list[str], project: tuple[str, ...]) -> Closure:
    """Project modules reachable from ``entries``; importing a module also runs its parent packages.

    A target under one of the ``project`` packages that is not in ``tree`` raises
    :class:`ImportGraphError` naming the importer and the line.
    """
    seen: set[str] = set()
    queue = deque(entries)
    result = Closure([])
    while queue:
        name = queue.popleft()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        queue.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        for imp in tree.imports(name):
            top = imp.target.split(".")[0]
            if top in project:
                if imp.target not in tree.modules:
                    raise ImportGraphError(f"{tree.modules[name]}:{imp.line}: {name} imports {imp.target}, "
                                           f"which is not in {tree.root}")
                result.edges.append(imp)
                queue.append(imp.target)
            elif top not in sys.stdlib_module_names and top != "__future__":
                result.external.setdefault(top, []).append(imp)
    result.modules = sorted(seen)
    return result
