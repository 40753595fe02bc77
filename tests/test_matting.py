"""A plate premultiplied by a separate matte (core.io.matting): the subject's colour at the edge, not the
background's, against composites whose foreground is known."""

import numpy as np
import pytest

from core.errors import ValidationError
from core.io.matting import premultiplied
from core.relight.frame import prepare_plate


def _composite(size: int = 256):
    """A skin-coloured subject with a soft edge (an 8-px linear ramp, hair-like) over a green background:
    I = a F + (1 - a) B with F and B known, both varying smoothly."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    fg = np.stack([0.55 + 0.2 * y, 0.38 + 0.1 * x, 0.3 + 0.05 * y], axis=-1)   # [H, W, 3]
    bg = np.stack([0.08 + 0.05 * x, 0.5 + 0.2 * y, 0.1 + 0.0 * x], axis=-1)
    r = np.hypot(x - 0.5, y - 0.55) * size
    alpha = np.clip((0.3 * size - r) / 8.0 + 0.5, 0.0, 1.0).astype(np.float32)  # opaque core, 8-px ramp
    plate = alpha[..., None] * fg + (1.0 - alpha[..., None]) * bg
    return plate.astype(np.float32), alpha, fg.astype(np.float32), bg.astype(np.float32)


def test_the_foreground_under_a_soft_edge_is_the_subjects_colour_not_the_plates():
    plate, alpha, fg, _ = _composite()
    band = (alpha > 0.1) & (alpha < 0.9)
    assert band.sum() > 500
    est = premultiplied(plate, alpha) / np.maximum(alpha, 1e-6)[..., None]  # the subject's colour F
    plate_err = np.abs(plate - fg)[band].mean()
    est_err = np.abs(est - fg)[band].mean()
    assert est_err < 0.2 * plate_err, (est_err, plate_err)
    # premultiplied and set over another background (what the comp does): far closer to the truth
    new_bg = np.array([0.02, 0.03, 0.3], np.float32)
    truth = alpha[..., None] * fg + (1 - alpha[..., None]) * new_bg
    over = lambda p: p + (1 - alpha[..., None]) * new_bg  # noqa: E731
    naive = np.abs(over(plate * alpha[..., None]) - truth)[band].mean()
    ours = np.abs(over(premultiplied(plate, alpha)) - truth)[band].mean()
    assert ours < 0.25 * naive, (ours, naive)
    # the green the naive premultiplication leaves in the fringe is gone
    green = lambda p: (p[band][:, 1] / p[band].sum(-1)).mean()  # noqa: E731
    truth_green = green(alpha[..., None] * fg)
    assert green(premultiplied(plate, alpha)) - truth_green < 0.2 * (green(plate * alpha[..., None]) - truth_green)


def test_opaque_pixels_are_the_plate_empty_ones_are_zero_and_the_estimate_is_linear():
    plate, alpha, _, _ = _composite()
    out = premultiplied(plate, alpha)
    opaque = alpha >= 1.0
    np.testing.assert_array_equal(out[opaque], plate[opaque])
    np.testing.assert_array_equal(out[alpha <= 0.0], 0.0)
    assert out.min() >= 0.0 and np.all(out <= np.maximum(plate, 0.0) + 1e-6)  # never more light than the plate
    # scene-linear: a plate 40x brighter (values far above 1) gives the same subject, 40x brighter
    np.testing.assert_allclose(premultiplied(40.0 * plate, alpha), 40.0 * out, rtol=1e-4, atol=1e-5)


def test_a_plate_with_a_separate_matte_is_premultiplied_with_the_subjects_edge_colour():
    plate, alpha, fg, _ = _composite()
    prepared = prepare_plate(plate, alpha, 64, premultiply=True)
    np.testing.assert_array_equal(prepared.source, premultiplied(plate, alpha))
    band = (alpha > 0.1) & (alpha < 0.9)
    truth = alpha[..., None] * fg
    assert np.abs(prepared.source - truth)[band].mean() < 0.25 * np.abs(plate * alpha[..., None] - truth)[band].mean()
    # a plate that carries its own alpha is taken as premultiplied already: untouched
    own = prepare_plate(plate * alpha[..., None], alpha, 64)
    np.testing.assert_array_equal(own.source, (plate * alpha[..., None]).astype(np.float32))


def _band_errors(plate, alpha, fg):
    """Mean absolute error of the premultiplied subject against the truth ``alpha x fg`` in the edge band:
    relit's estimate, and the plate times the matte."""
    band = (alpha > 0.05) & (alpha < 0.95)
    truth = alpha[..., None] * fg
    ours = premultiplied(plate, alpha)
    return np.abs(ours - truth)[band].mean(), np.abs(plate * alpha[..., None] - truth)[band].mean(), ours


