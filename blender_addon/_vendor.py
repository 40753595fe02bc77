"""Where ``core`` and ``compositor_nodes`` are: subpackages of the installed extension (vendored by
``bundle/``; Blender must never see a top-level ``core``), or top-level packages in the repository."""

from __future__ import annotations

import importlib
from types import ModuleType


def _package(name: str) -> str:
    vendored = f"{__package__}.{name}"
    try:
        importlib.import_module(vendored)
        return vendored
    except ModuleNotFoundError as e:
        if e.name != vendored:
            raise
        return name


CORE = _package("core")
COMPOSITOR = _package("compositor_nodes")


def core_module(name: str) -> ModuleType:
    return importlib.import_module(f"{CORE}.{name}")


def compositor_module(name: str) -> ModuleType:
    return importlib.import_module(f"{COMPOSITOR}.{name}")
