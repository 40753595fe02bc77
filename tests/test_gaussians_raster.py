"""The CPU rasteriser against the all-pairs reference (forward and gradients) and an analytic Gaussian."""

import math

import numpy as np
import torch

from core.gaussians.raster import dense_rasterize, rasterize_torch


def _scene(n, seed=0, width=40, height=32):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * torch.tensor([0.6, 0.5, 0.3]) + torch.tensor([0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.randn(n, 3, generator=g) * 0.3 - 2.5)
    opacities = torch.rand(n, generator=g) * 0.9 + 0.05
    colors = torch.rand(n, 3, generator=g)
    viewmats = torch.eye(4)[None]
    Ks = torch.tensor([[[50.0, 0, width / 2], [0, 50.0, height / 2], [0, 0, 1]]])
    return means, quats, scales, opacities, colors, viewmats, Ks, width, height


def test_tiled_matches_the_dense_reference_forward_and_gradients():
    for seed, n in ((0, 60), (1, 300)):
        args = _scene(n, seed)
        leaves = [t.clone().requires_grad_(True) for t in args[:5]]
        img, alpha, _ = rasterize_torch(*leaves, *args[5:], tile_size=8)
        ref_leaves = [t.clone().requires_grad_(True) for t in args[:5]]
        ref_img, ref_alpha = dense_rasterize(*ref_leaves, *args[5:])
        torch.testing.assert_close(img, ref_img, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(alpha, ref_alpha, atol=1e-5, rtol=1e-5)
        weights = torch.rand(img.shape, generator=torch.Generator().manual_seed(seed))
        (img * weights).sum().backward()
        (ref_img * weights).sum().backward()
        for name, a, b in zip(("means", "quats", "scales", "opacities", "colors"), leaves, ref_leaves):
            torch.testing.assert_close(a.grad, b.grad, atol=1e-4, rtol=1e-3, msg=name)
        assert float(alpha.detach().max()) > 0.5 and float(leaves[0].grad.abs().sum()) > 0


def test_one_isotropic_gaussian_has_the_analytic_width_and_peak():
    """Scale s at depth z, focal f: sigma_px^2 = (f s / z)^2 + 0.3 (gsplat's screen blur); peak = opacity."""
    f, s, z, size = 60.0, 0.05, 2.0, 64
    means = torch.tensor([[0.0, 0.0, z]])
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    scales = torch.full((1, 3), s)
    opacity = torch.tensor([0.8])
    colors = torch.tensor([[1.0, 0.5, 0.25]])
    Ks = torch.tensor([[[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]]])
    img, alpha, meta = rasterize_torch(means, quats, scales, opacity, colors, torch.eye(4)[None], Ks, size, size)
    a = alpha[0, ..., 0].double().numpy()
    sigma2 = (f * s / z) ** 2 + 0.3
    # the centre (32, 32) lies on a pixel corner: the four nearest pixel centres are 0.5 px away
    np.testing.assert_allclose(a[31:33, 31:33], 0.8 * math.exp(-0.25 / sigma2), rtol=1e-5)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    r2 = (xs - size / 2) ** 2 + (ys - size / 2) ** 2
    inside = a > 0  # the second moment of the rendered splat (fragments under 1/255 are cut by design)
    measured = float((a * r2)[inside].sum() / a[inside].sum()) / 2
    cut = math.sqrt(2 * sigma2 * math.log(0.8 * 255))  # where alpha falls to 1/255
    truncated = sigma2 * (1 - (cut ** 2 / (2 * sigma2)) / (math.exp(cut ** 2 / (2 * sigma2)) - 1))
    assert abs(measured - truncated) / truncated < 0.02
    np.testing.assert_allclose(img[0, 31, 31].numpy(), a[31, 31] * np.array([1.0, 0.5, 0.25]), rtol=1e-5)
    assert int(meta["radii"][0, 0, 0]) == math.ceil(3.33 * math.sqrt(sigma2))


def test_background_fills_what_the_splats_leave():
    args = _scene(50, 3)
    bg = torch.tensor([[0.2, 0.4, 0.6]])
    img, alpha, _ = rasterize_torch(*args, backgrounds=bg)
    plain, _, _ = rasterize_torch(*args)
    torch.testing.assert_close(img, plain + (1 - alpha) * bg[:, None, None, :])
