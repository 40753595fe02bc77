"""RELIT_OT_relight: the scene's lighting -> a relight job in the worker -> passes and a comp.

``invoke`` (the panel's button) returns at once and follows the job with a timer: progress in the
status bar and the progress cursor, ESC cancels between denoising steps. ``execute`` (scripts,
background mode, tests) runs the same job synchronously. Errors from core are reported with their
message; a crashed or hung worker is reported and Blender keeps running. Applying the results
loads the passes as an image sequence, builds the comp node group and pushes an undo step.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from compositor_nodes.defaults import default_graph
from core.errors import RelitError, ValidationError
from core.io.sequence import frame_path, is_sequence
from core.jobs import AUTO_BUNDLE, AUTO_DELIGHTER, TEMPORAL_WEIGHT, RelightJob

from .dispatch import current_dispatcher
from .scene_rig import bundle_stage_radius, scene_rig
from .world_bake import WORLDS_FOLDER

TIMER_SECONDS = 0.1
PREVIEW_IMAGE = "relit preview"  # the image datablock a preview is shown in


def _prefs(context):
    return context.preferences.addons[__package__].preferences


def _path(value: str, what: str) -> str:
    """A path setting made absolute. A ``//`` path is relative to the .blend file; with an unsaved file
    Blender would resolve it against its own working directory, so outputs would land wherever
    Blender was started: refused, naming the setting."""
    if value.startswith("//") and not bpy.data.filepath:
        raise ValidationError(f"{what} {value!r} is relative to the .blend file, which has not been saved: "
                              "save the .blend (File > Save) or give an absolute path")
    return bpy.path.abspath(value)


def build_job(context) -> tuple[dict, object]:
    """(job JSON, SceneRig) for the scene's lighting and settings."""
    scene, settings = context.scene, context.scene.relit
    prefs = _prefs(context)
    bundle = _path(settings.bundle or prefs.bundle, "Bundle") or AUTO_BUNDLE  # none set: relit's shipped ones
    if not settings.plate:
        raise ValidationError("no plate: choose the flat-lit plate (an EXR or a name.####.exr sequence)")
    context.view_layer.update()  # object matrices as the scene now stands
    output = _path(settings.output, "Output")
    found = scene_rig(scene, settings.anchor, bundle_stage_radius(bundle), bake_dir=Path(output) / WORLDS_FOLDER)
    plate = _path(settings.plate, "Plate")
    job = RelightJob(
        bundle=bundle, input=plate, output=output, rig=found.rig,
        delight=AUTO_DELIGHTER if settings.delight else None,
        matte=_path(settings.matte, "Matte") if settings.matte else None,
        frames=f"{scene.frame_start}-{scene.frame_end}" if settings.use_scene_range and is_sequence(plate) else None,
        hdri_strategy=settings.mode, clusters=settings.clusters,
        steps=None if settings.use_recipe_steps else settings.steps,
        guidance_image=settings.guidance_image, guidance_light=settings.guidance_light, seed=settings.seed,
        temporal=TEMPORAL_WEIGHT if settings.temporal and is_sequence(plate) else 0.0,
        device=prefs.device, working_space=found.working_space)
    job.validate("relit panel")
    return job.to_json(), found


def apply_results(context, job: dict, result: dict) -> bpy.types.NodeTree:
    """Load the passes and build the comp: one branch per light with a keyframeable gain and tint."""
    frames = [f for f in result["frames"]]
    if not frames:
        raise RelitError("the job wrote no frames")
    first = frames[0]["path"]
    pattern = str(Path(result["folder"]) / f"{job['name']}.####.exr") if len(frames) > 1 else first
    numbers = [f["frame"] for f in frames]
    plate = job["input"]
    if len(frames) == 1 and is_sequence(plate):  # one frame of a sequence: its file (a still image node)
        plate = str(frame_path(plate, numbers[0]))
    graph = default_graph(
        pattern, str(Path(result["folder"]) / "comp.####.exr"), plate=plate,
        first=min(numbers) if len(frames) > 1 else None, last=max(numbers) if len(frames) > 1 else None)
    if len(frames) == 1:
        graph.nodes["plate"].first = graph.nodes["plate"].last = None
    from .comp_builder import build_node_group

    # one group per shot (the output folder and job name), rebuilt in place for each new version
    shot = Path(result["folder"]).parent
    tree = build_node_group(graph, context.scene, name=f"relit {shot.name}/{job['name']}")
    bpy.ops.ed.undo_push(message="relit: apply relit passes")
    return tree


