"""``relit rig --blend``: a saved .blend's lamps and world -> a LightRig JSON, for a pipeline TD who
drives the CLI or the farm without hand-writing camera-frame rig JSON.

The same conversion as the add-on's Relight button (:func:`scene_rig`), run by ``relit rig`` in a
Python process of its own so that bpy never loads into core's:

    python -m blender_addon.rig_export SHOT.blend -o rig.json [--scene S] [--camera C] [--anchor A]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import bpy

from core.errors import RelitError, ValidationError
from core.jobs import AUTO_BUNDLE

from .scene_rig import bundle_stage_radius, scene_rig
from .world_bake import WORLDS_FOLDER


def _named(collection, name: str, what: str, blend: str, kind: str | None = None):
    """``collection[name]``, or a ValidationError naming the file and what it does hold."""
    found = collection.get(name)
    if found is None or (kind is not None and found.type != kind):
        held = sorted(item.name for item in collection if kind is None or item.type == kind)
        raise ValidationError(f"{blend}: no {what} named {name!r}; it holds {held}")
    return found


def export_rig(blend: str, output: str, scene_name: str | None = None, camera: str | None = None,
               anchor: str | None = None, bundle: str = AUTO_BUNDLE) -> list[str]:
    """Write the rig of ``blend`` (its active scene, or ``scene_name``) to ``output`` (a world that needs
    baking is baked into ``worlds/`` beside it); returns one line per light: used (and what the model
    sees, and what is approximated) or left out (and why), and one for the world."""
    try:
        bpy.ops.wm.open_mainfile(filepath=blend, load_ui=False)
    except RuntimeError as e:
        raise ValidationError(f"{blend}: Blender cannot open it ({str(e).strip()}); give a saved .blend "
                              "file") from None
    scene = _named(bpy.data.scenes, scene_name, "scene", blend) if scene_name else bpy.context.scene
    if camera:
        scene.camera = _named(bpy.data.objects, camera, "camera object", blend, kind="CAMERA")
    anchor_object = _named(bpy.data.objects, anchor, "object", blend) if anchor else None
    found = scene_rig(scene, anchor_object, bundle_stage_radius(bundle),
                      bake_dir=Path(output).resolve().parent / WORLDS_FOLDER)
    found.rig.save(output)
    approximated = dict(found.approximated)
    return ([f"{name}: {note}" + (f" (approximated: {approximated[name]})" if name in approximated else "")
             for name, note in found.notes]
            + [f"world: {found.world.note}"]
            + [f"{name}: left out ({why})" for name, why in found.skipped])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relit rig --blend", description=__doc__.splitlines()[0])
    parser.add_argument("blend", help="the saved .blend file")
    parser.add_argument("-o", "--output", required=True, help="rig JSON to write")
    parser.add_argument("--scene", help="scene name (default: the file's active scene)")
    parser.add_argument("--camera", help="camera object the directions are measured in (default: the scene's)")
    parser.add_argument("--anchor", help="object at the subject (default: the world origin)")
    parser.add_argument("--bundle", default=AUTO_BUNDLE, help="bundle whose stage sets the lamps' sizes")
    args = parser.parse_args(argv)
    try:
        lines = export_rig(args.blend, args.output, args.scene, args.camera, args.anchor, args.bundle)
    except RelitError as e:
        print(f"relit rig: error: {e}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
