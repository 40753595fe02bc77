"""Optical flow between frames and initial noise carried along it."""

import numpy as np

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
