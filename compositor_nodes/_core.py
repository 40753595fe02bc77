"""Where ``core`` is: a top-level package in the repository and a pip install, a sibling
subpackage inside the Blender extension (which must not expose a top-level ``core``)."""

from __future__ import annotations

import importlib
from types import ModuleType

_PARENT = __package__.rpartition(".")[0]
CORE = f"{_PARENT}.core" if _PARENT else "core"


def core_module(name: str) -> ModuleType:
    """``core.<name>`` wherever core lives (``core_module("io.exr")``)."""
    return importlib.import_module(f"{CORE}.{name}")
