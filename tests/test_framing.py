"""Plates of any framing through the model's square and back (core.io.framing): the face framing a
portrait bundle uses, and the shading change carried past the square's edges."""

import numpy as np
import pytest

from core.io.framing import PORTRAIT_FRAMING, face_framing, ratio_eps, to_model, to_plate

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


@pytest.mark.parametrize("face, layers", [(FACE, 2), ((2, 1, 50, 49), 2), ((60, 30, 150, 120), 20)],
                         ids=["mid-plate", "square-leaves-the-plate", "more-layers-than-a-chunk"])
def test_a_uniform_shading_change_reaches_the_whole_subject_exactly_and_layers_still_sum(face, layers):
    plate = _plate()
    plate[:, :, 2] *= np.where(np.arange(W) < 60, 0.001, 1.0)  # a saturated region: blue nearly black
    f = face_framing(face, H, W, M)
    flat = to_model(plate, f)
    gains = np.random.default_rng(2).uniform(0.2, 2.0, (layers, 3)).astype(np.float32)
    out = to_plate(flat[None] * gains[:, None, None], flat, plate, f, 1e-3)
    below = slice(f.y0 + f.size, H)  # subject pixels the square never saw
    assert (plate[below] > 0).mean() > 0.2
    for k in range(layers):  # inside, in the blend and past the square, dark channels included
        np.testing.assert_allclose(out[k], plate * gains[k], rtol=1e-5, atol=1e-6)
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
    assert f.x0 > 20 and f.y0 > 20 and f.x0 + f.size < W - 20 and f.y0 + f.size < H - 20  # every edge inside
    rows, cols = slice(f.y0 + 10, f.y0 + f.size - 10), slice(f.x0 + 10, f.x0 + f.size - 10)
    for edge in (f.y0, f.y0 + f.size):  # top and bottom: steps across them, along the square's width
        assert np.abs(np.diff(ratio[edge - 20:edge + 20, cols], axis=0)).max() < 0.02  # no seam
    for edge in (f.x0, f.x0 + f.size):  # left and right
        assert np.abs(np.diff(ratio[rows, edge - 20:edge + 20], axis=1)).max() < 0.02
    edge = f.y0 + f.size  # below the square the change is held, not dropped
    assert ratio[H - 1, cols][-1] > 1.2 * ratio[H - 1, cols][0]  # the gradient carries on below it
    assert ratio.min() > 0.45 and ratio.max() < 2.05             # within the change the model made


def test_a_dark_region_takes_its_neighbours_shading_change_not_a_blown_up_ratio():
    """A model that lifts blacks (relit = flat + a constant) would multiply a hard shadow's plate by
    (shadow + c) / shadow: a bright blotch. Dim channels lean on their neighbours' ratio instead,
    in proportion to how dim they are, and a bright region keeps its own ratio exactly."""
    plate = np.ones((H, W, 3), np.float32)
    plate[:, 3 * W // 4:] = 0.04  # a hard shadow over the right quarter, above the ratio's floor
    f = face_framing(FACE, H, W, M)
    flat = to_model(plate, f)
    eps = ratio_eps(flat, np.ones((M, M), np.float32))
    out = to_plate((flat + 0.2)[None], flat, plate, f, eps)[0]
    assert 0.04 > 1.5 * eps  # the shadow is above the floor: a plain floor would trust its ratio
    lit, shadow = out[:, : W // 2] / plate[:, : W // 2], out[:, 7 * W // 8:] / plate[:, 7 * W // 8:]
    np.testing.assert_allclose(lit, 1.2, rtol=1e-4)          # (1 + 0.2) / 1 where the plate is bright
    assert shadow.max() < 3.0 < (0.04 + 0.2) / 0.04         # not the shadow's own 6x: no blotch


def test_a_plate_at_the_model_size_still_gives_a_dim_edge_pixel_its_neighbours_colour():
    """Pixel for pixel (no resampling), a dim silhouette pixel whose model output came back coloured
    takes its neighbours' ratio: the plate's own colour, not a coloured speck; bright pixels pass exactly."""
    from core.io.framing import Framing

    plate = np.full((M, M, 3), 0.5, np.float32)
    plate[:, M // 2:] = 0.0                  # the background
    plate[10:54, M // 2] = (0.008, 0.008, 0.008)  # the matte edge: at the ratio's floor
    f = Framing(0, 0, M, M, M, M)
    assert f.identity
    eps = ratio_eps(plate, (plate[..., 0] > 0.1).astype(np.float32))
    assert 0.008 < eps  # an untrusted ratio: before, the model's colour passed through here
    relit = 1.5 * plate                       # the model brightens the subject evenly ...
    relit[10:54, M // 2] = (0.09, 0.0, 0.0)    # ... but draws a red speck on the edge
    out = to_plate(relit[None], plate, plate, f, eps)[0]
    np.testing.assert_array_equal(out[:, : M // 2 - 2], relit[:, : M // 2 - 2])  # trusted: the model's own
    edge = out[10:54, M // 2]
    chroma = edge / edge.sum(-1, keepdims=True)
    assert np.abs(chroma - 1 / 3).max() < 0.1  # grey like the plate there (the speck's chroma: 1, 0, 0)
