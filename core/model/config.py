"""Model configs with named presets: ``tiny`` (CPU, tests, the demo) and ``sd15``/``sd21``
(production, expanded from a local Stable Diffusion checkpoint folder)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import ValidationError
from ..lighting.encoding import LightEncoding
from .codec import CODECS
from .conditioning import CONDITIONINGS, OLAT, Conditioning


NORMAL_CHANNELS = 3  # a normals model's extra input: camera-frame x, y, z at latent resolution


@dataclass
class ModelConfig:
    preset: str = "tiny"                # name of the preset this config came from
    conditioning: str = OLAT.name       # a CONDITIONINGS name: how the target light reaches the model
    environment_token: bool = False     # envmap: the map's order-2 SH also as the cross-attention token
    resolution: int = 64                # image size the model works at (square)
    patch: int = 0                      # training crop side in pixels (0: whole frames); inference then runs
                                        # tiles of this size over the frame and blends them (core.model.tiling)
    position: bool = False              # patch models: two more input channels holding each latent pixel's place
                                        # in the whole frame, in [-1, 1] (a tile then knows where on the face it is)
    normals: bool = False               # three more input channels: the face mesh's camera-frame normals
                                        # (core.portrait.face_geometry.framed_normals), zero off the face
    codec: str = "unshuffle"            # "unshuffle": lossless pixel-unshuffle; "vae": the checkpoint's SD VAE
    unshuffle_factor: int = 2           # pixel-unshuffle factor (latent channels = 3 * factor**2)
    latent_channels: int = 12           # channels of one latent (4 for the SD VAE)
    block_out_channels: tuple[int, ...] = (32, 64)  # UNet widths per resolution level
    layers_per_block: int = 1           # ResNet layers per UNet block
    attention_head_dim: int = 8         # channels per attention head
    token_width: int = 32               # cross-attention width (SH is zero-padded to it)
    light_tokens: int = 1               # tokens per light
    sh_degree: int = 3                  # SH degree of the direction encoding (16 numbers at degree 3)
    beta_encoding: str = "scale"        # area-light size encoding (core.lighting.encoding)
    stage_radius: float = 0.18          # angular radius of one stage OLAT (beta = 0), rad
    base_checkpoint: str | None = None  # local Stable Diffusion folder (diffusers layout) for sd15/sd21
    down_blocks: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D")
    up_blocks: tuple[str, ...] = ("CrossAttnUpBlock2D", "UpBlock2D")

    def __post_init__(self) -> None:
        if self.conditioning not in CONDITIONINGS:
            raise ValidationError(f"conditioning {self.conditioning!r}: use one of {tuple(CONDITIONINGS)}")
        if self.codec not in CODECS:
            raise ValidationError(f"codec {self.codec!r}: use one of {tuple(CODECS)}")
        if self.environment_token and not self.conditioning_mode.environment:
            lit = "/".join(c.name for c in CONDITIONINGS.values() if c.environment)
            raise ValidationError(f"environment_token applies to the {lit} conditioning only, not "
                                  f"{self.conditioning!r}")
        if self.environment_token and self.token_width < 3 * 9:
            raise ValidationError(f"environment_token needs a token width >= 27 (3 x 9 SH), got {self.token_width}")
        self.block_out_channels = tuple(self.block_out_channels)
        self.down_blocks, self.up_blocks = tuple(self.down_blocks), tuple(self.up_blocks)
        if self.patch:
            self._check_patch()
        elif self.position:
            raise ValidationError("position channels apply to patch-trained models (patch > 0): a whole-frame "
                                  "model sees where everything is")

    def _check_patch(self) -> None:
        if self.conditioning_mode.environment:
            raise ValidationError(f"patch training applies to olat bundles: the {self.conditioning} conditioning's "
                                  "environment map is a whole-frame input")
        step = CODECS[self.codec].downsample(self) * 2 ** (len(self.block_out_channels) - 1)
        if not 0 < self.patch < self.resolution or self.patch % step:
            raise ValidationError(f"patch {self.patch}: must be below the resolution ({self.resolution}) and a "
                                  f"multiple of {step} (the codec's and the UNet's downsampling)")

    @property
    def tiled(self) -> bool:
        """The network runs on tiles of ``patch`` pixels, not on the whole frame."""
        return self.patch > 0

    @property
    def patch_latent(self) -> int:
        """Side of one tile in latent pixels."""
        return self.patch // CODECS[self.codec].downsample(self)

    @property
    def conditioning_mode(self) -> Conditioning:
        return CONDITIONINGS[self.conditioning]

    @property
    def in_channels(self) -> int:
        """Noisy latent + flat-lit latent (+ environment latent in envmap mode) (+ 2 position channels)
        (+ 3 normal channels)."""
        return (self.latent_channels * self.conditioning_mode.image_latents + (2 if self.position else 0)
                + (NORMAL_CHANNELS if self.normals else 0))

    @property
    def latent_size(self) -> int:
        return self.resolution // CODECS[self.codec].downsample(self)

    def light_encoding(self) -> LightEncoding:
        return LightEncoding(self.sh_degree, self.token_width, self.beta_encoding, self.stage_radius)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValidationError(f"model config: unknown field(s) {sorted(unknown)}")
        return cls(**data)


PRESETS = {
    "tiny": dict(),
    "small": dict(block_out_channels=(64, 128), layers_per_block=2, token_width=64, attention_head_dim=16),
    "sd15": dict(codec="vae", latent_channels=4, resolution=512, block_out_channels=(320, 640, 1280, 1280),
                 layers_per_block=2, attention_head_dim=8, token_width=768,
                 down_blocks=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_blocks=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3),
    "sd21": dict(codec="vae", latent_channels=4, resolution=768, block_out_channels=(320, 640, 1280, 1280),
                 layers_per_block=2, attention_head_dim=(5, 10, 20, 20), token_width=1024,
                 down_blocks=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_blocks=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3),
}


def preset(name: str, **overrides) -> ModelConfig:
    """A named preset with overrides (e.g. ``preset("tiny", conditioning="envmap", resolution=32)``)."""
    if name not in PRESETS:
        raise ValidationError(f"preset {name!r}: use one of {sorted(PRESETS)}")
    values = {**PRESETS[name], **overrides}
    return ModelConfig(preset=name, **values)
