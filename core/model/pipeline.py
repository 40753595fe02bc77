"""RelightPipeline: flat-lit plate + lights -> scene-linear relit images per unit irradiance.

Dual classifier-free guidance over image and lighting (DESIGN.md):

    e = e(0, 0) + lambda_I [e(I, 0) - e(0, 0)] + lambda_L [e(I, L) - e(I, 0)]

with 0 a zero image latent and the learned null lighting token. With both
scales at 1 only e(I, L) is evaluated. A batch of lights shares one encoding of
the flat-lit image; the initial noise is given per light (core.relight does) or drawn once from ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from diffusers import DiffusionPipeline

from .codec import UnshuffleCodec, VaeCodec
from .network import RelightModel
from .objectives import DiffusionObjective, Objective
from .tiling import TILE_OVERLAP, frame_position, tile_count, tiled
from .tone import ToneCurve


@dataclass
class RelightOutput:
    images: np.ndarray  # [L, H, W, 3] float32 scene-linear, per unit irradiance (W/m²) of each light
    evaluations: int    # UNet evaluations spent (every guidance branch and tile counts, per light)


class RelightPipeline(DiffusionPipeline):
    def __init__(self, model: RelightModel, scheduler, codec: UnshuffleCodec | VaeCodec,
                 tone: ToneCurve, exposure_image: float, exposure_target: float,
                 objective: Objective | None = None):
        super().__init__()
        self.register_modules(model=model, scheduler=scheduler, codec=codec)
        self.objective = objective or DiffusionObjective()  # what the network was trained to output
        self.register_to_config(tone=tone, exposure_image=exposure_image, exposure_target=exposure_target)
        self.tone = tone
        self.exposure_image = exposure_image    # multiplies flat-lit plates before the tone curve
        self.exposure_target = exposure_target  # multiplies unit-irradiance targets before the tone curve
        self.tile_overlap = TILE_OVERLAP        # patch-trained models: share of a tile its neighbour overlaps
        self.whole_frame = False                # patch-trained models: one pass over the whole frame instead of
                                                # tiles (a fully convolutional reading; bench/sharp_relight.py)

    def to(self, device: str | torch.device) -> "RelightPipeline":
        """Move the network and codec (DiffusionPipeline.to expects diffusers models only)."""
        self.model.to(device)
        self.codec.to(device)
        return self

    def latent_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the initial noise for one light at the model's resolution."""
        size = self.model.config.latent_size
        return self.codec.channels, size, size

    # --- 0. check inputs --------------------------------------------------------------------
    def check_inputs(self, image, directions, sizes, environment, steps, guidance_image, guidance_light,
                     sampler=None, normals=None) -> None:
        cfg = self.model.config
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be [H, W, 3] scene-linear, got shape {tuple(image.shape)}")
        if image.shape[:2] != (cfg.resolution, cfg.resolution):
            raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but the model works at "
                             f"{cfg.resolution}x{cfg.resolution}; crop and resize it first (core.relight does)")
        if not np.all(np.isfinite(image)):
            raise ValueError("image has NaN or Inf pixels")
        if normals is not None:
            if np.shape(normals) != image.shape or not np.all(np.isfinite(normals)):
                raise ValueError(f"normals must be finite [H, W, 3] like the image {tuple(image.shape)}, got "
                                 f"{tuple(np.shape(normals))}")
        if not cfg.conditioning_mode.environment:
            if directions is None or np.asarray(directions).ndim != 2 or np.asarray(directions).shape[1] != 3:
                raise ValueError("an olat model needs directions [L, 3] (camera frame, towards each light)")
            if sizes is not None and len(sizes) != len(directions):
                raise ValueError(f"{len(sizes)} sizes for {len(directions)} lights")
        elif environment is None or environment.ndim != 4:
            raise ValueError("an envmap model needs environment maps [L, H, W, 3] (camera frame, tone-mapped)")
        if steps < self.objective.min_steps:
            raise ValueError(f"num_inference_steps must be >= {self.objective.min_steps} for the "
                             f"{self.objective.name!r} objective, got {steps}")
        self.objective.check_sampler(sampler)
        if guidance_image < 0 or guidance_light < 0:
            raise ValueError("guidance scales must be >= 0")

    def _to_latent(self, linear: torch.Tensor, exposure: float) -> torch.Tensor:  # [B, H, W, 3] -> [B, C, h, w]
        x = self.tone.encode(linear * exposure).permute(0, 3, 1, 2)
        return self.codec.encode(x)

    @torch.no_grad()
    def __call__(self,
                 image: np.ndarray,                          # [H, W, 3] flat-lit, scene-linear
                 directions: np.ndarray | None = None,       # [L, 3] camera-frame light directions (olat)
                 sizes: np.ndarray | None = None,            # [L] beta in [0, 1] (olat)
                 environment: np.ndarray | None = None,      # [L, H, W, 3] encoded env maps (envmap)
                 num_inference_steps: int = 30,
                 guidance_image: float = 1.0,
                 guidance_light: float = 1.0,
                 seed: int = 0,
                 sampler: str | None = None,                 # the objective's default when None
                 batch_size: int = 16,
                 callback_on_step_end: Callable[[int, int], None] | None = None,
                 callback_on_batch_end: Callable[[int], None] | None = None,
                 noise: np.ndarray | None = None,            # [C, h, w] or [L, C, h, w] initial noise (else seed)
                 normals: np.ndarray | None = None,          # [H, W, 3] face normals (framed_normals): what a
                                                             # normals model sees (None: none known, zeros);
                                                             # other models ignore them
                 ) -> RelightOutput:
        """Relight ``image`` under each light.

        ``callback_on_step_end(step, steps)`` runs after each denoising step and
        ``callback_on_batch_end(lights)`` after each batch of a step (``lights`` in it); either may
        raise to cancel. ``noise`` replaces the initial noise drawn from ``seed`` (then shared by every light): one map
        for all, or one per light (what core.relight does, so that the sampling grain of many lights does
        not add up coherently in their sum).
        """
        cfg = self.model.config
        device = next(self.model.parameters()).device
        # 0. Check inputs
        self.check_inputs(image, directions, sizes, environment, num_inference_steps, guidance_image, guidance_light,
                          sampler, normals)
        n = len(environment) if cfg.conditioning_mode.environment else len(directions)
        # 1. Encode the lighting condition
        if not cfg.conditioning_mode.environment:
            beta = np.zeros(n) if sizes is None else np.asarray(sizes, dtype=np.float64)
            enc = torch.from_numpy(cfg.light_encoding().encode(np.asarray(directions), beta)).to(device)
            tokens = self.model.light_tokens(enc)
            env = None
        else:
            maps = torch.as_tensor(environment, dtype=torch.float32, device=device)
            tokens = self.model.environment_tokens(maps)
            env = self.codec.encode(maps.permute(0, 3, 1, 2))
        # 2. Encode the flat-lit image once for every light
        img = self._to_latent(torch.as_tensor(image, dtype=torch.float32, device=device)[None], self.exposure_image)
        # 3. Prepare the initial noise: shared by every light (from seed) or given per light
        shape = tuple(img.shape[1:])
        if noise is None:
            generator = torch.Generator(device="cpu").manual_seed(seed)
            start = torch.randn((1,) + shape, generator=generator)
        elif tuple(np.shape(noise)) not in (shape, (n,) + shape):
            raise ValueError(f"noise must be {list(shape)} (shared) or {[n] + list(shape)} (one per light), got "
                             f"{list(np.shape(noise))}")
        else:
            # a copy: the caller's noise may be shared (core.relight.frame.light_noise keeps its draws)
            start = torch.tensor(np.asarray(noise, dtype=np.float32)).reshape((-1,) + shape)
        start = start.to(device).expand(n, -1, -1, -1).contiguous()
        plain = guidance_image == 1.0 and guidance_light == 1.0
        branches = 1 if plain else 3
        tile, stride = self.tiles()
        position = frame_position(img.shape[-1])[None] if self.model.config.position else None  # [1, 2, h, w]
        nrm = (None if normals is None or not cfg.normals else  # [1, 3, h, w]
               self.model.normals_latent(torch.as_tensor(normals, dtype=torch.float32, device=device)[None]))

        def guided(x: torch.Tensor, t: torch.Tensor, tok: torch.Tensor, e: torch.Tensor | None) -> torch.Tensor:
            if not tile:
                return self._guided(x, t, img, tok, e, plain, guidance_image, guidance_light, position, nrm)
            return tiled(lambda ys, xs: self._guided(x[..., ys, xs], t, img[..., ys, xs], tok, e, plain,
                                                     guidance_image, guidance_light,
                                                     None if position is None else position[..., ys, xs],
                                                     None if nrm is None else nrm[..., ys, xs]),
                         x.shape, tile, stride)

        def net(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # [n, C, h, w], [n] -> [n, C, h, w]
            out = []
            for i in range(0, n, batch_size):
                out.append(guided(x[i:i + batch_size], t[i:i + batch_size], tokens[i:i + batch_size],
                                  None if env is None else env[i:i + batch_size]))
                if callback_on_batch_end is not None:
                    callback_on_batch_end(len(out[-1]))
            return torch.cat(out)

        # 4. Sample (the objective's loop)
        config = self.scheduler.config if self.scheduler is not None else {}
        latents = self.objective.sample(net, img.expand(n, -1, -1, -1), start, num_inference_steps, sampler,
                                        config, bounded=self.codec.bounded,
                                        on_step=callback_on_step_end)
        # 5. Decode, undo the tone curve and exposure: scene-linear per unit irradiance. The curve is
        #    inverted over its training range [-1, 1] only (up to `white` after exposure).
        out = [self.tone.decode(self.codec.decode(latents[i:i + batch_size]).clamp(-1.0, 1.0)) / self.exposure_target
               for i in range(0, n, batch_size)]
        images = torch.cat(out).permute(0, 2, 3, 1).float().cpu().numpy()
        return RelightOutput(images, n * branches * self.evaluations(num_inference_steps))

    def evaluations(self, steps: int) -> int:
        """UNet evaluations per light and guidance branch for ``steps`` sampler steps (every tile counts)."""
        tile, stride = self.tiles()
        return self.objective.evaluations(steps) * (tile_count(self.model.config.latent_size, tile, stride)
                                                    if tile else 1)

    def tiles(self) -> tuple[int, int]:
        """(tile, stride) in latent pixels for a patch-trained model; (0, 0): one pass over the frame."""
        cfg = self.model.config
        if not cfg.tiled or self.whole_frame:
            return 0, 0
        tile = cfg.patch_latent
        return tile, max(1, round(tile * (1.0 - self.tile_overlap)))

    def _guided(self, latents, timesteps, img, tokens, env, plain, gi, gl, position=None,
                normals=None) -> torch.Tensor:
        b = len(latents)
        image = img.expand(b, -1, -1, -1)
        if position is not None:
            position = position.expand(b, -1, -1, -1)
        if normals is not None:
            normals = normals.expand(b, -1, -1, -1)
        if plain:
            return self.model(latents, timesteps, image, tokens, env, position, normals)
        null = self.model.null_tokens(b)
        zeros = torch.zeros_like(image)
        # dropping the lighting: the null token, and in envmap mode a zero environment latent
        env3 = None if env is None else torch.cat([torch.zeros_like(env), torch.zeros_like(env), env])
        # the face normals belong to the image: dropped with it
        normals3 = None if normals is None else torch.cat([torch.zeros_like(normals), normals, normals])
        both = self.model(torch.cat([latents] * 3), torch.cat([timesteps] * 3), torch.cat([zeros, image, image]),
                          torch.cat([null, null, tokens]), env3,
                          None if position is None else torch.cat([position] * 3), normals3)
        e00, ei0, eil = both.chunk(3)
        return e00 + gi * (ei0 - e00) + gl * (eil - ei0)
