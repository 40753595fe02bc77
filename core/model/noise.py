"""Pyramid (multi-resolution) noise for training (DifFRelight), against colour shifts in dark OLATs."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pyramid_noise(shape: tuple[int, ...],              # [B, C, h, w]
                  generator: torch.Generator | None = None,
                  discount: float = 0.8,               # weight ratio between successive levels
                  device: torch.device | str = "cpu",
                  ) -> torch.Tensor:                   # [B, C, h, w], unit variance per element
    """Gaussian noise plus upsampled coarser Gaussian noise, renormalised to unit variance."""
    b, c, h, w = shape
    noise = torch.randn(shape, generator=generator, device=device)
    total_var = 1.0
    level, size_h, size_w = 1, h, w
    while size_h > 1 and size_w > 1:
        size_h, size_w = max(1, size_h // 2), max(1, size_w // 2)
        coarse = torch.randn((b, c, size_h, size_w), generator=generator, device=device)
        weight = discount ** level
        noise = noise + weight * F.interpolate(coarse, size=(h, w), mode="nearest")
        total_var += weight ** 2
        level += 1
    return noise / total_var ** 0.5
