"""relit's Blender extension: scene lights and world HDRI -> relit passes in the artist's scene.

The add-on turns the scene's lighting into a LightRig (``scene_rig``), runs the relight job in a
worker process (``dispatch``, ``operators``) and brings the passes back as a compositor node group
(``comp_builder``). Model code never runs in Blender's process.
"""

from __future__ import annotations

from . import operators, panels, props

MODULES = (props, operators, panels)


def register() -> None:
    for module in MODULES:
        module.register()


def unregister() -> None:
    from .dispatch import set_dispatcher

    set_dispatcher(None)
    for module in reversed(MODULES):
        module.unregister()
