"""Face normals as a model input (the portrait issue's geometry ablation): the exact landmarks relit synth
records, carried into the model's framing and rasterised as a plate's detected ones are, through
training, a bundle and a relight."""

import logging
import shutil

import numpy as np
import pytest
import torch

from core.errors import ValidationError

NOSE_TIP, RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 4, 33, 263  # MediaPipe landmark indices (the subject's right/left)


def test_recorded_landmarks_lie_on_the_face_cycles_rendered(capture):
    """Against the render: the landmarks fall on the subject's matte (the outline's within a pixel of it:
    at 32 px they sit on partly covered edge pixels), the nose is nearest the camera and the subject's
    right eye is on the image's left (the frontal camera of the session capture)."""
    import cv2

    for cam, f in capture.views():
        lm = capture.landmarks(cam.name, f.frame)
        alpha = capture.flat(cam.name, f.frame).alpha
        h, w = alpha.shape
        x, y = lm[:, 0].astype(int).clip(0, w - 1), lm[:, 1].astype(int).clip(0, h - 1)
        assert (alpha[y, x] > 0.5).mean() > 0.85
        assert (cv2.dilate(alpha, np.ones((3, 3), np.uint8))[y, x] > 0.5).all()
        assert lm[NOSE_TIP, 2] < np.percentile(lm[:, 2], 5)
        assert lm[RIGHT_EYE_OUTER, 0] < w / 2 < lm[LEFT_EYE_OUTER, 0]


def test_face_normals_face_the_camera_and_lie_on_the_subject_at_the_models_framing(capture):
    from core.io.framing import subject_framing, to_model
    from core.portrait.face_geometry import framed_normals

    cam, f = capture.manifest.cameras[0].name, capture.manifest.frames[0].frame
    lm, alpha = capture.landmarks(cam, f), capture.flat(cam, f).alpha
    for res in (32, 16):  # the capture's own size (identity framing), and a framed, downsized square
        framing = subject_framing(alpha, res)
        normals = framed_normals(lm, framing)
        covered = np.abs(normals).sum(-1) > 0
        assert covered.sum() > 0.1 * res * res
        assert (to_model(alpha[..., None], framing)[covered, 0] > 0.3).all()  # the face lies on the subject
        np.testing.assert_allclose(np.linalg.norm(normals[covered], axis=-1), 1.0, atol=1e-5)
        s = res / framing.size
        nose = normals[int((lm[NOSE_TIP, 1] - framing.y0) * s), int((lm[NOSE_TIP, 0] - framing.x0) * s)]
        assert nose[2] > 0.85
        # the face turns away to either side of the nose
        columns = np.arange(res)[None, :].repeat(res, 0)
        middle = (lm[NOSE_TIP, 0] - framing.x0) * s
        left, right = covered & (columns < middle - 1), covered & (columns > middle + 1)
        assert normals[left, 0].mean() < -0.2 and normals[right, 0].mean() > 0.2


def test_landmark_jitter_has_the_measured_error_of_mediapipe(capture):
    from core.portrait.face_geometry import JITTER_OFFSET, JITTER_SCALE, jittered_landmarks

    lm = capture.landmarks(capture.manifest.cameras[0].name, capture.manifest.frames[0].frame)
    centre = lm[:, :2].mean(0)
    radius = np.linalg.norm(lm[:, :2] - centre, axis=1).mean()
    rng = np.random.default_rng(0)
    draws = [jittered_landmarks(rng, lm) for _ in range(400)]
    shifts = np.array([d[:, :2].mean(0) - centre for d in draws]) / radius
    scales = np.array([np.linalg.norm(d[:, :2] - d[:, :2].mean(0), axis=1).mean() for d in draws]) / radius
    assert np.abs(shifts.mean(0)).max() < 0.02
    np.testing.assert_allclose(shifts.std(0), JITTER_OFFSET, rtol=0.15)
    assert scales.std() == pytest.approx(JITTER_SCALE, rel=0.2)
    assert np.array_equal(lm, capture.landmarks(capture.manifest.cameras[0].name, capture.manifest.frames[0].frame))


