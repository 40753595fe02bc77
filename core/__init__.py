"""relit core: lighting math, EXR passes, capture sets, models and jobs.

Only the light subpackages (``lighting``, ``io``, ``data``) are imported
eagerly anywhere; torch, diffusers, gsplat and bpy are imported inside the
modules that need them, so this package loads inside Blender's own Python.
"""

from ._version import __version__

__all__ = ["__version__"]
