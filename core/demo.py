"""``relit demo``: the main job on a fresh machine, CPU only, a few minutes.

Renders (or reuses) a held-out view of the default bundle's synthetic subject,
relights it under two lights and an HDRI, writes relit EXR passes and a
contact sheet (input, relit, ground truth; the view transform stated) and
prints where they are.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import RelitIOError, ValidationError
from .io.colour import LUMINANCE
from .io.naming import light_layer_name
from .io.passes import read_passes
from .jobs import RelightJob
from .io.preview import contact_sheet
from .lighting.camera import world_to_camera_directions
from .lighting.hdri import load_environment, project_to_layout
from .lighting.rig import Environment, Light, LightRig
from .model.bundle import DEFAULT_BUNDLE
from .model.metrics import psnr

log = logging.getLogger(__name__)

DEMO_HDRI, DEMO_ROTATION = "forest", (0.0, 0.0, math.radians(30))
DEMO_SAMPLES = 256  # Cycles samples of the demo's renders where the bundle does not record its capture's


PHOTO_KEY = (-0.8, 0.25, 0.55)  # camera frame: a key from camera-left (mirrored in x for the right)


def photo_keys(colour: tuple[float, float, float]) -> list[Light]:
    """The photo's two keys: ``key_left`` from camera-left and ``key_right`` mirrored."""
    return [Light("key_left", "area", PHOTO_KEY, 0.3, colour, 3.0),
            Light("key_right", "area", (-PHOTO_KEY[0],) + PHOTO_KEY[1:], 0.3, colour, 3.0)]


def key_balance(layers: dict[str, np.ndarray],   # light layer name -> [H, W, 3]
                box: tuple[int, int, int, int],  # the face (x0, y0, x1, y1)
                ) -> dict[str, float]:
    """Per key, the mean luminance of the face's half it lights over the other half."""
    x0, y0, x1, y1 = box
    mid = (x0 + x1) // 2
    out = {}
    for name, lit, far in (("key_left", slice(x0, mid), slice(mid, x1)), ("key_right", slice(mid, x1), slice(x0, mid))):
        luma = layers[light_layer_name(name)][y0:y1] @ LUMINANCE
        out[f"{name}_lit_over_far_side"] = float(luma[:, lit].mean() / max(luma[:, far].mean(), 1e-12))
    return out


@dataclass
class DemoResult:
    passes: Path
    sheet: Path
    scores: dict                 # PSNR (dB) against Cycles on the synthetic subject
    photo: dict                  # the real photo: each key's lit-side / far-side brightness on the face
    hdri_cost: dict              # UNet evaluations of one HDRI: "stage" (every stage light of the subject's
                                 # bundle) and "portrait" (the photo's one envmap pass)


def _nearest_stage_light(layout, c2w, camera_dir) -> int:
    return int(np.argmax(world_to_camera_directions(layout.directions, c2w) @ np.asarray(camera_dir)))


