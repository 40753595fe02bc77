"""Plates of any framing through the model's square and back (core.io.framing): the face framing a
portrait bundle uses, and the shading change carried past the square's edges."""

import numpy as np
import pytest

from core.io.framing import PORTRAIT_FRAMING, face_framing, to_model, to_plate

H, W, M = 300, 200, 64
FACE = (70, 50, 118, 98)  # a 48 px face in the upper half; the shoulders below leave its square


def _plate() -> np.ndarray:  # [H, W, 3] a subject filling the lower frame, detail on every pixel
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]
    body = ((yy > 40) & (np.abs(xx - 94) < 30 + 0.6 * np.maximum(yy - 110, 0))).astype(np.float32)
    return (0.1 + rng.random((H, W, 3)).astype(np.float32)) * body[..., None]


def test_the_face_lands_where_the_portrait_bundle_saw_faces():
    f = face_framing(FACE, H, W, M)
    x0, y0, x1, y1 = FACE
    assert (x1 - x0) / f.size == pytest.approx(PORTRAIT_FRAMING.width, abs=1 / f.size)
    assert ((x0 + x1) / 2 - f.x0) / f.size == pytest.approx(PORTRAIT_FRAMING.centre_x, abs=1 / f.size)
    assert ((y0 + y1) / 2 - f.y0) / f.size == pytest.approx(PORTRAIT_FRAMING.centre_y, abs=1 / f.size)
    assert f.y0 + f.size < H and f.extend  # the body continues below the square


def test_a_uniform_shading_change_reaches_the_whole_subject_exactly_and_layers_still_sum():
    plate = _plate()
    f = face_framing(FACE, H, W, M)
    flat = to_model(plate, f)
    gain = np.array([1.6, 0.9, 0.5], np.float32)
    out = to_plate(np.stack([flat * gain, flat * 0.25]), flat, plate, f, 1e-4)
    below = slice(f.y0 + f.size, H)  # subject pixels the square never saw
    assert (plate[below] > 0).mean() > 0.2
    np.testing.assert_allclose(out[0], plate * gain, rtol=1e-5, atol=1e-6)  # inside, in the blend and past it
    np.testing.assert_allclose(out[1], plate * 0.25, rtol=1e-5, atol=1e-6)
    layers = np.random.default_rng(1).random((3, M, M, 3)).astype(np.float32) * flat
    np.testing.assert_allclose(to_plate(layers, flat, plate, f, 1e-4).sum(0),
                               to_plate(layers.sum(0, keepdims=True), flat, plate, f, 1e-4)[0], rtol=1e-4, atol=1e-5)


def test_a_shading_gradient_continues_past_the_square_without_a_seam():
    plate = np.full((H, W, 3), 0.5, np.float32)
    f = face_framing(FACE, H, W, M)
    flat = to_model(plate, f)
    line = np.linspace(0.5, 2.0, M, dtype=np.float32)
    ramp = ((line[None, :] + line[:, None]) / 2)[..., None]  # brighter to the right and down, in the square
    ratio = to_plate((flat * ramp)[None], flat, plate, f, 1e-4)[0, ..., 0] / 0.5
    edge = f.y0 + f.size  # the square's bottom edge: below it the change is held, not dropped
    cols = slice(max(f.x0, 0) + 10, min(f.x0 + f.size, W) - 10)
    steps = np.abs(np.diff(ratio[edge - 20:edge + 20, cols], axis=0))
    assert steps.max() < 0.02                                   # no seam where the square ends
    assert ratio[H - 1, cols][-1] > 1.2 * ratio[H - 1, cols][0]  # the gradient carries on below it
    assert ratio.min() > 0.45 and ratio.max() < 2.05             # within the change the model made
