"""Latent codecs: what turns a [-1, 1] image into the UNet's latent and back.

``tiny`` uses a lossless pixel-unshuffle (no weights, exact inverse, free);
production presets use the checkpoint's SD VAE (frozen). ``CODECS`` is the one registry of them
(``ModelConfig.codec`` names one): how much each shrinks the image, how it is built from a bundle
or base checkpoint folder, and what of it a bundle saves.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class UnshuffleCodec(nn.Module):
    """Space-to-depth by ``factor``: [B, 3, H, W] -> [B, 3 f^2, H/f, W/f], exactly invertible."""

    name = "unshuffle"
    bounded = True  # a [-1, 1] image gives latents in [-1, 1] (samplers clip to it)

    @staticmethod
    def downsample(config) -> int:
        return config.unshuffle_factor

    @classmethod
    def build(cls, config, folder: Path | None, safetensors_only: bool = True) -> "UnshuffleCodec":
        return cls(config.unshuffle_factor)

    def save(self, folder: Path) -> None:
        """Nothing to save: no weights."""

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

    name = "vae"
    bounded = False

    @staticmethod
    def downsample(config) -> int:
        return 8

    @classmethod
    def build(cls, config, folder: Path | None, safetensors_only: bool = True) -> "VaeCodec":
        """From ``folder``/vae: a bundle's (safetensors only) or a base checkpoint's."""
        from diffusers import AutoencoderKL

        if folder is None:
            raise ValueError("the vae codec needs the folder holding vae/ (a bundle or a base checkpoint)")
        return cls(AutoencoderKL.from_pretrained(Path(folder) / "vae", local_files_only=True,
                                                 use_safetensors=True if safetensors_only else None))

    def save(self, folder: Path) -> None:
        self.vae.save_pretrained(Path(folder) / "vae", safe_serialization=True)

    def __init__(self, vae):
        super().__init__()
        self.vae = vae.requires_grad_(False).eval()
        self.channels = vae.config.latent_channels
        self.scale = float(getattr(vae.config, "scaling_factor", 0.18215))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latent_dist.mode() * self.scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z / self.scale).sample


CODECS: dict[str, type[UnshuffleCodec] | type[VaeCodec]] = {c.name: c for c in (UnshuffleCodec, VaeCodec)}
