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
