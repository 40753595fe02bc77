"""Latent codecs: what turns a [-1, 1] image into the UNet's latent and back.

``tiny`` uses a lossless pixel-unshuffle (no weights, exact inverse, free);
production presets use the checkpoint's SD VAE (frozen).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class UnshuffleCodec(nn.Module):
    """Space-to-depth by ``factor``: [B, 3, H, W] -> [B, 3 f^2, H/f, W/f], exactly invertible."""

    def __init__(self, factor: int = 2):
        super().__init__()
        self.factor = factor
        self.channels = 3 * factor * factor

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, C, h, w]
        return F.pixel_unshuffle(x, self.factor)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # [B, C, h, w] -> [B, 3, H, W]
        return F.pixel_shuffle(z, self.factor)


class VaeCodec(nn.Module):
    """A frozen diffusers AutoencoderKL; latents scaled by its ``scaling_factor``."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae.requires_grad_(False).eval()
        self.channels = vae.config.latent_channels
        self.scale = float(getattr(vae.config, "scaling_factor", 0.18215))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latent_dist.mode() * self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z / self.scale).sample
