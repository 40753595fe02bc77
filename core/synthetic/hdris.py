"""The eight CC0 HDRIs that ship inside Blender (bpy), found through Blender itself."""

from __future__ import annotations

from pathlib import Path

from ..errors import RelitIOError

BUILTIN_HDRIS = ("city", "courtyard", "forest", "interior", "night", "studio", "sunrise", "sunset")


def builtin_hdri_dir() -> Path:
    """Blender's ``studiolights/world`` folder (imports bpy)."""
    try:
        import bpy
    except ImportError:
        raise RelitIOError("Blender's bundled HDRIs need the bpy module: pip install 'relit[blender]'") from None
    return Path(bpy.utils.system_resource("DATAFILES", path="studiolights/world"))


def builtin_hdri(name: str) -> Path:
    """Path of a bundled HDRI by name (``forest``, ``studio``, ...)."""
    if name not in BUILTIN_HDRIS:
        raise RelitIOError(f"{name!r} is neither an HDRI file nor one of Blender's bundled HDRIs {BUILTIN_HDRIS}")
    return builtin_hdri_dir() / f"{name}.exr"
