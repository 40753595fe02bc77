"""Training objectives of the relighting model: one class each behind one interface.

An objective says what the network learns to output, how a training loss is formed from a
clean target latent, and how an image is drawn at inference. The network is always the same
RelightModel (noisy latent + flat-lit latent on channels, light tokens by cross-attention);
``net(x, t)`` below is that network with its conditioning (and guidance) already bound.

- ``diffusion``: DDPM v-prediction on a zero-terminal-SNR cosine schedule, DDIM from noise.
- ``regression``: the deterministic U-Net baseline, one pass predicts the target latent.
- ``refine``: predict-and-refine (Whang et al. 2022; CorrDiff): one pass of the network predicts
  the conditional mean, and a v-prediction diffusion on the scaled residual (target - mean) adds
  what a mean cannot (grain, sharp shadow edges). One network does both: the mean pass is called
  with a zero latent at a timestep the diffusion never uses.
- ``flow``: source-to-target rectified flow (InDI / flow matching): the straight path from the
  flat-lit latent plus a little noise to the target latent, integrated with Euler steps.

Any objective but ``flow`` (whose path already starts at the input) can learn *relative* to the
input: its clean latent is then the change ``target - input`` rather than the target, and the
input's latent is added back after sampling. Through the logarithmic tone curve and the lossless
unshuffle codec that change is close to the log of the shading ratio, so keeping the person and
scaling the exposure cost the network nothing and it learns only how the shading moves.
"""

from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ValidationError

NetFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x [B,C,h,w], t [B]) -> [B,C,h,w]
TRAIN_TIMESTEPS = 1000


def _ddpm_config(from_scratch: bool) -> dict:
    """The DDPM noise schedule of the diffusion-based objectives (saved in the bundle's scheduler/).

    From scratch: v-prediction on a cosine schedule rescaled to zero terminal SNR (Lin et al. 2024).
    An OLAT is mostly black, so its latent's mean is far from the noise's; with epsilon prediction
    and a schedule whose last step still holds signal, the model never learns to move that mean
    from pure noise and samples come out grey (measured: mean latent -0.06 against -0.93).
    From a Stable Diffusion checkpoint: its own epsilon prediction and scaled-linear schedule.
    """
    if from_scratch:
        return dict(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule="squaredcos_cap_v2",
                    prediction_type="v_prediction", rescale_betas_zero_snr=True)
    return dict(num_train_timesteps=TRAIN_TIMESTEPS, beta_schedule="scaled_linear", beta_start=0.00085,
                beta_end=0.012, prediction_type="epsilon")


def ddim_sampler(sampler: str, train_config: dict, bounded: bool):
    """A DDPM-family sampler built from the training noise schedule (the bundle's scheduler config).

    ``bounded``: the latents lie in [-1, 1] by construction (the tone curve's range through the
    lossless unshuffle codec), so each step's clean-latent estimate is clipped to it. Without this,
    early steps of a cosine schedule (alpha_bar near 0) amplify the noise estimate's error into
    saturated images.
    """
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    # trailing spacing starts sampling at the last training step (pure noise under a zero-SNR schedule)
    if sampler == "ddim":
        return DDIMScheduler.from_config(train_config, clip_sample=bounded, clip_sample_range=1.0,
                                         set_alpha_to_one=False, timestep_spacing="trailing")
    if sampler == "dpmpp":
        return DPMSolverMultistepScheduler.from_config(train_config, algorithm_type="dpmsolver++",
                                                       thresholding=bounded, sample_max_value=1.0,
                                                       timestep_spacing="trailing")
    raise ValidationError(f"sampler {sampler!r}: use one of ('ddim', 'dpmpp')")