def test_a_broken_landmark_file_is_named_with_the_fix(capture, tmp_path):
    from core.data.capture import CaptureSet

    copy = tmp_path / "cap"
    shutil.copytree(capture.root, copy)
    cs = CaptureSet(copy)
    cam, f = cs.manifest.cameras[0].name, cs.manifest.frames[0].frame
    path = cs.path(cs.manifest.landmark_images, cam, f)
    path.write_text('{"format": "relit.landmarks", "points": [[1, 2, 3]]}')
    with pytest.raises(ValidationError, match=f"{path}: expected 'relit.landmarks' with 468"):
        cs.landmarks(cam, f)
    path.unlink()
    with pytest.raises(ValidationError, match=f"{path}: missing .*rerun the same `relit synth`"):
        cs.landmarks(cam, f)
    assert path in cs.missing_files()


def _cfg(capture, out, **kw):
    from core.model.train import TrainConfig

    base = dict(captures=[str(capture.root)], output=str(out), resolution=32, batch=4, lr=1e-3, val_every=0,
                val_samples=2, val_steps=0, checkpoint_every=0, holdout_light_every=8, seed=0, normals=True)
    return TrainConfig(**{**base, **kw})


def test_a_normals_model_starts_from_a_bundle_without_them_and_learns_to_use_them(capture, tmp_path):
    """Started from a bundle, the normals model predicts exactly what the bundle did (its normal channels'
    weights start at zero); after training the normals change its prediction, and its bundle records them."""
    from core.model.bundle import load_bundle
    from core.model.train import Trainer

    plain = Trainer(_cfg(capture, tmp_path / "plain", steps=2, normals=False))
    plain.train(progress=False)
    start = plain.save()
    run = Trainer(_cfg(capture, tmp_path / "normals", steps=30, init_from=str(start)))
    assert run.model.config.in_channels == plain.model.config.in_channels + 3
    data = run.data
    assert data.normals is not None and data.normals.shape[:2] == (len(data.views), 4)
    assert np.abs(data.normals[:, 0]).sum() > 0
    dirs = data.camera_directions(0)[:3]
    before = load_bundle(start)[0](data.flat[0], dirs, np.zeros(3), num_inference_steps=0).images
    got = run.pipeline(run.ema_model())(data.flat[0], dirs, np.zeros(3), num_inference_steps=0,
                                         normals=data.view_normals(0)).images
    np.testing.assert_allclose(got, before, atol=1e-6)
    run.train(progress=False)
    pipe, info = load_bundle(run.save())
    assert info.config.normals
    with_normals = pipe(data.flat[0], dirs, np.zeros(3), num_inference_steps=0, normals=data.view_normals(0)).images
    without = pipe(data.flat[0], dirs, np.zeros(3), num_inference_steps=0).images
    assert np.abs(with_normals - without).max() > 1e-4
    plain_pipe = load_bundle(start)[0]  # a model without normals ignores them
    np.testing.assert_array_equal(plain_pipe(data.flat[0], dirs, np.zeros(3), num_inference_steps=0,
                                             normals=data.view_normals(0)).images, before)


def test_a_normals_bundle_relights_a_plate_with_the_normals_mediapipe_finds_on_it(capture, tmp_path, caplog):
    """relight prepares a plate's normals for a normals bundle (MediaPipe on the plate); with no face found
    they are zero, with a warning: the same relight as a plate prepared without any."""
    from core.lighting.rig import Light, LightRig
    from core.model.bundle import load_bundle
    from core.model.train import Trainer
    from core.relight.frame import (RelightSettings, plan_lighting, prepare_plate, relight_frame,
                                    relight_prepared)

    trainer = Trainer(_cfg(capture, tmp_path / "run", steps=2))
    trainer.train(progress=False)
    pipe, info = load_bundle(trainer.save())
    flat = capture.flat(capture.manifest.cameras[0].name, capture.manifest.frames[0].frame)
    rig = LightRig([Light("key", "area", (0.5, 0.3, 0.81), 0.2, (1.0, 1.0, 1.0), 1.0)])
    settings = RelightSettings(steps=0)
    with caplog.at_level(logging.WARNING):
        passes, _ = relight_frame(pipe, info, flat.rgb, flat.alpha, rig, settings)
    assert "no face found for the model's face normals" in caplog.text  # a 32-px face is below MediaPipe's reach
    assert np.isfinite(passes.layers["key"]).all()
    plan = plan_lighting(info, rig, "auto", 8)
    bare = relight_prepared(pipe, plan, prepare_plate(flat.rgb, flat.alpha, 32), settings).passes
    np.testing.assert_array_equal(bare.layers["key"], passes.layers["key"])


