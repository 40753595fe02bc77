"""Gaussian splatting rasterisation: gsplat's ``rasterization`` on CUDA, a pure-torch tiled twin on CPU.

Both take the same arguments and return ``(colors [C, H, W, 3], alphas [C, H, W, 1], meta)``.
The CPU path projects with gsplat's own pure-torch ``_fully_fused_projection`` (EWA splatting with
its 0.3 px screen-space blur) and composites front to back per 16x16 tile exactly as gsplat's
kernel does: alpha = min(0.999, opacity * exp(-power)) where power >= 0, fragments under 1/255
skipped, and a pixel stops before the fragment that would take its transmittance under 1e-4.
Everything is torch, so it has autograd. ``dense_rasterize`` is the all-pairs reference (every
pixel against every Gaussian, no tiles) the tests compare it with.
"""

from __future__ import annotations

import torch
from torch import Tensor

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4


def _project(means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d):
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_covar=True, compute_preci=False, triu=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(means, covars, viewmats, Ks, width, height,
                                                               eps2d=eps2d, near_plane=near_plane,
                                                               far_plane=far_plane)
    return radii, means2d, depths, conics  # [C, N, 2], [C, N, 2], [C, N], [C, N, 3]


def _colors(colors: Tensor, means: Tensor, viewmats: Tensor, sh_degree: int | None) -> Tensor:  # -> [C, N, 3]
    if sh_degree is None:
        return colors.expand(len(viewmats), -1, -1) if colors.dim() == 2 else colors
    from gsplat.cuda._torch_impl import _spherical_harmonics

    cam_pos = torch.linalg.inv(viewmats)[:, :3, 3]  # [C, 3]
    dirs = means[None] - cam_pos[:, None]            # [C, N, 3]
    k = (sh_degree + 1) ** 2
    out = _spherical_harmonics(sh_degree, dirs, colors[None, :, :k].expand(len(viewmats), -1, -1, -1))
    return torch.clamp_min(out + 0.5, 0.0)


