"""RELIT_PT_main: the sidebar panel (3D View > Sidebar > relit): plate, anchor, mode, sampling,
output, and the lights as the model will see them (or why each one is left out)."""

from __future__ import annotations

import bpy

from core.errors import RelitError

from .scene_rig import scene_rig


class RELIT_PT_main(bpy.types.Panel):
    bl_label = "relit"
    bl_idname = "RELIT_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "relit"

    def draw(self, context):
        settings = context.scene.relit
        layout = self.layout
        gauss = layout.box()
        gauss.label(text="Volumetric capture (dynamic Gaussians)", icon="POINTCLOUD_DATA")
        gauss.prop(settings, "recon")
        gauss.prop(settings, "views_output")
        row = gauss.row()
        row.operator("relit.render_gaussian_view", icon="RENDER_STILL")
        row.operator("relit.import_gaussians", icon="IMPORT")
        col = layout.column()
        col.prop(settings, "plate")
        col.prop(settings, "matte")
        col.prop(settings, "bundle")
        col.prop(settings, "delight")
        col.prop(settings, "anchor")
        col.prop(settings, "mode")
        if settings.mode == "area":
            col.prop(settings, "clusters")
        sampling = layout.column(heading="Sampling")
        sampling.prop(settings, "use_recipe_steps")
        steps = sampling.row()
        steps.active = not settings.use_recipe_steps
        steps.prop(settings, "steps")
        sampling.prop(settings, "guidance_image")
        sampling.prop(settings, "guidance_light")
        sampling.prop(settings, "seed")
        layout.prop(settings, "use_scene_range")
        layout.prop(settings, "temporal")
        layout.prop(settings, "output")
        self.draw_lights(context, layout.box())
        row = layout.row()
        row.scale_y = 1.5
        row.operator("relit.preview", icon="IMAGE_DATA")
        row.operator("relit.relight", icon="LIGHT")
        if settings.status:
            layout.label(text=settings.status, icon="TIME")

    @staticmethod
    def draw_lights(context, box) -> None:
        box.label(text="What the model will see", icon="LIGHT")
        try:
            found = scene_rig(context.scene, context.scene.relit.anchor)
        except RelitError as e:
            box.label(text=str(e), icon="ERROR")
            return
        approximated = dict(found.approximated)
        for name, note in found.notes:
            icon = "ERROR" if name in approximated else "OUTLINER_OB_LIGHT"
            box.label(text=f"{name}: {note}", icon=icon)
            if name in approximated:
                box.label(text=f"    approximated: {approximated[name]}")
        box.label(text=f"World: {found.world.note}", icon="WORLD")
        for name, why in found.skipped:
            box.label(text=f"{name}: left out ({why})", icon="HIDE_ON")

CLASSES = (RELIT_PT_main,)

register, unregister = bpy.utils.register_classes_factory(CLASSES)
