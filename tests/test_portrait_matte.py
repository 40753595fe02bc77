"""Automatic mattes (core.portrait.matte) on real photos that ship inside installed packages:
scikit-image's astronaut (NASA, public domain) and matplotlib's Grace Hopper (US Navy, public
domain; matplotlib comes with mediapipe). MediaPipe's models ship in its wheel: nothing downloads."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from core.errors import ValidationError
from core.portrait.matte import auto_matte, display_rgb8, face_boxes
from tests.conftest import PYTHONPATH, ROOT, example_rig


def _photo(name: str) -> np.ndarray:  # [H, W, 3] uint8 sRGB
    from core.portrait.photos import packaged_photo

    return packaged_photo(name)


def _linear(u8: np.ndarray) -> np.ndarray:
    from core.io.colour import convert

    return convert(u8.astype(np.float32) / 255.0, "srgb", "lin_rec709")


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_the_auto_matte_covers_face_hair_and_shoulders_and_not_the_corners(name):
    u8 = _photo(name)
    rgb = _linear(u8)
    np.testing.assert_array_equal(display_rgb8(rgb), u8)  # the detectors see the photo as it was
    (x0, y0, x1, y1), = face_boxes(u8, 0.5)
    fw, fh = x1 - x0, y1 - y0
    alpha = auto_matte(rgb, name)
    h, w = alpha.shape
    inner = (slice(y0 + fh // 6, y1 - fh // 6), slice(x0 + fw // 6, x1 - fw // 6))
    assert alpha[inner].mean() > 0.98                                          # the face
    assert alpha[max(0, y0 - fh // 4):y0, x0 + fw // 4:x1 - fw // 4].mean() > 0.8  # hair (or cap) above it
    below = slice(min(h - 1, y1 + fh), h)                                      # shoulders, beside the neck
    assert alpha[below, max(0, x0 - fw // 2):x0].mean() > 0.8 and alpha[below, x1:min(w, x1 + fw // 2)].mean() > 0.8
    corners = [alpha[:h // 10, :w // 10], alpha[:h // 10, -w // 10:]]
    assert max(c.mean() for c in corners) < 0.02                               # the background's top corners


def test_the_segmenters_doubt_inside_the_face_is_filled_by_the_face_mesh(monkeypatch):
    """A hole the segmenter leaves in the face (as it does at a lens edge or a turned cheek) is opaque in
    the matte: the face mesh's hull is certainly the subject. Without the face mesh the hole shows."""
    import mediapipe as mp

    import core.portrait.matte as matte

    u8 = _photo("astronaut")
    (x0, y0, x1, y1), = face_boxes(u8, 0.5)
    cx, cy, r = (x0 + x1) // 2, (y0 + y1) // 2, (x1 - x0) // 6
    hole = (slice(cy - r, cy + r), slice(cx - r, cx + r))  # the middle of the face
    real = mp.solutions.selfie_segmentation.SelfieSegmentation

    class Doubting(real):
        def process(self, image):  # the whole frame, or the person's box cut from it (found where it lies)
            found = super().process(image)
            mask = found.segmentation_mask.copy()
            (fx0, fy0, fx1, fy1), = face_boxes(np.ascontiguousarray(image), 0.5)
            fx, fy, fr = (fx0 + fx1) // 2, (fy0 + fy1) // 2, (fx1 - fx0) // 6
            mask[fy - fr:fy + fr, fx - fr:fx + fr] = 0.3
            return type("Found", (), {"segmentation_mask": mask})()

    monkeypatch.setattr(mp.solutions.selfie_segmentation, "SelfieSegmentation", Doubting)
    rgb = _linear(u8)
    assert auto_matte(rgb, "astronaut")[hole].min() >= 0.999
    monkeypatch.setattr(matte, "face_outline", lambda *args: None)
    assert auto_matte(rgb, "astronaut")[hole].mean() < 0.5


