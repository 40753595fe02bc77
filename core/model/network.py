"""RelightModel: a diffusers UNet2DConditionModel whose conv_in takes the noisy latent
concatenated with the flat-lit latent (and the environment latent in envmap mode, position and
face-normal channels where the config asks for them), and a
learned null lighting token for classifier-free guidance."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import RelitIOError
from .codec import CODECS
from .config import NORMAL_CHANNELS, ModelConfig

log = logging.getLogger(__name__)


def build_unet(config: ModelConfig):
    """A randomly initialised UNet for ``config``."""
    from diffusers import UNet2DConditionModel

    groups = 32 if min(config.block_out_channels) % 32 == 0 else 8
    return UNet2DConditionModel(
        sample_size=config.latent_size,
        in_channels=config.in_channels,
        out_channels=config.latent_channels,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        down_block_types=config.down_blocks,
        up_block_types=config.up_blocks,
        cross_attention_dim=config.token_width,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=groups,
    )


def expand_conv_in(unet, in_channels: int):
    """Widen ``conv_in`` to ``in_channels``; the new input channels start at zero, so the
    expanded UNet computes exactly what the checkpoint did on the original channels."""
    old = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    if in_channels < old.in_channels:
        raise ValueError(f"cannot shrink conv_in from {old.in_channels} to {in_channels} channels")
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


def load_base_unet(config: ModelConfig):
    """The UNet of a local Stable Diffusion folder (diffusers layout), conv_in expanded."""
    from diffusers import UNet2DConditionModel

    folder = Path(config.base_checkpoint or "")
    if not (folder / "unet" / "config.json").exists():
        raise RelitIOError(
            f"{folder}: not a Stable Diffusion folder in diffusers layout (unet/config.json missing); "
            "relit reads base weights from a local folder only, never from a model hub")
    if any((folder / "unet").glob("*.bin")) and not any((folder / "unet").glob("*.safetensors")):
        raise RelitIOError(f"{folder / 'unet'}: only a pickled checkpoint (.bin); convert it to safetensors")
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", use_safetensors=True, local_files_only=True)
    if unet.config.cross_attention_dim != config.token_width:
        raise RelitIOError(f"{folder}: cross-attention width {unet.config.cross_attention_dim} != preset's "
                           f"token width {config.token_width}; choose the matching preset (sd15: 768, sd21: 1024)")
    return expand_conv_in(unet, config.in_channels)


class RelightModel(nn.Module):
    """Predicts the noise of the target latent given the flat-lit latent and the lighting."""

    def __init__(self, config: ModelConfig, unet=None):
        super().__init__()
        self.config = config
        self.unet = unet if unet is not None else (
            load_base_unet(config) if config.base_checkpoint else build_unet(config))
        generator = torch.Generator().manual_seed(0)
        self.null_light = nn.Parameter(
            0.02 * torch.randn(1, config.light_tokens, config.token_width, generator=generator))

    def light_tokens(self, encoded: torch.Tensor,  # [B, width] SH tokens (core.lighting.encoding)
                     ) -> torch.Tensor:            # [B, tokens, width]
        return encoded[:, None, :].expand(-1, self.config.light_tokens, -1)

    def environment_tokens(self, environment: torch.Tensor,  # [B, H, W, 3] encoded maps (core.model.envmap)
                           ) -> torch.Tensor:                # [B, tokens, width]
        """The envmap conditioning's token: the map's order-2 SH zero-padded to the token width when
        the config asks for it, else the null token (the map then conditions through channels only)."""
        if not self.config.environment_token:
            return self.null_tokens(len(environment))
        from .envmap import environment_sh

        coeffs = environment_sh(environment)
        padded = torch.nn.functional.pad(coeffs, (0, self.config.token_width - coeffs.shape[1]))
        return self.light_tokens(padded.to(self.null_light.dtype))

    def normals_latent(self, normals: torch.Tensor,  # [B, H, W, 3] framed_normals (a frame or a training crop)
                       ) -> torch.Tensor:            # [B, 3, h, w] area-averaged to latent resolution
        down = CODECS[self.config.codec].downsample(self.config)
        size = (normals.shape[1] // down, normals.shape[2] // down)
        return torch.nn.functional.interpolate(normals.permute(0, 3, 1, 2).float(), size=size, mode="area")

    def null_tokens(self, batch: int) -> torch.Tensor:  # [B, tokens, width]
        return self.null_light.expand(batch, -1, -1)

    def forward(self,
                noisy: torch.Tensor,         # [B, C, h, w] noisy target latent
                timesteps: torch.Tensor,     # [B]
                image: torch.Tensor,         # [B, C, h, w] flat-lit latent (zeros when dropped)
                tokens: torch.Tensor,        # [B, tokens, width] lighting (null tokens when dropped)
                environment: torch.Tensor | None = None,  # [B, C, h, w] env-map latent (envmap mode)
                position: torch.Tensor | None = None,     # [B, 2, h, w] the pixels' place in the frame
                normals: torch.Tensor | None = None,      # [B, 3, h, w] face normals (normals_latent)
                ) -> torch.Tensor:           # [B, C, h, w] predicted noise
        parts = [noisy, image] + ([environment] if self.config.conditioning_mode.environment else [])
        if self.config.position:  # default: the input is the whole frame
            if position is None:
                from .tiling import frame_position

                position = frame_position(noisy.shape[-1])[None].expand(len(noisy), -1, -1, -1)
            parts.append(position.to(noisy))
        if self.config.normals:  # default: no face geometry known (zeros, as off the face)
            parts.append(torch.zeros_like(noisy[:, :NORMAL_CHANNELS]) if normals is None else normals.to(noisy))
        return self.unet(torch.cat(parts, dim=1), timesteps, encoder_hidden_states=tokens).sample