def test_a_plates_normals_at_the_models_framing_are_the_photos_own_at_those_points():
    """Twin: the normals prepare_plate gives a normals model (MediaPipe on the model's square, landmarks
    carried into the model's resolution) against the same square's mesh rasterised at the photo's
    resolution, read where each model pixel's centre falls."""
    from skimage import data

    from core.io.framing import crop_box, face_framing
    from core.portrait.face_geometry import face_normals, plate_normals
    from core.portrait.matte import display_rgb8, face_boxes
    from core.relight.frame import prepare_plate

    u8 = data.astronaut()
    plate = ((u8 / 255.0) ** 2.2).astype(np.float32)
    face = face_boxes(u8, 0.5)[0]
    prepared = prepare_plate(plate, np.ones(plate.shape[:2], np.float32), 64, face=face, normals=True)
    f = prepared.framing
    assert f == face_framing(face, *plate.shape[:2], 64)
    full, covered = face_normals(display_rgb8(crop_box(plate, f)))  # the square at the photo's resolution
    small = prepared.normals
    np.testing.assert_array_equal(small, plate_normals(plate, f))
    ys, xs = np.nonzero(np.abs(small).sum(-1) > 0)
    assert len(ys) > 0.05 * 64 * 64  # the face in a portrait framing's square (head and shoulders)
    py = ((ys + 0.5) * f.size / f.model).astype(int)
    px = ((xs + 0.5) * f.size / f.model).astype(int)
    inside = covered[py, px]
    assert inside.mean() > 0.97
    agree = (small[ys, xs][inside] * full[py, px][inside]).sum(-1)
    assert np.median(agree) > 0.995 and (agree > 0.9).mean() > 0.97


def test_a_patch_trained_normals_model_gets_its_crops_normals(capture, tmp_path):
    """Patch training crops the normals with the images; the network is given them at the crop's latent size."""
    from core.model.train import Trainer

    trainer = Trainer(_cfg(capture, tmp_path / "p", steps=2, patch=16, normals=True))
    batch = trainer.sample(np.random.default_rng(0), trainer.split.train_views)
    assert batch["normals"].shape == batch["flat"].shape == (4, 16, 16, 3)
    assert tuple(trainer.model.normals_latent(torch.from_numpy(batch["normals"])).shape) == (4, 3, 8, 8)
    trainer.train(progress=False)
    assert trainer.step == 2


def test_a_face_framed_small_on_a_big_plate_gets_its_normals():
    """FaceMesh's detector is short-range: on a 1024-px plate with a 50-px face it finds nothing, so the
    landmarks are looked for in the model's square, where that face fills the frame as on the photo.
    Twin: carried back to the photo's pixels they are the landmarks found on the photo itself."""
    import cv2
    from skimage import data

    from core.io.framing import face_framing
    from core.portrait.face_geometry import face_landmarks, plate_landmarks
    from core.portrait.matte import face_boxes
    from core.relight.frame import prepare_plate

    def found(u8):
        plate = ((u8 / 255.0) ** 2.2).astype(np.float32)
        face = face_boxes(u8, 0.5)[0]
        prepared = prepare_plate(plate, np.ones(plate.shape[:2], np.float32), 64, face=face, normals=True)
        return plate_landmarks(plate, face_framing(face, *plate.shape[:2], 64)), prepared.normals

    photo = data.astronaut()
    big = np.full((1024, 1024, 3), 20, np.uint8)
    big[384:640, 384:640] = cv2.resize(photo, (256, 256), interpolation=cv2.INTER_AREA)
    assert face_landmarks(big) is None  # the whole plate: no face for FaceMesh
    (small, normals), (reference, _) = found(big), found(photo)
    assert (np.abs(normals).sum(-1) > 0).mean() > 0.05  # the model is given the face's normals
    back = (small - np.array([384.0, 384.0, 0.0])) * 2.0  # the big plate's pixels -> the photo's
    ocular = np.linalg.norm(reference[RIGHT_EYE_OUTER, :2] - reference[LEFT_EYE_OUTER, :2])
    assert np.median(np.linalg.norm(back[:, :2] - reference[:, :2], axis=1)) < 0.05 * ocular