def composite(pixels: Tensor,    # [P, 2] pixel centres (x + 0.5, y + 0.5)
              means2d: Tensor,   # [M, 2] in depth order, front first
              conics: Tensor,    # [M, 3] inverse 2D covariance (a, b, c)
              opacities: Tensor,  # [M]
              colors: Tensor,    # [M, 3]
              ) -> tuple[Tensor, Tensor]:  # [P, 3] colour, [P] alpha
    """Front-to-back compositing of depth-sorted splats over some pixels (gsplat's rules)."""
    if len(means2d) == 0:
        return pixels.new_zeros(len(pixels), 3), pixels.new_zeros(len(pixels))
    d = pixels[:, None, :] - means2d[None]                        # [P, M, 2]
    a, b, c = conics[:, 0], conics[:, 1], conics[:, 2]
    power = -0.5 * (a * d[..., 0] ** 2 + c * d[..., 1] ** 2) - b * d[..., 0] * d[..., 1]
    alpha = torch.clamp_max(opacities * torch.exp(power), ALPHA_MAX)
    alpha = torch.where((power <= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    t_after = torch.cumprod(1.0 - alpha, dim=1)                   # transmittance after each fragment
    t_before = torch.cat([torch.ones_like(t_after[:, :1]), t_after[:, :-1]], dim=1)
    keep = torch.cumprod((t_after > T_MIN).to(alpha.dtype), dim=1)  # stop before T would drop under 1e-4
    weight = alpha * t_before * keep                              # [P, M]
    return weight @ colors, weight.sum(dim=1)


def _tile_ranges(means2d: Tensor, radii: Tensor, tile: int, tiles_x: int, tiles_y: int):
    """Per Gaussian its inclusive tile bounds (gsplat's bounding box of 3.33 sigma)."""
    x0 = torch.floor((means2d[:, 0] - radii[:, 0]) / tile).clamp(0, tiles_x - 1)
    x1 = torch.floor((means2d[:, 0] + radii[:, 0]) / tile).clamp(0, tiles_x - 1)
    y0 = torch.floor((means2d[:, 1] - radii[:, 1]) / tile).clamp(0, tiles_y - 1)
    y1 = torch.floor((means2d[:, 1] + radii[:, 1]) / tile).clamp(0, tiles_y - 1)
    return x0.long(), x1.long(), y0.long(), y1.long()


def _pixel_grid(x0: int, x1: int, y0: int, y1: int, device) -> Tensor:  # [P, 2] pixel centres, row-major
    ys, xs = torch.meshgrid(torch.arange(y0, y1, device=device), torch.arange(x0, x1, device=device), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1).float() + 0.5


def rasterize_torch(means: Tensor,       # [N, 3]
                    quats: Tensor,       # [N, 4] (w, x, y, z), normalised here
                    scales: Tensor,      # [N, 3]
                    opacities: Tensor,   # [N]
                    colors: Tensor,      # [N, 3], or [N, K, 3] SH coefficients with sh_degree
                    viewmats: Tensor,    # [C, 4, 4] world-to-camera (OpenCV)
                    Ks: Tensor,          # [C, 3, 3]
                    width: int,
                    height: int,
                    near_plane: float = 0.01,
                    far_plane: float = 1e10,
                    eps2d: float = 0.3,
                    sh_degree: int | None = None,
                    backgrounds: Tensor | None = None,  # [C, 3]
                    tile_size: int = 16,
                    ) -> tuple[Tensor, Tensor, dict]:
    """The CPU twin of ``gsplat.rasterization`` (RGB mode, pinhole cameras)."""
    radii, means2d, depths, conics = _project(means, quats, scales, viewmats, Ks, width, height, near_plane,
                                              far_plane, eps2d)
    cols = _colors(colors, means, viewmats, sh_degree)
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    images, alphas = [], []
    for c in range(len(viewmats)):
        visible = torch.nonzero((radii[c] > 0).all(dim=-1)).squeeze(1)
        order = visible[torch.argsort(depths[c, visible], stable=True)]
        m2d, con, op, col = means2d[c, order], conics[c, order], opacities[order], cols[c, order]
        x0, x1, y0, y1 = _tile_ranges(m2d.detach(), radii[c, order].float(), tile_size, tiles_x, tiles_y)
        rows = []
        for ty in range(tiles_y):
            row_y = (y0 <= ty) & (y1 >= ty)
            tiles = []
            for tx in range(tiles_x):
                idx = torch.nonzero(row_y & (x0 <= tx) & (x1 >= tx)).squeeze(1)
                px0, py0 = tx * tile_size, ty * tile_size
                px1, py1 = min(px0 + tile_size, width), min(py0 + tile_size, height)
                rgb, a = composite(_pixel_grid(px0, px1, py0, py1, means.device), m2d[idx], con[idx], op[idx],
                                   col[idx])
                tiles.append((rgb.reshape(py1 - py0, px1 - px0, 3), a.reshape(py1 - py0, px1 - px0)))
            rows.append((torch.cat([t[0] for t in tiles], dim=1), torch.cat([t[1] for t in tiles], dim=1)))
        images.append(torch.cat([r[0] for r in rows], dim=0))
        alphas.append(torch.cat([r[1] for r in rows], dim=0))
    image, alpha = torch.stack(images), torch.stack(alphas)[..., None]
    if backgrounds is not None:
        image = image + (1.0 - alpha) * backgrounds[:, None, None, :]
    return image, alpha, {"radii": radii, "means2d": means2d, "depths": depths, "conics": conics}


def dense_rasterize(means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane=0.01,
                    far_plane=1e10, eps2d=0.3, sh_degree=None, pixel_chunk: int = 4096):
    """All-pairs reference: every pixel composites every visible Gaussian (no tiles, no culling)."""
    radii, means2d, depths, conics = _project(means, quats, scales, viewmats, Ks, width, height, near_plane,
                                              far_plane, eps2d)
    cols = _colors(colors, means, viewmats, sh_degree)
    pixels = _pixel_grid(0, width, 0, height, means.device)
    images, alphas = [], []
    for c in range(len(viewmats)):
        visible = torch.nonzero((radii[c] > 0).all(dim=-1)).squeeze(1)
        order = visible[torch.argsort(depths[c, visible], stable=True)]
        parts = [composite(pixels[i:i + pixel_chunk], means2d[c, order], conics[c, order], opacities[order],
                           cols[c, order]) for i in range(0, len(pixels), pixel_chunk)]
        images.append(torch.cat([p[0] for p in parts]).reshape(height, width, 3))
        alphas.append(torch.cat([p[1] for p in parts]).reshape(height, width, 1))
    return torch.stack(images), torch.stack(alphas)


def rasterize(means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kwargs):
    """gsplat's CUDA rasteriser when the tensors are on a GPU, the pure-torch twin otherwise.

    (On a CPU-only torch, gsplat's CUDA wrapper would try to JIT-compile; it is never touched.)
    """
    if means.is_cuda:
        from gsplat import rasterization

        colors_out, alphas, meta = rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width,
                                                 height, **kwargs)
        return colors_out, alphas, meta
    return rasterize_torch(means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kwargs)