def test_a_bright_practical_behind_the_edge_stays_in_the_background():
    """A lamp of scene-linear 200 (a practical, the sun) right behind the subject's soft edge: it is the
    background's light, not the subject's, and swamps no local mean around it."""
    plate, alpha, fg, bg = _composite()
    size = alpha.shape[0]
    y, x = np.mgrid[0:size, 0:size]
    lamp = np.hypot(x - 0.5 * size, y - (0.55 - 0.3) * size + 6) < 10  # straddles the top of the edge
    assert (lamp & (alpha > 0.05) & (alpha < 0.95)).sum() > 20
    bg = np.where(lamp[..., None], np.float32(200.0), bg)
    plate = (alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.float32)
    ours, naive, out = _band_errors(plate, alpha, fg)
    assert ours < 0.1 * naive, (ours, naive)
    assert np.all(out <= np.maximum(plate, 0.0) + 1e-4)
    # the subject away from the lamp is what it is without the lamp
    far = (np.hypot(x - 0.5 * size, y - 0.25 * size) > 60) & (alpha > 0.05)
    np.testing.assert_allclose(out[far], premultiplied(*_composite()[:2])[far], atol=1e-3)


def test_a_highlight_inside_the_edge_stays_in_the_subject():
    """A specular highlight of 50 on the subject running out through its soft edge is the subject's light."""
    plate, alpha, fg, bg = _composite()
    size = alpha.shape[0]
    y, x = np.mgrid[0:size, 0:size]
    spot = np.hypot(x - 0.5 * size, y - (0.55 + 0.3) * size + 6) < 7  # on the subject, across its lower edge
    assert (spot & (alpha > 0.05) & (alpha < 0.95)).sum() > 20 and (spot & (alpha >= 1.0)).sum() > 50
    fg = np.where(spot[..., None], np.float32(50.0), fg)
    plate = (alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.float32)
    ours, naive, out = _band_errors(plate, alpha, fg)
    assert ours < 0.2 * naive, (ours, naive)
    assert np.all(out <= np.maximum(plate, 0.0) + 1e-4)


def test_a_dark_subject_over_a_bright_backdrop_is_not_capped(monkeypatch):
    """A backlit subject (0.05 over a sky of 0.8, a thin edge on a 1024-px plate): nothing on the plate is
    an outlier, so the estimate is plain blur fusion's, which recovers the dark subject at its edge."""
    import core.io.matting as matting

    size = 1024
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    alpha = np.clip((0.3 - np.hypot(x - 0.5, y - 0.55)) * size / 4.0 + 0.5, 0.0, 1.0).astype(np.float32)
    fg = np.full((size, size, 3), 0.05, np.float32)
    bg = np.stack([0.7 + 0.1 * x, 0.8 + 0.0 * x, 0.9 - 0.1 * y], axis=-1).astype(np.float32)
    plate = (alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.float32)
    ours, naive, out = _band_errors(plate, alpha, fg)
    assert ours < 0.03 * naive, (ours, naive)
    monkeypatch.setattr(matting, "HIGHLIGHT_CAP", np.inf)
    np.testing.assert_array_equal(matting.premultiplied(plate, alpha), out)


@pytest.mark.parametrize("where", ["plate inf", "plate nan", "matte nan", "matte size", "plate channels"])
def test_a_plate_or_matte_that_cannot_be_used_gets_a_clear_error(where):
    plate, alpha, _, _ = _composite(64)
    if where == "plate inf":
        plate[10, 20, 1] = np.inf
    elif where == "plate nan":
        plate[3, 4, 0] = np.nan
    elif where == "matte nan":
        alpha[30, 31] = np.nan
    elif where == "matte size":
        alpha = alpha[:, :40]
    else:
        plate = plate[..., :2]
    with pytest.raises(ValidationError, match=r"shot\.exr: .*(NaN or Inf|same size)"):
        premultiplied(plate, alpha, "shot.exr")