def test_a_face_framed_big_is_found_in_its_square_shrunk_and_carried_back_at_the_plates_scale():
    """A square wider than FACE_MESH_SIDE is shrunk before FaceMesh; its landmarks come back in the plate's
    pixels. Twin: the photo enlarged five times gives five times the photo's own landmarks."""
    import cv2
    from skimage import data

    from core.io.framing import face_framing
    from core.portrait.face_geometry import FACE_MESH_SIDE, plate_landmarks
    from core.portrait.matte import face_boxes

    def found(u8):
        plate = ((u8 / 255.0) ** 2.2).astype(np.float32)
        framing = face_framing(face_boxes(u8, 0.5)[0], *plate.shape[:2], 64)
        return plate_landmarks(plate, framing), framing

    photo = data.astronaut()
    (reference, _), (big, framing) = found(photo), found(cv2.resize(photo, None, fx=5, fy=5,
                                                                    interpolation=cv2.INTER_CUBIC))
    assert framing.size > FACE_MESH_SIDE  # the shrinking path
    ocular = np.linalg.norm(reference[RIGHT_EYE_OUTER, :2] - reference[LEFT_EYE_OUTER, :2])
    assert np.median(np.linalg.norm(big[:, :2] / 5.0 - reference[:, :2], axis=1)) < 0.05 * ocular
    depth = np.ptp(big[:, 2]) / 5.0 / np.ptp(reference[:, 2])  # z scales like x
    assert 0.8 < depth < 1.25


def test_a_sequence_finds_each_frames_normals_once_and_relights_again_when_they_change(capture, tmp_path,
                                                                                     monkeypatch):
    """A relight job asks MediaPipe once per frame (its resume check and its run share the answer), names
    the frames without a face in its report, and relights a frame whose normals changed (another
    MediaPipe) instead of resuming it."""
    import core.portrait.face_geometry as face_geometry
    from core.model.bundle import read_info
    from core.model.train import Trainer
    from core.relight.frame import NO_FACE_NORMALS
    from core.relight_job import run_relight
    from tests.conftest import relight_job, write_plates

    trainer = Trainer(_cfg(capture, tmp_path / "run", steps=2))
    trainer.train(progress=False)
    bundle = trainer.save()
    plates = write_plates(tmp_path, [1, 2], subject=read_info(bundle).subject)
    calls, found = [], [None]
    monkeypatch.setattr(face_geometry, "plate_landmarks", lambda rgb, framing, space: calls.append(1) or found[0])
    first = run_relight(relight_job(bundle, plates, tmp_path / "out"))
    assert len(calls) == 2 and any(NO_FACE_NORMALS in w and "[1, 2]" in w for w in first.warnings)
    again = run_relight(relight_job(bundle, plates, tmp_path / "out"))
    assert len(calls) == 4 and again.folder == first.folder and all(f.skipped for f in again.frames)
    cam, f = capture.manifest.cameras[0].name, capture.manifest.frames[0].frame
    found[0] = capture.landmarks(cam, f)  # a face now: the model is given its normals
    changed = run_relight(relight_job(bundle, plates, tmp_path / "out"))
    assert changed.folder != first.folder and not any(f.skipped for f in changed.frames)
    assert changed.frames[0].evaluations > 0  # nor did the light cache (frame 2 is frame 1's twin: it did)
    assert not any(NO_FACE_NORMALS in w for w in changed.warnings)