class Objective:
    """What one objective trains and how it samples. Subclasses register in OBJECTIVES."""

    name: ClassVar[str]
    stochastic: ClassVar[bool]           # True: samples differ with the initial noise
    samplers: ClassVar[tuple[str, ...]]  # sampler names it accepts, the default first
    default_steps: ClassVar[int]         # sampler steps a new bundle records (the best of the measured steps
                                         # curve, docs/benchmarks.md: train-relight)
    min_steps: ClassVar[int] = 1         # the fewest sampler steps it samples with (refine: 0, its mean pass alone)
    pyramid: ClassVar[bool] = True       # trains on pyramid noise (DifFRelight); False: on the white noise
                                         # it starts from at inference (a flow's source is that noise)

    def __init__(self, from_scratch: bool = True, relative: bool = False):
        self.from_scratch = from_scratch  # trained from random weights (else from an SD checkpoint)
        self.relative = relative          # learns the change from the input latent, not the target latent

    def params(self) -> dict:
        """Everything needed to rebuild the objective (recorded in the bundle's relit.json)."""
        return {"name": self.name, **({"relative": True} if self.relative else {})}

    def scheduler(self):
        """The scheduler saved in the bundle (None when the objective needs none)."""
        return None

    def loss(self, net: NetFn,
             x0: torch.Tensor,     # [B, C, h, w] clean target latent
             src: torch.Tensor,    # [B, C, h, w] flat-lit latent (before dropout: a flow's source)
             noise: torch.Tensor,  # [B, C, h, w] unit Gaussian (pyramid) noise
             u: torch.Tensor,      # [B] uniform draws in [0, 1) (the timestep)
             ) -> torch.Tensor:
        return self._loss(net, x0 - src if self.relative else x0, src, noise, u)

    def sample(self, net: NetFn, src: torch.Tensor, noise: torch.Tensor, steps: int, sampler: str,
               scheduler_config: dict, bounded: bool,
               on_step: Callable[[int, int], None] | None = None) -> torch.Tensor:  # [L, C, h, w]
        """Draw target latents: ``src`` [L, C, h, w] is the flat-lit latent, ``noise`` the initial noise.
        ``bounded``: target latents lie in [-1, 1] (a change from the input lies in [-2, 2], so a
        relative objective samples unbounded and clips the sum)."""
        if not self.relative:
            return self._sample(net, src, noise, steps, sampler, scheduler_config, bounded, on_step)
        out = src + self._sample(net, src, noise, steps, sampler, scheduler_config, False, on_step)
        return out.clamp(-1.0, 1.0) if bounded else out

    def _loss(self, net: NetFn, x0: torch.Tensor, src: torch.Tensor, noise: torch.Tensor,
              u: torch.Tensor) -> torch.Tensor:
        """The loss on ``x0`` [B, C, h, w], the clean latent this objective learns (target or change)."""
        raise NotImplementedError

    def _sample(self, net: NetFn, src: torch.Tensor, noise: torch.Tensor, steps: int, sampler: str,
                scheduler_config: dict, bounded: bool,
                on_step: Callable[[int, int], None] | None) -> torch.Tensor:  # [L, C, h, w]
        """Draw the clean latents this objective learns (target or change)."""
        raise NotImplementedError

    def evaluations(self, steps: int) -> int:
        """Network evaluations per light and guidance branch for ``steps`` sampler steps."""
        return steps

    def check_steps(self, steps: int, where: str) -> int:
        """``steps`` if this objective samples with that many steps (``where`` names the setting)."""
        if steps < self.min_steps:
            raise ValidationError(f"{where}: {steps} sampler steps: the {self.name!r} objective needs at least "
                                  f"{self.min_steps}" + (" (0, the mean pass alone, is a refine bundle's)"
                                                         if steps == 0 else ""))
        return steps

    def check_sampler(self, sampler: str | None) -> str:
        if sampler is None:
            return self.samplers[0]
        if sampler not in self.samplers:
            raise ValidationError(f"sampler {sampler!r} does not apply to the {self.name!r} objective; "
                                  f"use one of {self.samplers}")
        return sampler


class DiffusionObjective(Objective):
    """DDPM on the target latent (relit's first recipe; DifFRelight's objective)."""

    name = "diffusion"
    stochastic = True
    samplers = ("ddim", "dpmpp")
    default_steps = 1

    def scheduler(self):
        from diffusers import DDPMScheduler

        return DDPMScheduler(**_ddpm_config(self.from_scratch))

    def _noised(self, x0, noise, u):
        sched = self.scheduler()
        t = (u * TRAIN_TIMESTEPS).long().clamp(max=TRAIN_TIMESTEPS - 1)
        noisy = sched.add_noise(x0, noise, t)
        target = noise if sched.config.prediction_type == "epsilon" else sched.get_velocity(x0, noise, t)
        return noisy, t, target

    def _loss(self, net, x0, src, noise, u):
        noisy, t, target = self._noised(x0, noise, u)
        return F.mse_loss(net(noisy, t).float(), target)

    def _denoise(self, net, noise, steps, sampler, scheduler_config, bounded, on_step):
        scheduler = ddim_sampler(sampler, scheduler_config, bounded)
        scheduler.set_timesteps(steps, device=noise.device)
        latents = noise * scheduler.init_noise_sigma
        for step, t in enumerate(scheduler.timesteps):
            latents = scheduler.step(net(latents, torch.full((len(latents),), int(t), device=noise.device)),
                                     t, latents).prev_sample
            if on_step is not None:
                on_step(step, steps)
        return latents

    def _sample(self, net, src, noise, steps, sampler, scheduler_config, bounded, on_step=None):
        return self._denoise(net, noise, steps, self.check_sampler(sampler), scheduler_config, bounded, on_step)


class RegressionObjective(Objective):
    """The deterministic baseline: one pass from a zero latent at timestep 0 predicts the target."""

    name = "regression"
    stochastic = False
    samplers = ("direct",)
    default_steps = 1

    def _loss(self, net, x0, src, noise, u):
        return F.mse_loss(net(torch.zeros_like(x0), torch.zeros(len(x0), dtype=torch.long, device=x0.device)), x0)

    def _sample(self, net, src, noise, steps, sampler, scheduler_config, bounded, on_step=None):
        self.check_sampler(sampler)
        out = net(torch.zeros_like(src), torch.zeros(len(src), dtype=torch.long, device=src.device))
        if on_step is not None:
            on_step(0, 1)
        return out

    def evaluations(self, steps: int) -> int:
        return 1


