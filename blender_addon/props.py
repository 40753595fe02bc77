"""The add-on's preferences (where the worker runs) and the per-scene relight settings."""

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty,
                       StringProperty)

from core.relight.strategies import AUTO, STAGE, STRATEGIES

# the HDRI strategies of core's registry; the scene's choice is the job's hdri_strategy as it is
MODES = [(s.name, s.label, s.description) for s in STRATEGIES.values() if s is not AUTO]


class RELIT_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python: StringProperty(name="Python", subtype="FILE_PATH",
                           description="Interpreter of an environment where relit is installed (the worker runs "
                                       "there, with torch; Blender's own Python never loads the model)")
    bundle: StringProperty(name="Default bundle", subtype="DIR_PATH",
                           description="Model bundle folder used when the scene names none (empty: relit's "
                                       "shipped bundles, the one trained on the plate's subject, else the general "
                                       "portrait model)")
    device: EnumProperty(name="Device", items=[("cpu", "CPU", ""), ("cuda", "CUDA", "The first GPU")],
                         default="cpu")

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "python")
        col.prop(self, "bundle")
        col.prop(self, "device")


class RELIT_SceneSettings(bpy.types.PropertyGroup):
    plate: StringProperty(name="Plate", subtype="FILE_PATH",
                          description="Flat-lit plate: an EXR or a sequence (name.####.exr), e.g. a rendered 3DGS view")
    matte: StringProperty(name="Matte", subtype="FILE_PATH", description="Matte file or sequence (default: the "
                                                                         "plate's alpha)")
    bundle: StringProperty(name="Bundle", subtype="DIR_PATH", description="Model bundle (default: preferences)")
    delight: BoolProperty(name="Delight the plate", default=False,
                          description="For a plate not shot flat-lit: relit's delighter makes it flat-lit first, "
                                      "then the bundle relights it (none set: the general OLAT model); two-stage")
    anchor: PointerProperty(name="Subject anchor", type=bpy.types.Object,
                            description="Light directions and distances are measured from this object")
    mode: EnumProperty(name="Mode", items=MODES, default=STAGE.name)
    clusters: IntProperty(name="Area lights", default=8, min=1, max=64, description="K for the area mode")
    use_recipe_steps: BoolProperty(name="Recipe steps", default=True,
                                   description="Sample with the steps the bundle's recipe records (chosen by "
                                               "measurement); off: the Steps below")
    steps: IntProperty(name="Steps", default=1, min=0, max=500,
                       description="Sampler steps when not the recipe's (0: a refine bundle's mean pass alone, "
                                   "deterministic, one UNet evaluation per light, as relit relight --steps 0)")
    guidance_image: FloatProperty(name="Image guidance", default=1.0, min=0.0, soft_max=5.0)
    guidance_light: FloatProperty(name="Light guidance", default=1.0, min=0.0, soft_max=10.0)
    seed: IntProperty(name="Seed", default=0, min=0)
    temporal: BoolProperty(name="Temporal blending", default=True,
                           description="A sequence's frames blended along the plate's optical flow: less boil "
                                       "(measured: warping error 12.1 % -> 8.3 %, Cycles' own 8.1 %; +0.7 dB)")
    use_scene_range: BoolProperty(name="Scene frame range", default=True,
                                  description="Relight the scene's frame range (else every frame of the plate)")
    output: StringProperty(name="Output", subtype="DIR_PATH", default="//relit/",
                           description="Version folders v001, v002, ... are made here")
    recon: StringProperty(name="Reconstruction", subtype="DIR_PATH",
                          description="Dynamic 3D Gaussians written by relit reconstruct")
    views_output: StringProperty(name="Views", subtype="DIR_PATH", default="//relit_views/",
                                 description="Where flat-lit renders of the Gaussians (and their PLYs) go")
    status: StringProperty(name="Status", default="")


CLASSES = (RELIT_AddonPreferences, RELIT_SceneSettings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.relit = PointerProperty(type=RELIT_SceneSettings)


def unregister() -> None:
    del bpy.types.Scene.relit
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
