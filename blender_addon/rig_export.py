"""``relit rig --blend`` / ``--light``: a saved .blend's lights and world, or lamps given on the command
line in Blender's units -> a LightRig JSON, for a pipeline TD who drives the CLI or the farm without
hand-writing camera-frame rig JSON.

The same conversion as the add-on's Relight button (:func:`scene_rig`), run by ``relit rig`` in a
Python process of its own so that bpy never loads into core's:

    python -m blender_addon.rig_export SHOT.blend -o rig.json [--scene S] [--camera C] [--anchor A]
    python -m blender_addon.rig_export --light key area location=1,-1,1 power=200 size=0.5 -o rig.json

Command-line lamps are built in an empty scene around the subject at the origin, seen by the front
camera (at -Y looking along +Y, Blender's front view) or ``--camera-c2w``; spot and area lamps aim at
the subject.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import bpy
import mathutils

from core.errors import RelitError, ValidationError
from core.jobs import AUTO_BUNDLE
from core.validation import as_numbers, load_json

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


LAMP_TYPES = {"point": "POINT", "spot": "SPOT", "area": "AREA", "sun": "SUN"}
# key=value settings of a command-line lamp: (Blender property or placement, how many numbers)
LAMP_KEYS = {"location": 3, "from": 3, "power": 1, "strength": 1, "size": 1, "angle": 1, "colour": 3,
             "spot": 1, "blend": 1, "group": 0}
LAMP_TYPE_KEYS = {"point": {"location", "power", "size", "colour", "group"},  # what each type reads
                  "spot": {"location", "power", "size", "colour", "group", "spot", "blend"},
                  "area": {"location", "power", "size", "colour", "group"},
                  "sun": {"from", "strength", "angle", "colour", "group"}}


def _numbers(value: str, count: int, where: str) -> list[float]:
    try:
        out = [float(v) for v in value.split(",")]
    except ValueError:
        out = []
    if len(out) != count or not all(math.isfinite(v) for v in out):
        raise ValidationError(f"{where}: give {count} number(s){' separated by commas' if count > 1 else ''}, "
                              f"got {value!r}")
    return out


def _lamp(scene, spec: list[str]) -> None:
    """One ``NAME TYPE key=value ...`` lamp: location (m) for point, spot and area lamps, ``from`` (the
    direction it shines from) for a sun; power (W) or strength (sun, W/m²); size (m: a point or spot's
    radius, an area's side) or angle (sun, degrees); colour; spot and blend (spot cone, degrees and 0-1);
    group (a light group: its relit layer)."""
    if len(spec) < 2 or spec[1] not in LAMP_TYPES:
        raise ValidationError(f"--light {' '.join(spec)}: give NAME TYPE [key=value ...], TYPE one of "
                              f"{sorted(LAMP_TYPES)}")
    name, kind = spec[0], spec[1]
    settings = {}
    for item in spec[2:]:
        key, _, value = item.partition("=")
        if key not in LAMP_TYPE_KEYS[kind] or not value:
            raise ValidationError(f"--light {name}: {item!r} is not key=value with a key a {kind} lamp reads: "
                                  f"{sorted(LAMP_TYPE_KEYS[kind])}")
        settings[key] = value if key == "group" else _numbers(value, LAMP_KEYS[key], f"--light {name} {key}")
    data = bpy.data.lights.new(name, LAMP_TYPES[kind])
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    if kind == "sun":
        if "from" not in settings:
            raise ValidationError(f"--light {name}: a sun needs from=X,Y,Z, the direction it shines from")
        data.energy = settings.get("strength", [1.0])[0]
        data.angle = math.radians(settings.get("angle", [0.526])[0])
        aim = mathutils.Vector(settings["from"])  # a sun shines along its -Z
    else:
        if "location" not in settings:
            raise ValidationError(f"--light {name}: a {kind} lamp needs location=X,Y,Z in metres")
        obj.location = settings["location"]
        data.energy = settings.get("power", [100.0])[0]
        if "size" in settings:
            if kind == "area":
                data.size = settings["size"][0]
            else:
                data.shadow_soft_size = settings["size"][0]
        aim = mathutils.Vector(settings["location"])  # spot and area lamps face the subject at the origin
    if aim.length == 0:
        raise ValidationError(f"--light {name}: its direction is zero")
    obj.rotation_euler = aim.to_track_quat("Z", "Y").to_euler()
    if "colour" in settings:
        data.color = settings["colour"]
    if kind == "spot":
        data.spot_size = math.radians(settings.get("spot", [45.0])[0])
        data.spot_blend = settings.get("blend", [0.15])[0]
    if "group" in settings:
        scene.view_layers[0].lightgroups.add(name=settings["group"])
        obj.lightgroup = settings["group"]


def lights_rig(specs: list[list[str]], output: str, camera_c2w: str | None = None,
               bundle: str = AUTO_BUNDLE) -> list[str]:
    """Write the rig of command-line lamps (:func:`_lamp`) to ``output``; one line per lamp as the add-on
    sees it."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    if camera_c2w:
        c2w = load_json(camera_c2w, "the camera file is missing")
        camera.matrix_world = mathutils.Matrix(as_numbers(c2w, camera_c2w, (4, 4)).tolist())
    else:
        camera.location, camera.rotation_euler = (0.0, -1.0, 0.0), (math.pi / 2.0, 0.0, 0.0)  # Blender's front view
    scene.collection.objects.link(camera)
    scene.camera = camera
    for spec in specs:
        _lamp(scene, spec)
    bpy.context.view_layer.update()
    found = scene_rig(scene, None, bundle_stage_radius(bundle))
    found.rig.save(output)
    return ([f"{name}: {note}" for name, note in found.notes]
            + [f"{name}: left out ({why})" for name, why in found.skipped])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relit rig --blend", description=__doc__.splitlines()[0])
    parser.add_argument("blend", nargs="?", help="the saved .blend file")
    parser.add_argument("--light", action="append", nargs="+", metavar="NAME TYPE [key=value]",
                        help="a lamp in Blender's units (instead of a .blend); repeat for more")
    parser.add_argument("--camera-c2w", help="with --light: JSON 4x4 Blender camera-to-world (default: front view)")
    parser.add_argument("-o", "--output", required=True, help="rig JSON to write")
    parser.add_argument("--scene", help="scene name (default: the file's active scene)")
    parser.add_argument("--camera", help="camera object the directions are measured in (default: the scene's)")
    parser.add_argument("--anchor", help="object at the subject (default: the world origin)")
    parser.add_argument("--bundle", default=AUTO_BUNDLE, help="bundle whose stage sets the lamps' sizes")
    args = parser.parse_args(argv)
    if bool(args.blend) == bool(args.light):
        parser.error("give a .blend file or --light lamps (not both)")
    try:
        if args.light:
            lines = lights_rig(args.light, args.output, args.camera_c2w, args.bundle)
        else:
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