def test_the_face_mesh_fills_only_the_detected_face():
    """The opaque fill is the face mesh's hull found around the detector's box, a little inside it: none of
    it outside the face box (grown by a quarter of its size for forehead and chin), and none at all where
    the mesh found lies away from the box (another face in the framing square)."""
    import cv2

    from core.io.framing import face_framing
    from core.portrait.face_geometry import plate_landmarks
    from core.portrait.matte import face_outline

    u8 = _photo("astronaut")
    rgb = _linear(u8)
    (x0, y0, x1, y1), = face_boxes(u8, 0.5)
    fw, fh = x1 - x0, y1 - y0
    outline = face_outline(rgb, (x0, y0, x1, y1))
    assert outline is not None and outline[y0 + fh // 3:y1 - fh // 3, x0 + fw // 3:x1 - fw // 3].min() > 0.999
    grown = np.zeros(outline.shape, bool)
    grown[max(0, y0 - fh // 4):y1 + fh // 4, max(0, x0 - fw // 4):x1 + fw // 4] = True
    assert outline[~grown].max() == 0.0
    # inside the mesh's own hull, with a feathered edge (a ramp of pixels, not a cut) inside it
    landmarks = plate_landmarks(rgb, face_framing((x0, y0, x1, y1), *outline.shape, 64), "lin_rec709")
    hull = np.zeros(outline.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(landmarks[:, :2]).astype(np.int32)), 1)
    assert outline[hull == 0].max() == 0.0 and ((outline > 0.05) & (outline < 0.95)).sum() > 2 * (fw + fh)
    shifted = (x0 + fw, y0, x1 + fw, y1)  # a box beside the face: FaceMesh finds the face in its square
    assert plate_landmarks(rgb, face_framing(shifted, *outline.shape, 64), "lin_rec709") is not None
    assert face_outline(rgb, shifted) is None


def test_training_photos_are_premultiplied_as_relight_premultiplies_a_plate(tmp_path):
    """The real-image task sees a photo as relit relight prepares a plate without alpha."""
    import OpenImageIO as oiio

    from core.io.plates import read_plate
    from core.portrait.training_photos import load_framed_photo
    from core.relight.frame import prepare_plate

    path = str(tmp_path / "astronaut.png")
    u8 = _photo("astronaut")
    out = oiio.ImageOutput.create(path)
    out.open(path, oiio.ImageSpec(u8.shape[1], u8.shape[0], 3, oiio.UINT8))
    out.write_image(u8)
    out.close()
    plate = read_plate(path)
    matte = auto_matte(plate.rgb, path)
    prepared = prepare_plate(plate.rgb, matte, 64, premultiply=True, source=path)
    np.testing.assert_array_equal(load_framed_photo(path).plate, prepared.source)


def test_a_plate_without_a_face_asks_for_a_matte():
    from skimage import data

    with pytest.raises(ValidationError, match=r"coffee: no face found .* --matte FILE"):
        auto_matte(_linear(data.coffee()), "coffee")


def test_relight_of_a_photo_without_alpha_uses_the_auto_matte_as_the_pass_alpha(tmp_path):
    """A PNG portrait through ``relit relight``: the passes' alpha is the automatic matte (computed
    here in-process as the reference), and a plate with no face exits with code 2 and the fix."""
    import OpenImageIO as oiio
    from skimage import data

    from core.io.passes import read_passes

    def write_png(path, u8):
        buf = oiio.ImageBuf(oiio.ImageSpec(u8.shape[1], u8.shape[0], 3, "uint8"))
        buf.set_pixels(oiio.ROI(), np.ascontiguousarray(u8))
        assert buf.write(str(path))

    u8 = _photo("astronaut")[::4, ::4]  # 128x128: a small plate
    write_png(tmp_path / "astronaut.png", u8)
    write_png(tmp_path / "coffee.png", data.coffee()[::4, ::4])
    (tmp_path / "rig.json").write_text(json.dumps(example_rig().to_json()))
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)

    def relight(name):
        return subprocess.run([sys.executable, "-m", "core.cli", "relight", "--input", str(tmp_path / f"{name}.png"),
                               "--rig", str(tmp_path / "rig.json"), "--steps", "1", "-o", str(tmp_path / name)],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)

    run = relight("astronaut")
    assert run.returncode == 0, run.stderr
    layers, beauty, alpha = read_passes(tmp_path / "astronaut" / "v001" / "relit.0000.exr")
    expected = auto_matte(_linear(u8), "astronaut")
    np.testing.assert_allclose(alpha, expected, atol=2e-3)  # half-float alpha
    np.testing.assert_allclose(sum(layers.values()), beauty, rtol=2e-3, atol=1e-4)
    run = relight("coffee")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "coffee.png: no face found for the automatic matte" in run.stderr and "--matte" in run.stderr
    assert not (tmp_path / "coffee").exists() or not any((tmp_path / "coffee").rglob("*.exr"))


def test_a_portrait_bundle_frames_a_photo_by_its_face_and_relights_the_shoulders_beyond_it(tmp_path):
    """The general bundle saw faces at one size and place in its square (PORTRAIT_FRAMING): a wide
    photo is framed by its face, not by the whole matte, and the shoulders the square leaves out
    still get the shading change (carried past the square's edges), so every subject pixel is lit."""
    from core.io.framing import PORTRAIT_FRAMING, to_plate
    from core.jobs import RelightJob
    from core.model.bundle import PORTRAIT_BUNDLE, read_info
    from core.portrait.matte import plate_face
    from core.portrait.photos import write_photo
    from core.relight_job import FrameSource

    path = write_photo("astronaut", tmp_path / "astronaut.png")
    info = read_info(PORTRAIT_BUNDLE)
    job = RelightJob(bundle=str(PORTRAIT_BUNDLE), input=str(path), output=str(tmp_path / "out"))
    (_, _, prepared, _), = list(FrameSource(job, info, (12, 32, 32), [0]))
    x0, y0, x1, y1 = plate_face(_linear(_photo("astronaut")))
    f = prepared.framing
    assert f.size == pytest.approx((x1 - x0) / PORTRAIT_FRAMING.width, abs=1) and f.extend
    assert f.y0 + f.size < 512  # the suit continues below the square
    relit = prepared.model_input[None] * np.array([1.5, 1.0, 0.5], np.float32)
    out = to_plate(relit, prepared.model_input, prepared.source, f, prepared.eps)[0]
    subject = prepared.source.min(-1) > 1e-3
    np.testing.assert_allclose(out[subject], prepared.source[subject] * [1.5, 1.0, 0.5], rtol=1e-4)


def test_a_shot_is_framed_by_one_face_box_for_every_frame(tmp_path):
    """The face is looked for on frames spread over the whole shot and one box (their median) frames
    every frame, so the square does not jitter with the detector; a subject-specific bundle keeps
    the matte framing its stage trained it on."""
    import dataclasses

    import OpenImageIO as oiio

    from core.io.plates import GENERAL_SUBJECT
    from core.jobs import RelightJob
    from core.model.bundle import PORTRAIT_BUNDLE, read_info
    from core.portrait.matte import plate_face
    from core.relight_job import FrameSource

    u8 = _photo("astronaut")
    boxes = []
    for frame, shift in enumerate((0, 3, 6, 2, 5, 1, 4), start=1):  # a small drift, frame to frame
        moved = np.roll(u8, shift, axis=1)
        buf = oiio.ImageBuf(oiio.ImageSpec(512, 512, 3, "uint8"))
        buf.set_pixels(oiio.ROI(), np.ascontiguousarray(moved))
        assert buf.write(str(tmp_path / f"shot.{frame:04d}.png"))
        boxes.append(plate_face(_linear(moved)))
    info = read_info(PORTRAIT_BUNDLE)
    assert info.subject == GENERAL_SUBJECT
    job = RelightJob(bundle=str(PORTRAIT_BUNDLE), input=str(tmp_path / "shot.####.png"),
                     output=str(tmp_path / "out"), frames="2-3")  # a farm unit's share of the shot
    framings = {p.framing for _, _, p, _ in FrameSource(job, info, (12, 32, 32), [0])}
    assert len(framings) == 1  # one square for the shot
    sampled = np.median(np.array([boxes[i] for i in (0, 2, 3, 4, 6)]), axis=0)  # frames 1, 3, 4, 5, 7 of 7
    assert FrameSource(job, info, (12, 32, 32), [0]).sequence_face() == tuple(int(round(v)) for v in sampled)
    specific = dataclasses.replace(info, subject="face-0000")
    assert FrameSource(job, specific, (12, 32, 32), [0]).sequence_face() is None


def test_a_face_square_holding_none_of_the_subject_falls_back_to_the_matte(caplog):
    """A shot's face square that holds none of a frame's subject (the subject moved away) would
    divide the model's black by the ratio floor: that frame is framed by its matte, with a warning."""
    from core.io.framing import subject_framing, to_plate
    from core.relight.frame import prepare_plate

    rgb = np.full((200, 600, 3), 0.4, np.float32)
    matte = np.zeros((200, 600), np.float32)
    matte[40:180, 450:550] = 1.0  # the subject, on the right
    with caplog.at_level("WARNING"):
        prepared = prepare_plate(rgb, matte, 32, premultiply=True, face=(80, 80, 120, 120))  # a face box on the left
    assert prepared.framing == subject_framing(matte, 32, 0.1, "plate") and "framed by the matte" in caplog.text
    out = to_plate(prepared.model_input[None] * 0.5 + 0.01, prepared.model_input, prepared.source,
                   prepared.framing, prepared.eps)
    assert np.isfinite(out).all() and out.max() < 1.0


def test_a_matte_file_on_a_plate_with_alpha_premultiplies_once(tmp_path):
    """A plate stored premultiplied by its own alpha, relit with a separate matte file: the colour is
    un-premultiplied first, so the matte's soft edge is not applied twice (a dark fringe)."""
    from core.io.exr import write_exr, write_rgba
    from core.jobs import RelightJob
    from core.model.bundle import DEFAULT_BUNDLE, read_info
    from core.relight_job import FrameSource

    colour = np.full((48, 48, 3), 0.5, np.float32)
    alpha = np.clip(np.linspace(-0.5, 1.5, 48, dtype=np.float32)[None, :].repeat(48, 0), 0.0, 1.0)
    write_rgba(tmp_path / "plate.exr", colour * alpha[..., None], alpha)
    write_exr(tmp_path / "matte.exr", alpha[..., None], ["Y"])
    job = RelightJob(bundle=str(DEFAULT_BUNDLE), input=str(tmp_path / "plate.exr"), output=str(tmp_path / "out"),
                     matte=str(tmp_path / "matte.exr"))
    (_, _, prepared, _), = list(FrameSource(job, read_info(DEFAULT_BUNDLE), (12, 32, 32), [0]))
    np.testing.assert_allclose(prepared.source, colour * alpha[..., None], atol=2e-3)  # not colour x alpha^2


def test_moving_faces_opaque_alphas_and_matte_files_steer_the_shot_framing(tmp_path, caplog):
    """The portrait bundle frames a shot by one face box: a face that moves across the shot gets a
    warning; a plate whose alpha is opaque everywhere is relit whole, with a warning that asks for
    --matte auto; a matte file decides which face is the subject's (one off the matte frames nothing)."""
    import OpenImageIO as oiio

    from core.io.exr import write_exr, write_rgba
    from core.jobs import RelightJob
    from core.model.bundle import PORTRAIT_BUNDLE, read_info
    from core.relight_job import FrameSource

    info, u8 = read_info(PORTRAIT_BUNDLE), _photo("astronaut")
    for frame, shift in enumerate((0, -120, -240), start=1):  # the face walks 240 px left over the shot
        buf = oiio.ImageBuf(oiio.ImageSpec(512, 512, 3, "uint8"))
        buf.set_pixels(oiio.ROI(), np.ascontiguousarray(np.roll(u8, shift, axis=1)))
        assert buf.write(str(tmp_path / f"walk.{frame:04d}.png"))
    walk = RelightJob(bundle=str(PORTRAIT_BUNDLE), input=str(tmp_path / "walk.####.png"), output=str(tmp_path / "o"))
    with caplog.at_level("WARNING"):
        assert FrameSource(walk, info, (12, 32, 32), [0]).sequence_face() is not None
    assert "the face moves by up to" in caplog.text
    caplog.clear()
    rgb = _linear(u8)
    write_rgba(tmp_path / "opaque.exr", rgb, np.ones(rgb.shape[:2], np.float32))
    opaque = RelightJob(bundle=str(PORTRAIT_BUNDLE), input=str(tmp_path / "opaque.exr"), output=str(tmp_path / "o"))
    with caplog.at_level("WARNING"):
        (_, _, prepared, _), = list(FrameSource(opaque, info, (12, 32, 32), [0]))
    assert "alpha is opaque everywhere" in caplog.text and "--matte auto" in caplog.text
    assert "the face moves" not in caplog.text
    corner = np.zeros(rgb.shape[:2], np.float32)
    corner[400:, 400:] = 1.0  # a matte away from the face: the face is not the subject's
    write_exr(tmp_path / "corner.exr", corner[..., None], ["Y"])
    steered = RelightJob(bundle=str(PORTRAIT_BUNDLE), input=str(tmp_path / "opaque.exr"),
                         output=str(tmp_path / "o"), matte=str(tmp_path / "corner.exr"))
    assert FrameSource(opaque, info, (12, 32, 32), [0]).sequence_face() is not None
    assert FrameSource(steered, info, (12, 32, 32), [0]).sequence_face() is None


def test_a_frame_whose_face_the_detector_misses_keeps_the_shots_person(tmp_path, caplog):
    """A shot where one frame's face is too blurred to detect: the automatic matte of that frame
    takes the person under the shot's face box (found on the other frames) instead of stopping the
    sequence half-written; a shot with no face anywhere still stops with the clear error."""
    import cv2
    import OpenImageIO as oiio

    from core.jobs import RelightJob
    from core.model.bundle import DEFAULT_BUNDLE, read_info
    from core.portrait.matte import face_boxes
    from core.relight_job import FrameSource

    u8 = _photo("astronaut")
    (x0, y0, x1, y1), = face_boxes(u8, 0.5)
    blurred = u8.copy()
    blurred[y0 - 20:y1 + 20, x0 - 20:x1 + 20] = cv2.GaussianBlur(blurred[y0 - 20:y1 + 20, x0 - 20:x1 + 20], (61, 61), 0)
    assert face_boxes(blurred, 0.5) == []
    for frame, img in enumerate((u8, blurred, u8), start=1):
        buf = oiio.ImageBuf(oiio.ImageSpec(512, 512, 3, "uint8"))
        buf.set_pixels(oiio.ROI(), np.ascontiguousarray(img))
        assert buf.write(str(tmp_path / f"shot.{frame:04d}.png"))
    job = RelightJob(bundle=str(DEFAULT_BUNDLE), input=str(tmp_path / "shot.####.png"), output=str(tmp_path / "o"))
    with caplog.at_level("WARNING"):
        mattes = [p.matte for _, _, p, _ in FrameSource(job, read_info(DEFAULT_BUNDLE), (12, 32, 32), [0])]
    assert "no face found on this frame; the shot's face box picks the person" in caplog.text
    inner = (slice(y0 + 20, y1 - 20), slice(x0 + 20, x1 - 20))
    a, b = mattes[0] > 0.5, mattes[1] > 0.5
    assert mattes[1][inner].mean() > 0.9 and (a & b).sum() / (a | b).sum() > 0.9  # the same person
    buf = oiio.ImageBuf(oiio.ImageSpec(512, 512, 3, "uint8"))
    buf.set_pixels(oiio.ROI(), np.ascontiguousarray(blurred))
    assert buf.write(str(tmp_path / "faceless.png"))
    faceless = RelightJob(bundle=str(DEFAULT_BUNDLE), input=str(tmp_path / "faceless.png"), output=str(tmp_path / "o"))
    with pytest.raises(ValidationError, match="no face found for the automatic matte"):
        list(FrameSource(faceless, read_info(DEFAULT_BUNDLE), (12, 32, 32), [0]))


def test_the_colour_guided_filter_solves_each_windows_3x3_system():
    """The closed-form colour guided filter against the same filter written with numpy's solver: per window,
    a = (cov(I) + eps E)^-1 cov(I, p), b = mean(p) - a . mean(I), output = mean(a) . I + mean(b)."""
    import cv2

    from core.portrait.matte import guided_filter_colour

    rng = np.random.default_rng(3)
    guide = rng.random((30, 41, 3), dtype=np.float32)
    src = (guide[..., 1] > 0.5).astype(np.float32) * rng.random((30, 41), dtype=np.float32)
    r, eps = 3, 1e-3
    box = lambda x: cv2.blur(x, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mean_i, mean_p = box(guide), box(src)
    cov = box(guide * src[..., None]) - mean_i * mean_p[..., None]
    var = np.stack([np.stack([box(guide[..., i] * guide[..., j]) - mean_i[..., i] * mean_i[..., j]
                              for j in range(3)], -1) for i in range(3)], -2) + eps * np.eye(3, dtype=np.float32)
    a = np.linalg.solve(var.astype(np.float64), cov[..., None].astype(np.float64))[..., 0].astype(np.float32)
    b = mean_p - (a * mean_i).sum(-1)
    expected = (box(a) * guide).sum(-1) + box(b)
    np.testing.assert_allclose(guided_filter_colour(guide, src, r, eps), expected, atol=2e-4)
    # a guide that is grey in all three channels gives the grey filter's result (eps spread over three)
    grey = np.repeat(guide[..., :1], 3, axis=-1)
    from core.portrait.matte import guided_filter

    np.testing.assert_allclose(guided_filter_colour(grey, src, r, eps), guided_filter(grey[..., 0], src, r, eps / 3),
                               atol=1e-4)
    # a hard grey step at a small eps (a nearly singular system) against the solver in float64
    step = np.repeat((np.arange(41) >= 20).astype(np.float32)[None, :, None], 30, axis=0).repeat(3, axis=-1)
    var = np.stack([np.stack([box(step[..., i] * step[..., j]) - box(step[..., i]) * box(step[..., j])
                              for j in range(3)], -1) for i in range(3)], -2).astype(np.float64) + 1e-5 * np.eye(3)
    cov = (box(step * src[..., None]) - box(step) * box(src)[..., None]).astype(np.float64)
    a = np.linalg.solve(var, cov[..., None])[..., 0]
    b = box(src).astype(np.float64) - (a * box(step)).sum(-1)
    expected = (box(a.astype(np.float32)) * step).sum(-1) + box(b.astype(np.float32))
    np.testing.assert_allclose(guided_filter_colour(step, src, r, 1e-5), expected, atol=1e-3)


def test_the_second_segmenter_pass_sees_the_person_where_they_stand(monkeypatch):
    """A portrait placed off the origin in a larger frame: the second pass cuts the person's square from where
    the person stands, so the matte is the portrait's own (shifted) and nothing else in the frame."""
    import mediapipe as mp

    u8 = _photo("astronaut")
    frame = np.full((900, 1100, 3), 128, np.uint8)
    frame[200:712, 300:812] = u8  # the astronaut in a grey surround
    seen = []
    real = mp.solutions.selfie_segmentation.SelfieSegmentation

    class Spy(real):
        def process(self, image):
            seen.append(image.shape[:2])
            return super().process(image)

    monkeypatch.setattr(mp.solutions.selfie_segmentation, "SelfieSegmentation", Spy)
    alpha = auto_matte(_linear(frame), "placed")
    assert seen[0] == (900, 1100) and len(seen) == 2 and seen[1][0] < 900 and seen[1][1] < 1100
    assert abs(seen[1][0] - seen[1][1]) <= 1  # a square: the segmenter stretches its input to one
    surround = np.ones(alpha.shape, bool)
    surround[190:760, 290:822] = False  # below the photo the body it cuts may run on a little
    assert alpha[surround].max() < 0.05
    (x0, y0, x1, y1), = face_boxes(u8, 0.5)
    fw, fh = x1 - x0, y1 - y0
    placed = alpha[200:712, 300:812]
    assert placed[y0 + fh // 6:y1 - fh // 6, x0 + fw // 6:x1 - fw // 6].mean() > 0.98
    assert placed[:51, :51].mean() < 0.02  # the photo's own top-left corner (a flag) is not the person


@pytest.mark.parametrize("field, value", [("crop_margin", -0.5), ("guide_eps", 0.0), ("threshold", 1.0),
                                          ("guide_radius", 0.0)])
def test_matte_settings_that_cannot_work_are_refused(field, value):
    from dataclasses import replace

    from core.portrait.matte import MatteSettings

    with pytest.raises(ValidationError, match=field):
        replace(MatteSettings(), **{field: value})


def test_a_matte_clip_that_is_not_black_below_white_is_refused():
    from dataclasses import replace

    from core.portrait.matte import MatteSettings

    with pytest.raises(ValidationError, match="clip"):
        replace(MatteSettings(), clip=(0.6, 0.4))


def test_the_matte_is_clipped_as_a_keyer_clips():
    """Away from the face mesh's fill, the clipped matte is the unclipped one remapped: (a - black) / (white -
    black), limited to [0, 1]."""
    from dataclasses import replace

    from core.portrait.matte import MatteSettings, face_outline

    u8 = _photo("astronaut")
    rgb = _linear(u8)
    settings = MatteSettings()
    assert settings.clip == (0.1, 0.9)
    clipped = auto_matte(rgb, "astronaut", settings=settings)
    unclipped = auto_matte(rgb, "astronaut", settings=replace(settings, clip=(0.0, 1.0)))
    away = face_outline(rgb, face_boxes(u8, 0.5)[0]) == 0.0
    np.testing.assert_allclose(clipped[away], np.clip((unclipped[away] - 0.1) / 0.8, 0.0, 1.0), atol=1e-6)
    assert ((unclipped > 0.0) & (unclipped < 0.1) & away).sum() > 100  # the faint tails it removes are there