class RefineObjective(DiffusionObjective):
    """Predict-and-refine: mean pass + diffusion on (target - mean) / residual_scale."""

    name = "refine"
    samplers = ("ddim", "dpmpp")
    default_steps = 1
    min_steps = 0  # no residual step: the mean pass alone (deterministic, one evaluation)
    MEAN_TIMESTEP = 2 * TRAIN_TIMESTEPS  # the mean pass's timestep: far from every diffusion step

    def __init__(self, from_scratch: bool = True, residual_scale: float = 0.1, relative: bool = False):
        super().__init__(from_scratch, relative)
        self.residual_scale = residual_scale  # residual latents are divided by this before noising

    def params(self) -> dict:
        return {**super().params(), "residual_scale": self.residual_scale}

    def mean(self, net: NetFn, like: torch.Tensor) -> torch.Tensor:
        return net(torch.zeros_like(like), torch.full((len(like),), self.MEAN_TIMESTEP, device=like.device))

    def _loss(self, net, x0, src, noise, u):
        mu = self.mean(net, x0)
        residual = (x0 - mu.detach()) / self.residual_scale
        noisy, t, target = self._noised(residual, noise, u)
        # the residual term in latent units (x residual_scale^2): weighted 1/scale^2 it outweighs the mean
        # term a hundredfold, and since one network does both, the mean then drifts and feeds the residual
        # it is trained against (measured: diverges within 50 steps at lr 2e-3)
        return F.mse_loss(mu.float(), x0) + self.residual_scale ** 2 * F.mse_loss(net(noisy, t).float(), target)

    def _sample(self, net, src, noise, steps, sampler, scheduler_config, bounded, on_step=None):
        mu = self.mean(net, src)
        if steps == 0:  # the mean pass alone
            self.check_sampler(sampler)
            if on_step is not None:
                on_step(0, 1)
            return mu.clamp(-1.0, 1.0) if bounded else mu
        residual = self._denoise(net, noise, steps, self.check_sampler(sampler), scheduler_config, False, on_step)
        out = mu + self.residual_scale * residual
        return out.clamp(-1.0, 1.0) if bounded else out

    def evaluations(self, steps: int) -> int:
        return steps + 1


class FlowObjective(Objective):
    """Rectified flow from source = flat-lit latent + source_noise * noise to the target latent.

    x_s = s * source + (1 - s) * target for s in [0, 1] (s = 1: the source, as diffusers'
    FlowMatchEulerDiscreteScheduler puts noise at sigma = 1); the network predicts the constant
    velocity source - target at timestep 1000 s; Euler steps from s = 1 to 0.
    """

    name = "flow"
    stochastic = True
    samplers = ("euler",)
    default_steps = 4
    pyramid = False

    def __init__(self, from_scratch: bool = True, source_noise: float = 0.5, relative: bool = False):
        if relative:
            raise ValidationError("the flow objective already starts from the input; it has no relative form")
        super().__init__(from_scratch)
        self.source_noise = source_noise  # std of the noise added to the flat-lit source latent

    def params(self) -> dict:
        return {**super().params(), "source_noise": self.source_noise}

    def scheduler(self):
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=TRAIN_TIMESTEPS, shift=1.0)

    def _loss(self, net, x0, src, noise, u):
        source = src + self.source_noise * noise
        s = u[:, None, None, None].to(x0.dtype)
        x = s * source + (1 - s) * x0
        return F.mse_loss(net(x, u * TRAIN_TIMESTEPS).float(), source - x0)

    def _sample(self, net, src, noise, steps, sampler, scheduler_config, bounded, on_step=None):
        from diffusers import FlowMatchEulerDiscreteScheduler

        self.check_sampler(sampler)
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(scheduler_config)
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 0.0, steps + 1)[:-1].tolist(), device=src.device)
        latents = src + self.source_noise * noise
        for step, t in enumerate(scheduler.timesteps):
            latents = scheduler.step(net(latents, t.expand(len(latents)).to(latents.dtype)), t, latents).prev_sample
            if on_step is not None:
                on_step(step, steps)
        return latents.clamp(-1.0, 1.0) if bounded else latents


OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in
                                           (DiffusionObjective, RegressionObjective, RefineObjective, FlowObjective)}


def make_objective(params: dict | str, from_scratch: bool = True) -> Objective:
    """An objective from its name or its recorded params (``{"name": ..., "relative": ..., ...}``)."""
    params = {"name": params} if isinstance(params, str) else dict(params)
    name = params.pop("name", None)
    if name not in OBJECTIVES:
        raise ValidationError(f"objective {name!r}: use one of {sorted(OBJECTIVES)}")
    try:
        return OBJECTIVES[name](from_scratch=from_scratch, **params)
    except TypeError as exc:
        raise ValidationError(f"objective {name!r}: bad parameters {params} ({exc})") from None
