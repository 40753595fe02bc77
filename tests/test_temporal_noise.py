"""Optical flow between frames and initial noise carried along it."""

import numpy as np
import pytest

from core.temporal.flow import backward_flow, consistent, warp
from core.temporal.noise import latent_flow, warp_noise


def _textured(shift, size=64):
    rng = np.random.default_rng(0)
    base = rng.random((size // 4, (size + 32) // 4, 3)).astype(np.float32)
    big = np.kron(base, np.ones((4, 4, 1), np.float32))  # blobs DIS can follow
    return np.ascontiguousarray(big[:, 16 - shift: 16 - shift + size])


def test_flow_recovers_a_translation_and_warps_back():
    a, b = _textured(0), _textured(4)  # content moves 4 px to the right
    flow = backward_flow(a, b)
    inner = (slice(8, -8), slice(8, -8))
    assert abs(float(np.median(flow[inner][..., 0])) + 4) < 0.3
    assert abs(float(np.median(flow[inner][..., 1]))) < 0.3
    np.testing.assert_allclose(warp(a, flow)[inner], b[inner], atol=0.1)
    assert consistent(flow, backward_flow(b, a))[inner].mean() > 0.9


def test_latent_flow_is_the_image_flow_in_latent_pixels():
    flow, valid = latent_flow(_textured(0), _textured(4), factor=2)
    assert flow.shape == (32, 32, 2) and valid.shape == (32, 32)
    assert abs(float(np.median(flow[4:-4, 4:-4, 0])) + 2) < 0.2


def test_noise_follows_integer_motion_and_stays_standard_normal():
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((4, 32, 32)).astype(np.float32)
    flow = np.zeros((32, 32, 2), np.float32)
    flow[..., 0] = -3  # each pixel came from 3 to its left
    out = warp_noise(noise, flow, np.ones((32, 32), bool), np.random.default_rng(2))
    np.testing.assert_array_equal(out[:, :, 3:], noise[:, :, :-3])
    # the three uncovered columns got fresh noise, not copies
    assert not np.isin(out[:, :, :3], noise).any()
    # a collapsing flow (every pixel from one source) keeps that value once, the rest fresh
    collapse = np.zeros((32, 32, 2), np.float32)
    gy, gx = np.mgrid[0:32, 0:32]
    collapse[..., 0], collapse[..., 1] = 5 - gx, 7 - gy
    out = warp_noise(noise, collapse, np.ones((32, 32), bool), np.random.default_rng(3))
    assert (out[0] == noise[0, 7, 5]).sum() == 1
    assert abs(float(out.mean())) < 0.05 and abs(float(out.std()) - 1) < 0.05


def test_warping_errors_find_the_one_transition_that_pops():
    """Content moving 4 px a frame, its true motion given: every transition warps back exactly
    (away from the entering edge, which the matte leaves out) except the one where the frame
    brightens by 10 %: it alone scores 0.1 / 1.1 of its frame's mean, and the sequence's error is the
    mean difference over the mean value."""
    from core.temporal.metrics import warping_error, warping_errors

    frames = [_textured(4 * f) for f in range(5)]
    frames[3] = frames[3] * 1.1
    motion = [np.zeros((64, 64, 2), np.float32)] + [np.full((64, 64, 2), (-4.0, 0.0), np.float32)] * 4
    alpha = np.zeros((64, 64), np.float32)
    alpha[8:-8, 8:-8] = 1.0
    per = warping_errors(frames, motion, [alpha] * 5)
    assert per.shape == (4,)
    np.testing.assert_allclose(per[[0, 1]], 0.0, atol=1e-6)
    np.testing.assert_allclose(per[2], 0.1 / 1.1, rtol=1e-4)  # 2 -> 3: a tenth brighter
    np.testing.assert_allclose(per[3], 0.1 / 1.0, rtol=1e-4)  # 3 -> 4: back again
    inner = (slice(8, -8), slice(12, 56))  # the matte, less the 4 columns the previous frame did not see
    diffs = [0.0, 0.0, 0.1 / 1.1 * frames[3][inner].mean(), 0.1 * frames[4][inner].mean()]
    means = [frames[f][inner].mean() for f in range(1, 5)]
    assert warping_error(frames, motion, [alpha] * 5) == pytest.approx(np.mean(diffs) / np.mean(means), rel=1e-4)