class _WorkerOperator:
    """A job in the worker: ``invoke`` returns at once and follows it with a timer (status bar,
    progress cursor, ESC cancels); ``execute`` runs it synchronously (scripts, background mode)."""

    _timer = None
    _job = None
    _state = None
    _dispatch = None

    def start_job(self, context):  # -> (params, op)
        raise NotImplementedError

    def apply(self, context, result: dict) -> None:
        raise NotImplementedError

    def _start(self, context):
        params, op = self.start_job(context)
        self._job = params
        self._dispatch = current_dispatcher(bpy.path.abspath(_prefs(context).python))
        self._state = self._dispatch.start(params, op)

    def _finish(self, context, state) -> set[str]:
        context.scene.relit.status = ""
        if state.error is not None:
            self.report({"WARNING"} if state.cancelled else {"ERROR"}, f"relit: {state.error}")
            return {"CANCELLED"}
        for line in state.logs:
            self.report({"WARNING"}, f"relit: {line}")
        self.apply(context, state.result)
        return {"FINISHED"}

    def execute(self, context):
        try:
            self._start(context)
            return self._finish(context, self._dispatch.wait(self._state))
        except RelitError as e:
            self.report({"ERROR"}, f"relit: {e}")
            return {"CANCELLED"}

    def invoke(self, context, event):
        try:
            self._start(context)
        except RelitError as e:
            self.report({"ERROR"}, f"relit: {e}")
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TIMER_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and not self._state.finished:
            self._dispatch.cancel(self._state)
            context.scene.relit.status = "cancelling..."
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = self._dispatch.poll(self._state)
        if not state.finished:
            fraction = state.done / state.total if state.total else 0.0
            eta = f", {state.eta:.0f} s left" if state.eta is not None else ""
            text = f"relit: {state.stage} {state.done}/{state.total} (frame {state.frame}){eta} - ESC cancels"
            context.scene.relit.status = text
            context.workspace.status_text_set(text)
            context.window_manager.progress_update(int(1000 * fraction))
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        context.workspace.status_text_set(None)
        try:
            return self._finish(context, state)
        except RelitError as e:
            self.report({"ERROR"}, f"relit: {e}")
            return {"CANCELLED"}


class RELIT_OT_relight(_WorkerOperator, bpy.types.Operator):
    """Relight the plate under the scene's lamps and world HDRI (ESC cancels)"""

    bl_idname = "relit.relight"
    bl_label = "Relight"
    bl_options = {"REGISTER"}

    def start_job(self, context):
        job, found = build_job(context)
        for name, why in found.skipped:
            self.report({"INFO"}, f"relit: light {name!r} left out: {why}")
        for name, how in found.approximated:
            self.report({"WARNING"}, f"relit: light {name!r} approximated: {how}")
        if found.world.kind == "baked":
            self.report({"INFO"}, f"relit: world {found.world.note}")
        return job, "relight"

    def apply(self, context, result: dict) -> None:
        apply_results(context, self._job, result)
        if result.get("bundle_choice"):
            self.report({"INFO"}, f"relit: {result['bundle_choice']}")
        self.report({"INFO"}, f"relit: {len(result['frames'])} frame(s) in {result['folder']}")


class RELIT_OT_preview(_WorkerOperator, bpy.types.Operator):
    """Look-dev: relight the current frame fast (an HDRI as 4 area lights, cached per light) and show it
    in the Image Editor as the "relit preview" image"""

    bl_idname = "relit.preview"
    bl_label = "Preview"
    bl_options = {"REGISTER"}

    def start_job(self, context):
        job, _ = build_job(context)
        if is_sequence(job["input"]):
            frame = context.scene.frame_current
            job["frames"] = f"{frame}-{frame}"
        return job, "preview"

    def apply(self, context, result: dict) -> None:
        image = bpy.data.images.get(PREVIEW_IMAGE)
        if image is None:
            image = bpy.data.images.load(result["image"])
            image.name = PREVIEW_IMAGE
        else:
            image.filepath = result["image"]
            image.reload()
        for window in context.window_manager.windows:
            for area in window.screen.areas:
                if area.type == "IMAGE_EDITOR":
                    area.spaces.active.image = image
                    area.tag_redraw()
        frame = result["frames"][0]
        how = "unchanged" if frame["skipped"] else f"{frame['evaluations']} UNet evaluation(s)"
        self.report({"INFO"}, f"relit: preview of frame {frame['frame']} ({how}) in image {PREVIEW_IMAGE!r}")


class RELIT_OT_render_gaussian_view(_WorkerOperator, bpy.types.Operator):
    """Render the reconstruction flat-lit from the scene camera; the frames become the plate"""

    bl_idname = "relit.render_gaussian_view"
    bl_label = "Render flat-lit view"
    bl_options = {"REGISTER"}

    def start_job(self, context):
        from .gaussians_io import camera_json

        settings, scene = context.scene.relit, context.scene
        if not settings.recon:
            raise ValidationError("no reconstruction: choose the folder relit reconstruct wrote")
        params = {"recon": _path(settings.recon, "Reconstruction"), "camera": camera_json(scene),
                  "frames": f"{scene.frame_start}-{scene.frame_end}" if settings.use_scene_range else None,
                  "output": _path(settings.views_output, "Views"), "ply": True}
        return params, "render-views"

    def apply(self, context, result: dict) -> None:
        context.scene.relit.plate = result["pattern"]
        self.report({"INFO"}, f"relit: {result['rendered']} view(s) rendered; the plate is now {result['pattern']}")


class RELIT_OT_import_gaussians(bpy.types.Operator):
    """Load a PLY sequence of dynamic Gaussians as points, one object shown per frame"""

    bl_idname = "relit.import_gaussians"
    bl_label = "Import Gaussians"
    bl_options = {"REGISTER", "UNDO"}

    directory: bpy.props.StringProperty(subtype="DIR_PATH")

    def execute(self, context):
        from .gaussians_io import import_ply_sequence

        try:
            folder = (_path(self.directory, "Folder") if self.directory
                      else str(Path(_path(context.scene.relit.views_output, "Views")) / "ply"))
            collection = import_ply_sequence(folder, context.scene)
        except RelitError as e:
            self.report({"ERROR"}, f"relit: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"relit: {len(collection.objects)} frame(s) of Gaussians in {collection.name!r}")
        return {"FINISHED"}

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


CLASSES = (RELIT_OT_relight, RELIT_OT_preview, RELIT_OT_render_gaussian_view, RELIT_OT_import_gaussians)

register, unregister = bpy.utils.register_classes_factory(CLASSES)