def run_demo(out: Path, bundle: Path | None = None, train: bool = False, steps: int | None = None, seed: int = 0,
             progress: bool = True) -> DemoResult:
    from .model.bundle import load_bundle, read_info
    from .model.objectives import make_objective
    from .relight_job import run_relight
    from .synthetic.synth import SUBJECTS, SynthConfig, render_stage_mixes, synthesize

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RelitIOError(f"-o {out}: is a file; the demo writes a folder (renders, passes, contact sheet)")
    if train:
        bundle = train_default(out / "train", progress)
    bundle = Path(bundle or DEFAULT_BUNDLE)
    info = read_info(bundle)
    # relit synth names its subjects KIND-SEED (face-0000, person-0100): the demo renders that subject again
    kind, _, seed_of_subject = info.subject.rpartition("-")
    if kind not in SUBJECTS or not seed_of_subject.isdigit():
        raise ValidationError(f"{bundle}: the demo renders its bundle's synthetic subject again, and {info.subject!r} "
                              "is not one relit synth makes; give a bundle trained on relit synth renders")
    res = info.config.resolution
    # the plate at the size of the training captures, so relit relight frames it as training did
    # (bundles from before training framed views like relight trained on whole frames at their own size)
    data = info.training.get("data", {})
    plate_res = int(data.get("image_size", res))
    # and at the samples of the training renders: the plate has the grain the model learned from, and a
    # 256-px demo renders in half the time (bundles that do not record them: 256)
    # (several capture sets record the first set's producer under theirs)
    producer = data.get("producer", {})
    made = producer.get("config") or producer.get("producer", {}).get("config", {})
    samples = int(made.get("samples", DEMO_SAMPLES))
    # checked before the renders: 0 steps (the mean pass alone) is a refine bundle's
    steps = (int(info.recipe["steps"]) if steps is None
             else make_objective(info.recipe["objective"]).check_steps(steps, "--steps"))
    # 1. a held-out view: the demo's own frontal camera, none of the training cameras; flat-lit and the
    # HDRI, no OLATs: the truth of the stage lights is rendered below, one render per light mix
    cfg = SynthConfig(subject=kind, seed=int(seed_of_subject), views=1, frames=1, layout=str(out / "stage.json"),
                      resolution=plate_res, samples=samples, hdris=[DEMO_HDRI], rotations=[list(DEMO_ROTATION)],
                      olats=False)
    out.mkdir(parents=True, exist_ok=True)
    import json
    (out / "stage.json").write_text(json.dumps(info.layout.to_json()))
    capture = synthesize(cfg, out / "subject", progress=progress)
    m = capture.manifest
    cam, frame = m.cameras[0], m.frames[0].frame
    plate = capture.flat(cam.name, frame)
    # 2. the rig: a key light from the upper left, a rim light from behind right, and the HDRI
    key = _nearest_stage_light(m.layout, cam.c2w, [-0.55, 0.45, 0.70])
    rim = _nearest_stage_light(m.layout, cam.c2w, [0.75, 0.25, -0.6])
    cam_dirs = world_to_camera_directions(m.layout.directions, cam.c2w)
    env_path = Path(m.hdri[0].environment.path)
    rig = LightRig([Light("key", "area", tuple(cam_dirs[key]), 0.0, (1.0, 0.85, 0.7), 2.0),
                    Light("rim", "area", tuple(cam_dirs[rim]), 0.0, (0.6, 0.75, 1.0), 3.0)],
                   Environment(str(env_path), DEMO_ROTATION, 1.0), cam.c2w.tolist())
    # 3. relight: the same job `relit relight` runs
    pipe, info = load_bundle(bundle)
    job = RelightJob(bundle=str(bundle), input=str(capture.path(m.flat_images, cam.name, frame)),
                     output=str(out / "relit"), rig=rig, steps=steps, seed=seed)
    report = run_relight(job, pipe_and_info=(pipe, info))
    # what the frame costs (a rerun that skips the frame as unchanged still titles the sheet with it)
    path, evaluations = report.frames[0].path, report.inferences * pipe.evaluations(steps)
    layers, beauty, _ = read_passes(path)
    relit = {name: layers[light_layer_name(name)] for name in ("key", "rim", "environment")}
    # 4. ground truth, Cycles on the same subject and view: each lamp is its stage light at the lamp's
    # colour x intensity, the HDRI its own render; the oracle is the HDRI projected on the stage (the
    # stage strategy's physical bound), each stage mix one render

    def stage_mix(index: int, lamp: Light) -> np.ndarray:  # [N, 3]: one stage light at the lamp's irradiance
        w = np.zeros((len(m.layout), 3))
        w[index] = np.asarray(lamp.rgb) * lamp.intensity
        return w

    mixes = render_stage_mixes(capture.root, {
        "key": stage_mix(key, rig.lights[0]), "rim": stage_mix(rim, rig.lights[1]),
        "oracle": project_to_layout(load_environment(env_path), m.layout, DEMO_ROTATION).weights})
    truth = {"key": mixes["key"], "rim": mixes["rim"], "environment": capture.hdri(m.hdri[0].name, cam.name, frame).rgb}
    oracle = mixes["oracle"]
    mask = plate.alpha > 0.5
    scores = {name: psnr(relit[name], truth[name], mask) for name in truth}
    scores["environment_oracle"] = psnr(oracle, truth["environment"], mask)
    scores["flat_lit_scaled"] = _flat_baseline(plate.rgb, truth["environment"], mask)
    tiles = [("input (flat-lit)", plate.rgb, 0.0)]
    for name in ("key", "rim", "environment"):
        tiles += [(f"relit {name}", relit[name], 0.0), (f"truth {name}", truth[name], 0.0)]
    tiles += [("relit beauty", beauty, 0.0), ("truth beauty", sum(truth.values()), 0.0)]
    photo_tiles, photo, portrait_pass = photo_demo(out / "photo", plate_res, seed)
    tiles += photo_tiles
    sampling = f"{steps} {pipe.objective.check_sampler(None)} steps" if steps else "mean pass"
    sheet = contact_sheet(report.folder / "contact_sheet.png", tiles, columns=3, scale=max(1, 192 // plate_res),
                          title=f"relit demo: {info.id}, {evaluations} UNet evals, {sampling}")
    log.info("demo scores: %s; the photo: %s", scores, photo)
    stage_hdri = len(info.layout) * pipe.evaluations(steps)  # the HDRI's share: one inference per light
    return DemoResult(path, sheet, scores, photo, {"stage": stage_hdri, "portrait": portrait_pass})


def photo_demo(out: Path, size: int, seed: int = 0) -> tuple[list, dict, int]:
    """Relight a real photo with the general portrait bundle, as ``relit relight`` would a plate
    without alpha (automatic matte): a key from camera-left, one from camera-right and the demo's
    HDRI, each a pass. Returns contact-sheet tiles (``size`` px), per key the mean brightness of
    the lit half of the face over the other half, and the UNet evaluations of one pass (the HDRI's).
    The photo is scikit-image's ``astronaut`` (NASA, public domain), which ships inside the
    scikit-image wheel."""
    from .io.images import resize
    from .io.plates import read_plate
    from .lighting.hdri import resolve_hdri
    from .model.bundle import PORTRAIT_BUNDLE, read_info
    from .model.objectives import make_objective
    from .portrait.matte import display_rgb8, face_boxes
    from .portrait.photos import write_photo
    from .relight_job import run_relight

    out.mkdir(parents=True, exist_ok=True)
    path = out / "astronaut.png"
    if not path.exists():
        write_photo("astronaut", path)
    rig = LightRig(photo_keys((1.0, 0.9, 0.8)), Environment(str(resolve_hdri(DEMO_HDRI).resolve()), DEMO_ROTATION,
                                                            1.0))
    job = RelightJob(bundle=str(PORTRAIT_BUNDLE), input=str(path), output=str(out / "relit"), rig=rig,
                     seed=seed)
    report = run_relight(job)
    layers, beauty, _ = read_passes(report.frames[0].path)
    plate = read_plate(path).rgb
    photo = key_balance(layers, face_boxes(display_rgb8(plate), 0.5)[0])
    small = lambda img: resize(np.ascontiguousarray(img, dtype=np.float32), size, size, "box")  # noqa: E731
    tiles = [("photo (astronaut)", small(plate), 0.0)]
    tiles += [(f"photo {name}", small(layers[light_layer_name(name)]), 0.0)
              for name in ("key_left", "key_right", "environment")]
    tiles += [("photo beauty", small(beauty), 0.0)]
    recipe = read_info(PORTRAIT_BUNDLE).recipe  # (a rerun skips the frame: the cost comes from the recipe)
    return tiles, photo, make_objective(recipe["objective"]).evaluations(int(recipe["steps"]))


def _flat_baseline(flat, truth, mask) -> float:
    from .model.metrics import best_scale

    return psnr(flat * best_scale(flat, truth, mask), truth, mask)


def train_default(out: Path, progress: bool = True) -> Path:
    """Render a training capture and train a tiny bundle on it (``relit demo --train``)."""
    from .model.train import TrainConfig, train
    from .synthetic.synth import SynthConfig, synthesize

    capture = out / "capture"
    synthesize(SynthConfig(subject="face", seed=0, views=8, frames=4, layout="default", resolution=128,
                           samples=128), capture, progress=progress)
    trainer, _ = train(TrainConfig(captures=[str(capture)], output=str(out / "run"), resolution=64, steps=3000,
                                   holdout_cameras=["cam05"], command=f"relit demo --train -o {out.parent}"),
                       progress=progress)
    bundle = out / "bundle"
    if bundle.exists():
        shutil.rmtree(bundle)
    return trainer.save(bundle)
