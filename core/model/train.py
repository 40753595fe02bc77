"""``relit train``: fit a RelightModel on a capture set.

The objective (core.model.objectives: refine, diffusion, flow, or the regression baseline) with
pyramid noise, conditioning dropout (zero image latent, learned null light token) for dual
classifier-free guidance, AdamW, EMA, held-out lights and views scored with PSNR/SSIM,
checkpoints and resume.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from .._version import git_hash
from ..data.capture import open_captures
from ..errors import RelitError, ValidationError
from ..io.atomic import replace_synced
from ..io.plates import GENERAL_SUBJECT
from ..lighting.random_lighting import TARGET_LIGHTINGS, LightingMix
from .bundle import BundleInfo, check_device, save_bundle, steps_in_all
from .codec import CODECS
from .conditioning import CONDITIONINGS, OLAT
from .config import preset
from .data import Split, TrainingData, crop_patches, held_out_lights, shifted
from .lr_schedules import LENGTH_FREE, LR_SCHEDULES
from .metrics import best_scale, psnr, ssim
from .network import RelightModel, expand_conv_in
from .noise import pyramid_noise
from .objectives import make_objective
from .real_tasks import REAL_TASKS
from .tiling import frame_position
from .consistency import CONSISTENCY, partial_stage_message, stage_coverage
from .pipeline import RelightPipeline
from .tone import ToneCurve

log = logging.getLogger(__name__)


# TrainConfig fields a resume may change: how long, how often, where and with what provenance, not what is
# learned (steps too where the learning-rate schedule does not depend on the run's length: LENGTH_FREE)
RESUME_MAY_CHANGE = frozenset({"output", "max_minutes", "val_every", "val_samples", "val_steps", "checkpoint_every",
                               "device", "bf16", "gradient_checkpointing", "command", "sample_steps", "consistency",
                               "init_from"})

# TrainConfig fields of files and folders, compared by name on resume: a capture moved to another disk resumes
# (what the captures hold is compared too: _data_fingerprint)
RESUME_BY_NAME = frozenset({"captures", "environments", "multitask_images", "base_checkpoint"})
# TrainConfig fields only environment-lit (envmap) runs read: an olat run's checkpoint is not compared on them
ENVIRONMENT_ONLY = frozenset({"environments", "source_tint", "subject_saturation", "target_lighting"})


def _names(paths: list[str] | str | None) -> list[str] | str | None:  # in their order (it orders the data)
    if paths is None:
        return None
    return Path(paths).name if isinstance(paths, str) else [Path(p).name for p in paths]


def people_seen(info: BundleInfo) -> set[str] | None:
    """The people whose images trained a bundle's weights (those of the bundles it started from too,
    where recorded); None when the bundle does not say (a general bundle from before they were recorded)."""
    training = info.training
    if "people_seen" in training:
        return set(training["people_seen"])
    identities = training.get("identities") or training.get("data", {}).get("producer", {}).get("identities")
    if identities:
        return set(identities) - set(training.get("config", {}).get("holdout_identities", []))
    return {info.subject} if info.subject and info.subject != GENERAL_SUBJECT else None


HELD_OUT_KINDS = ("cameras", "expressions", "lights")  # what of its people a run can keep from its weights
SEEN_KINDS = ("cameras", "expressions")  # what a later run may add to a person (a capture set of new views)


def views_seen(info: BundleInfo) -> dict[str, set[str]] | None:
    """The cameras and expressions (by name) of the views that trained a bundle's weights, along its chain;
    None for bundles from before this was recorded."""
    seen = info.training.get("views_seen")
    return None if seen is None else {kind: set(seen[kind]) for kind in SEEN_KINDS}


def held_out(info: BundleInfo) -> dict[str, set[str]]:
    """What of the people it trained on a bundle's weights never saw: cameras, expressions and stage lights
    (by name), after every bundle it started from. Bundles from before this was recorded: read from
    their training config (an environment-lit bundle saw every stage light, composed into environments)."""
    training = info.training
    if "held_out" in training:
        return {kind: set(training["held_out"][kind]) for kind in HELD_OUT_KINDS}
    c = training.get("config", {})
    lights: set[str] = set()
    if not info.config.conditioning_mode.environment and info.layout is not None:
        index = held_out_lights(info.layout, c.get("holdout_light_every", 10), tuple(c.get("holdout_lights", ())))
        lights = {info.layout.names[i] for i in index}
    return {"cameras": set(c.get("holdout_cameras", ())), "expressions": set(c.get("holdout_expressions", ())),
            "lights": lights}


@dataclass
class TrainConfig:
    captures: list[str]               # capture set folders, or folders of people (relit synth --identities)
    output: str                       # run folder: checkpoints/, metrics.jsonl, bundle/
    preset: str = "tiny"              # model preset (core.model.config.PRESETS)
    conditioning: str = OLAT.name     # core.model.conditioning.CONDITIONINGS: olat (DifFRelight), envmap (SynthLight)
    environments: list[str] = field(default_factory=lambda: ["city", "courtyard", "forest", "interior",
                                                             "night", "studio", "sunrise", "sunset"])
                                      # envmap training HDRIs (bundled names or files), turned at random
    multitask_ratio: float = 0.0      # multi-task: share of each batch given to real photos (0: none)
    multitask_images: list[str] = field(default_factory=list)  # unpaired real photos for it (sRGB or EXR)
    multitask_task: str = ""          # core.model.real_tasks.REAL_TASKS: what the model learns from them
                                      # ("": the conditioning's own, Conditioning.real_task)
    resolution: int = 64              # training resolution (capture images are box-filtered down to it)
    patch: int = 0                    # olat: train on random crops of this side (0: whole frames); the bundle
                                      # relights whole frames by blended tiles of it (core.model.tiling)
    position: bool = False            # patch models: each pixel's place in the frame as two more input channels
    normals: bool = False             # the face mesh's normals as three more input channels (recorded landmarks,
                                      # jittered as MediaPipe errs; MediaPipe's own on captures without them)
    objective: str = "refine"         # core.model.objectives.OBJECTIVES: refine, diffusion, flow, regression
    relative: bool = False            # learn the change from the input's latent (~ log shading ratio), not the target
    environment_token: bool = False   # envmap: the target map's order-2 SH also as a cross-attention token
    target_lighting: str = "any"      # envmap: the targets' lightings (TARGET_LIGHTINGS): "any", or "flat" for a
                                      # delighter (plate as shot -> flat-lit: the two-stage design's first stage)
    source_tint: float = 1.0          # envmap: scale of the chance a *source* light is tinted (LightingMix.tint);
                                      # below 1 the model learns that plates are mostly white-lit and keeps
                                      # their colour (targets are always drawn with the full range: the map is given)
    subject_saturation: float = 0.0   # envmap: each pair's subject saturated along its own hue, on both sides
                                      # alike, by a strength drawn in [0, this] (TrainingData.subject_gain;
                                      # 0: the synthetic people's own colours, paler than photographed skin)
    shift: int = 0                    # olat: each sample moved by up to this many pixels (model resolution) in x
                                      # and y, zero-filled: a shift of the principal point, so the light's camera-frame
                                      # direction is unchanged (data.shifted; 0: none). Against a network
                                      # learning where each training view puts the face
    steps: int = 2000                 # optimiser steps
    sample_steps: int | None = None   # sampler steps the bundle records (None: the objective's measured default)
    consistency: str = "ratio"        # stage-prediction correction the bundle applies: "ratio" or "none"

    def __post_init__(self) -> None:
        if self.consistency not in CONSISTENCY:
            raise ValidationError(f"consistency {self.consistency!r}: use one of {CONSISTENCY}")
        if self.sample_steps is not None and self.sample_steps < 1:
            raise ValidationError(f"sample_steps must be >= 1, got {self.sample_steps}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValidationError(f"lr_schedule {self.lr_schedule!r}: use one of {sorted(LR_SCHEDULES)}")
        if self.conditioning not in CONDITIONINGS:
            raise ValidationError(f"conditioning {self.conditioning!r}: use one of {sorted(CONDITIONINGS)}")
        if self.target_lighting not in TARGET_LIGHTINGS:
            raise ValidationError(f"target_lighting {self.target_lighting!r}: use one of {sorted(TARGET_LIGHTINGS)}")
        if self.target_lighting != "any" and not CONDITIONINGS[self.conditioning].environment:
            raise ValidationError(f"target_lighting {self.target_lighting!r} applies to environment-lit models "
                                  f"(--conditioning envmap), not {self.conditioning}")
        environment_lit = CONDITIONINGS[self.conditioning].environment
        if not self.subject_saturation >= 0 or (self.subject_saturation and not environment_lit):  # nan too
            raise ValidationError(f"subject_saturation {self.subject_saturation}: give 0 or more, for environment-lit "
                                  "models (--conditioning envmap)")
        if self.shift < 0 or (self.shift and environment_lit):
            raise ValidationError(f"shift {self.shift}: give 0 or more pixels, for stage-lit models (olat); "
                                  "environment-lit training frames each person by its face")
        if self.shift and self.patch:
            raise ValidationError("shift moves whole frames; a patch model already trains on random crops of them")
        if not self.multitask_task:
            self.multitask_task = CONDITIONINGS[self.conditioning].real_task
        if self.multitask_task not in REAL_TASKS:
            raise ValidationError(f"multitask_task {self.multitask_task!r}: use one of {sorted(REAL_TASKS)}")
        if self.patch and self.multitask_ratio:
            raise ValidationError("the multi-task real images are whole frames: train patches without multitask_ratio")
        if self.normals and self.multitask_ratio:
            raise ValidationError("the multi-task real images carry no face normals yet: train normals without "
                                  "multitask_ratio (--real-images)")
    max_minutes: float = 0.0          # stop early after this wall time of this session (0: no limit); with
                                      # checkpoints, a checkpoint is written where it stops
    batch: int = 8                    # samples per step
    lr: float = 5e-4                  # AdamW learning rate (peak, before the schedule)
    lr_schedule: str = "constant"     # LR_SCHEDULES: the learning rate's multiplier over the run's `steps`
    weight_decay: float = 1e-2        # AdamW weight decay
    ema_decay: float = 0.995          # EMA of the weights used for validation and the bundle
    seed: int = 0                     # data order, noise and initialisation
    drop_image: float = 0.1           # probability of a zero flat-lit latent (image guidance)
    drop_light: float = 0.1           # probability of the null light token (lighting guidance)
    pyramid_discount: float = 0.8     # pyramid noise level weight ratio; 0 = plain Gaussian noise
    area_prob: float = 0.25           # share of area-light samples (SG-weighted OLAT sums, beta > 0)
    holdout_light_every: int = 10     # every k-th stage light is held out (unless holdout_lights names them)
    holdout_lights: list[str] = field(default_factory=list)  # stage lights held out, by name or index
    holdout_cameras: list[str] = field(default_factory=list)      # cameras held out entirely
    holdout_expressions: list[str] = field(default_factory=list)  # expressions held out entirely
    holdout_identities: list[str] = field(default_factory=list)   # subjects (capture sets) held out entirely
    val_every: int = 500              # validation period in steps (0: only at the end)
    val_samples: int = 6              # validation images per split
    val_steps: int = 20               # DDIM steps at validation
    checkpoint_every: int = 500       # checkpoint period in steps
    device: str = "cpu"               # "cpu" or "cuda"
    bf16: bool = False                # bf16 autocast (CUDA)
    gradient_checkpointing: bool = False  # trade compute for memory (production sizes)
    base_checkpoint: str | None = None    # local SD folder for sd15/sd21 presets
    init_from: str | None = None      # a bundle whose weights start the run (a longer or further training of
                                      # a shipped bundle whose checkpoints are gone); its model config must match
    command: str = ""                 # the command line that started the run (provenance)


def _batch_latents(pipe: RelightPipeline, batch: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    flat = torch.from_numpy(batch["flat"]).float().to(device)
    target = torch.from_numpy(batch["target"]).float().to(device)
    return pipe._to_latent(target, pipe.exposure_target), pipe._to_latent(flat, pipe.exposure_image)


def _distributed(cfg: TrainConfig) -> tuple[int, int]:
    """(rank, world size) under torchrun (WORLD_SIZE set), initialising the process group once:
    gloo on CPU, NCCL on CUDA (each rank on its LOCAL_RANK GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if cfg.device.startswith("cuda"):
        cfg.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cfg.device.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size()


class Trainer:
    """Trains on one process or data-parallel under torchrun: every rank draws the same global batch
    and random numbers, takes its equal share, and gradients are averaged across ranks before each
    step (what DDP does), so N ranks take the same steps as one process over the global batch.
    Rank 0 alone writes checkpoints, metrics and the bundle; a checkpoint resumes on any world size."""

    def __init__(self, cfg: TrainConfig):
        from diffusers.training_utils import EMAModel

        self.rank, self.world = _distributed(cfg)
        if cfg.batch % self.world:
            raise ValidationError(f"--batch {cfg.batch} does not split over {self.world} processes; use a multiple")
        self.cfg = cfg
        self.out = Path(cfg.output)
        if self.out.exists() and not self.out.is_dir():
            raise ValidationError(f"-o {self.out}: is a file; a training run writes a folder (checkpoints, metrics)")
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.data = TrainingData(open_captures(cfg.captures), cfg.resolution, normals=cfg.normals)
        self.split: Split = self.data.split(cfg.holdout_light_every, tuple(cfg.holdout_cameras),
                                            tuple(cfg.holdout_expressions), tuple(cfg.holdout_identities),
                                            tuple(cfg.holdout_lights))
        self.out.mkdir(parents=True, exist_ok=True)  # only once the captures and the split are known good
        subject = self.data.alpha > 0.5
        subject[self.split.val_views] = False  # measured on the training views
        self.coverage = stage_coverage(self.data.flat, self.data.olat, self.data.irradiance, subject)
        if (partial := partial_stage_message(self.coverage, f"{cfg.captures[0]}")) and self.rank == 0:
            log.warning("%s", partial)
        stage_radius = self.data.layout.olat_radius
        self.model_config = preset(cfg.preset, resolution=cfg.resolution, stage_radius=stage_radius,
                                   base_checkpoint=cfg.base_checkpoint, conditioning=cfg.conditioning,
                                   environment_token=cfg.environment_token, patch=cfg.patch,
                                   position=cfg.position, normals=cfg.normals)
        self.environment_lit = self.model_config.conditioning_mode.environment  # the light is an env map
        self.environments = _load_environments(cfg.environments) if self.environment_lit else []
        self.real_images = (RealImages(cfg.multitask_images, cfg.resolution, by_face=self.environment_lit)
                            if cfg.multitask_ratio else None)
        check_device(cfg.device)
        self.device = torch.device(cfg.device)
        model = RelightModel(self.model_config).to(self.device)
        if cfg.gradient_checkpointing:
            model.unet.enable_gradient_checkpointing()
        base = Path(cfg.base_checkpoint) if cfg.base_checkpoint else None
        codec = CODECS[self.model_config.codec].build(self.model_config, base, safetensors_only=False)
        self.objective = make_objective({"name": cfg.objective, "relative": cfg.relative},
                                        from_scratch=not cfg.base_checkpoint)
        if self.environment_lit:  # both sides of a pair are images under unit mean radiance
            exp_image = exp_target = self.data.portrait_exposure(self.split.train_views, self.environments)
        else:
            exp_image, exp_target = self.data.exposures(self.split)
        self.pipe = RelightPipeline(model, self.objective.scheduler(), codec.to(self.device), ToneCurve(), exp_image,
                                    exp_target, self.objective)
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.ema = EMAModel(model.parameters(), decay=cfg.ema_decay)
        self.step = 0
        self.seconds = 0.0
        self.started_from: dict | None = None  # the --init-from bundle's provenance (kept across resumes)
        if not self._resume() and cfg.init_from:
            self._init_from(Path(cfg.init_from))

    def _own_held_out(self) -> dict[str, set[str]]:
        """What this run keeps from its weights, of the people it trains on (``held_out``'s kinds)."""
        lights = set() if self.environment_lit else {self.data.layout.names[i] for i in self.split.val_lights}
        return {"cameras": set(self.cfg.holdout_cameras), "expressions": set(self.cfg.holdout_expressions),
                "lights": lights}

    def held_out(self) -> dict[str, list[str]]:
        """What this run's weights never saw of its people, after the bundle it started from (which saw
        everything of them but what it held out)."""
        ours = self._own_held_out()
        theirs = (self.started_from or {}).get("held_out")
        saw = (self.started_from or {}).get("views_seen")
        if theirs is None:
            return {kind: sorted(ours[kind]) for kind in HELD_OUT_KINDS}
        # held out here and there, or held out here and never part of the bundle's data
        return {kind: sorted(ours[kind] & set(theirs[kind])
                             | (ours[kind] - set(saw[kind]) if saw is not None and kind in SEEN_KINDS else set()))
                for kind in HELD_OUT_KINDS}

    def views_seen(self) -> dict[str, list[str]] | None:
        """The cameras and expressions of this run's training views, with those of the bundle it started from
        (None when that bundle does not record its own)."""
        if self.started_from is not None and self.started_from.get("views_seen") is None:
            return None
        before = (self.started_from or {}).get("views_seen") or {kind: [] for kind in SEEN_KINDS}
        views = [self.data.views[i] for i in self.split.train_views]
        return {"cameras": sorted({v.camera for v in views} | set(before["cameras"])),
                "expressions": sorted({v.expression for v in views} | set(before["expressions"]))}

    # --- checkpoints -------------------------------------------------------------------------
    def _checkpoint_dir(self) -> Path:
        return self.out / "checkpoints"

    def save_checkpoint(self) -> Path:
        from safetensors.torch import save_file

        folder = self._checkpoint_dir() / f"step_{self.step:07d}"
        tmp = folder.with_name(folder.name + ".partial")
        tmp.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()},
                  tmp / "model.safetensors")
        save_file({f"p{i}": p.detach().cpu().contiguous() for i, p in enumerate(self.ema.shadow_params)},
                  tmp / "ema.safetensors")
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        state = {"step": self.step, "seconds": self.seconds, "ema_step": self.ema.optimization_step,
                 "started_from": self.started_from, "data": self._data_fingerprint(),
                 "rng": self.rng.bit_generator.state,
                 "torch_rng": torch.get_rng_state().tolist(), "config": asdict(self.cfg)}
        (tmp / "state.json").write_text(json.dumps(state))
        replace_synced(tmp, folder)
        return folder

    def _init_from(self, bundle: Path) -> None:
        """Start from a bundle's (EMA) weights; the optimiser and the schedule start afresh."""
        from .bundle import load_bundle

        pipe, info = load_bundle(bundle)
        if self.model_config.normals and not info.config.normals:  # its weights start a normals model: the
            # normal channels' weights start at zero, so the run starts from exactly the bundle's predictions
            info.config = replace(info.config, normals=True)
            expand_conv_in(pipe.model.unet, info.config.in_channels)
            pipe.model.config = info.config
        if info.config != self.model_config:
            theirs, ours = asdict(info.config), asdict(self.model_config)
            diff = ", ".join(f"{k}: bundle {theirs[k]!r}, run {ours[k]!r}" for k in ours if theirs.get(k) != ours[k])
            raise ValidationError(f"--init-from {bundle}: its model differs from this run's ({diff}); train with "
                                  "the bundle's settings or without --init-from")
        seen = people_seen(info)
        if seen is None and self.cfg.holdout_identities:
            raise ValidationError(f"--init-from {bundle}: it does not record which people trained it, so this run's "
                                  "held-out people may have been seen; train without --init-from or without "
                                  "--holdout-identities")
        if leaked := sorted((seen or set()) & set(self.cfg.holdout_identities)):
            raise ValidationError(f"--init-from {bundle}: its weights were trained on {leaked}, which this run holds "
                                  "out, so its validation would score people it has seen; hold out people the bundle "
                                  "held out too, or train without --init-from")
        # the people this run trains or validates on that the bundle saw: what it holds out of them, the
        # bundle must have held out too
        shared = sorted((seen or set()) & (set(self.data.subjects) - set(self.cfg.holdout_identities)))
        theirs = held_out(info) if shared else None
        saw = views_seen(info)
        if theirs is not None:
            ours = self._own_held_out()
            # a camera or expression the bundle never trained on (a new capture set's) is no leak
            unseen = {kind: (ours[kind] - saw[kind]) if saw is not None and kind in SEEN_KINDS else set()
                      for kind in HELD_OUT_KINDS}
            if leaked := {kind: sorted(ours[kind] - theirs[kind] - unseen[kind]) for kind in HELD_OUT_KINDS
                          if ours[kind] - theirs[kind] - unseen[kind]}:
                listed = "; ".join(f"{kind} {names[:6]}{' ...' if len(names) > 6 else ''}"
                                   for kind, names in leaked.items())
                raise ValidationError(f"--init-from {bundle}: its weights were trained on {shared[:4]} under {listed}, "
                                      "which this run holds out, so its validation would score what the bundle has "
                                      "seen; hold out what the bundle held out, or train without --init-from")
        self.started_from = {"bundle": str(bundle), "id": info.id, "steps": info.training.get("steps"),
                             "steps_in_all": info.steps_in_all, "commit": info.training.get("commit"),
                             "people_seen": sorted(seen or ()),
                             "held_out": None if theirs is None else {k: sorted(v) for k, v in theirs.items()},
                             "views_seen": None if saw is None else {k: sorted(v) for k, v in saw.items()}}
        self.model.load_state_dict(pipe.model.state_dict())
        for shadow, p in zip(self.ema.shadow_params, self.model.parameters()):
            shadow.data.copy_(p.data)
        log.info("started from the weights of %s (%s)", bundle, info.id)

    def _resume(self) -> bool:
        """Continue from the run folder's last checkpoint; False when it has none."""
        from safetensors.torch import load_file

        done = sorted(p for p in self._checkpoint_dir().glob("step_*") if not p.name.endswith(".partial"))
        if not done:
            return False
        last = done[-1]
        state = json.loads((last / "state.json").read_text())
        self._check_resumable(state.get("config", {}))
        self._check_same_data(state.get("data"))
        self.model.load_state_dict(load_file(last / "model.safetensors"))
        ema = load_file(last / "ema.safetensors")
        for i, p in enumerate(self.ema.shadow_params):
            p.data.copy_(ema[f"p{i}"])
        # the EMA's own step sets its decay warm-up: restarted at 0, the resumed EMA would be the live weights
        # (a checkpoint from before it was saved: the run's step, which it equals in a run that never resumed)
        self.ema.optimization_step = int(state.get("ema_step", state["step"]))
        self.optimizer.load_state_dict(torch.load(last / "optimizer.pt", weights_only=True))
        self.step, self.seconds = state["step"], state["seconds"]
        self.started_from = state.get("started_from")
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        log.info("resumed from %s (step %d)", last, self.step)
        return True

    def _check_resumable(self, config: dict) -> None:
        """A checkpoint resumes only the run it belongs to: refused before any weight is loaded."""
        trained = config.get("objective", "diffusion")
        if trained != self.cfg.objective:
            raise ValidationError(f"{self.out}: this run trains the {trained!r} objective; resume it with "
                                  f"--objective {trained} or train {self.cfg.objective!r} in a new run folder")
        patch = config.get("patch", 0)
        if patch != self.cfg.patch:
            trained = f"{patch}-px patches" if patch else "whole frames"
            raise ValidationError(f"{self.out}: this run trains on {trained}; resume it with --patch {patch} or "
                                  "start a new run folder")
        relative = config.get("relative", False)
        if relative != self.cfg.relative:
            raise ValidationError(f"{self.out}: this run was started {'with' if relative else 'without'} --relative; "
                                  f"resume it the same way or start a new run folder")
        # everything else that decides what the run learns, with the value a checkpoint from before the field
        # existed trained with (the field's default; a derived default: the run's own)
        defaults = {f.name: (f.default_factory() if f.default_factory is not MISSING else f.default)
                    for f in fields(TrainConfig)}
        defaults["multitask_task"] = self.cfg.multitask_task
        if "captures" not in config and "capture" in config:  # a run from before several capture sets
            config = {**config, "captures": [config["capture"]]}
        for name in [n for n in defaults if n != "steps"] + ["steps"]:  # a schedule before the length it follows
            if (name in RESUME_MAY_CHANGE or (name == "steps" and self.cfg.lr_schedule in LENGTH_FREE)
                    or (name in ENVIRONMENT_ONLY and not self.environment_lit)
                    or (name not in config and defaults[name] is MISSING)):  # not recorded: the data decides
                continue
            trained, given = config.get(name, defaults[name]), getattr(self.cfg, name)
            same = _names(trained) == _names(given) if name in RESUME_BY_NAME else trained == given
            if not same:
                why = {"steps": f" (the {self.cfg.lr_schedule} schedule's rates follow the run's length)"}.get(
                    name, " (compared by name, in order)" if name in RESUME_BY_NAME else "")
                raise ValidationError(f"{self.out}: this run trains with {name} {trained!r}, not {given!r}{why}; "
                                      "resume it with the same setting or start a new run folder")

    def _data_fingerprint(self) -> dict:
        """What the captures hold, as a resume compares it: subjects, views and stage lights (a capture
        folder of the same name with other people or views is other data)."""
        views = [[v.identity, v.camera, v.frame, v.expression] for v in self.data.views]
        digest = hashlib.sha256(json.dumps([views, self.data.layout.names]).encode()).hexdigest()
        return {"subjects": len(self.data.subjects), "views": len(views), "lights": len(self.data.layout),
                "sha256": digest}

    def _check_same_data(self, recorded: dict | None) -> None:
        ours = self._data_fingerprint()
        if recorded is not None and recorded["sha256"] != ours["sha256"]:
            raise ValidationError(f"{self.out}: this run trained on {recorded['views']} views of "
                                  f"{recorded['subjects']} subject(s) and {recorded['lights']} stage lights; the "
                                  f"captures given hold {ours['views']} views of {ours['subjects']} and "
                                  f"{ours['lights']} lights. Resume it with the same captures or start a new run "
                                  "folder")

    # --- one step --------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, views: list[int]) -> dict:
        cfg = self.cfg
        if self.environment_lit:
            batch = self.data.sample_portrait(rng, cfg.batch, views, self.environments,
                                              TARGET_LIGHTINGS[cfg.target_lighting],
                                              source_mix=LightingMix(tint=cfg.source_tint),
                                              saturation=cfg.subject_saturation)
        else:
            batch = self.data.sample(rng, cfg.batch, views, self.split.train_lights, cfg.area_prob,
                                     self.model_config.stage_radius)
            if self.model_config.tiled:  # the frame at full resolution, one patch of it per sample
                batch = crop_patches(rng, batch, self.model_config.patch,
                                     CODECS[self.model_config.codec].downsample(self.model_config))
            if cfg.shift:
                batch = shifted(rng, batch, cfg.shift)
        if self.real_images is not None:  # multi-task: some samples are real photos (core.model.real_tasks)
            task = REAL_TASKS[cfg.multitask_task]
            real = rng.random(cfg.batch) < cfg.multitask_ratio
            batch["drop_image"], batch["drop_light"] = real & task.drop_image, real & task.drop_light
            for b in np.flatnonzero(real):
                photo = self.real_images.draw(rng)
                if task.keep_input:  # the target in the units that encode to the input's own latent
                    batch["flat"][b] = photo
                    batch["target"][b] = photo * (self.pipe.exposure_image / self.pipe.exposure_target)
                else:  # the photo's pixel values are the target latent's, as a render's are
                    batch["target"][b] = photo / self.pipe.exposure_target
        return batch

    def _share(self, batch: dict) -> tuple[dict, slice]:
        """This rank's part of a global batch, and where it lies in it."""
        total = len(batch["flat"])
        size = total // self.world
        part = slice(self.rank * size, (self.rank + 1) * size)
        if self.world == 1:
            return batch, part
        return {k: v[part] if isinstance(v, np.ndarray) and len(v) == total else v for k, v in batch.items()}, part

    def loss(self, batch: dict) -> torch.Tensor:
        """Loss of this rank's share of a global batch; the random draws are made for the whole
        batch (the same on every rank) and sliced."""
        cfg, model = self.cfg, self.model
        total = len(batch["flat"])
        batch, part = self._share(batch)
        x0, img = _batch_latents(self.pipe, batch, self.device)
        source = img  # the flat-lit latent before any dropout (a flow starts from it)
        b = len(x0)
        env = None
        if self.environment_lit:
            maps = torch.from_numpy(batch["environment"]).float().to(self.device)
            tokens = model.environment_tokens(maps)
            env = self.pipe.codec.encode(maps.permute(0, 3, 1, 2))
        else:
            enc = torch.from_numpy(self.model_config.light_encoding().encode(batch["direction"], batch["beta"]))
            tokens = model.light_tokens(enc.to(self.device))
        drop_i = self.rng.random(total)[part] < cfg.drop_image
        drop_l = self.rng.random(total)[part] < cfg.drop_light
        if not self.objective.stochastic:  # the deterministic baseline trains without dropout
            drop_i[:], drop_l[:] = False, False
        drop_i |= batch.get("drop_image", np.zeros(b, bool))  # a real-image task's samples
        drop_l |= batch.get("drop_light", np.zeros(b, bool))
        drop_i, drop_l = torch.from_numpy(drop_i).to(self.device), torch.from_numpy(drop_l).to(self.device)
        img = torch.where(drop_i[:, None, None, None], torch.zeros_like(img), img)
        normals = None
        if self.model_config.normals:  # the face's geometry belongs to the image: dropped with it
            normals = model.normals_latent(torch.from_numpy(batch["normals"]).to(self.device))
            normals = torch.where(drop_i[:, None, None, None], torch.zeros_like(normals), normals)
        tokens = torch.where(drop_l[:, None, None], model.null_tokens(b), tokens)
        if env is not None:
            env = torch.where(drop_l[:, None, None, None], torch.zeros_like(env), env)
        generator = torch.Generator().manual_seed(int(self.rng.integers(2 ** 31)))
        shape = (total,) + tuple(x0.shape[1:])
        if cfg.pyramid_discount > 0 and self.objective.pyramid:
            noise = pyramid_noise(shape, generator, cfg.pyramid_discount)[part].to(self.device)
        else:
            noise = torch.randn(shape, generator=generator)[part].to(self.device)
        u = torch.from_numpy(self.rng.random(total)[part]).float().to(self.device)

        position = self._crop_position(batch["crop"]) if self.model_config.position else None

        def net(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                return model(x, t, img, tokens, env, position, normals)

        return self.objective.loss(net, x0, source, noise, u)

    def _crop_position(self, crop: np.ndarray,  # [B, 2] crops' top-left pixels (crop_patches)
                       ) -> torch.Tensor:       # [B, 2, tile, tile] their latent pixels' place in the frame
        cfg = self.model_config
        down, tile = CODECS[cfg.codec].downsample(cfg), cfg.patch_latent
        return torch.stack([frame_position(cfg.latent_size, slice(y // down, y // down + tile),
                                           slice(x // down, x // down + tile)) for y, x in crop]).to(self.device)

    def learning_rate(self, step: int) -> float:
        """The rate of optimiser step ``step`` (0-based) under the run's schedule."""
        return self.cfg.lr * LR_SCHEDULES[self.cfg.lr_schedule](step / self.cfg.steps)

    def train(self, progress: bool = True) -> dict:
        from tqdm import tqdm

        cfg = self.cfg
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.objective}", unit="step",
                   disable=not progress)
        start = time.perf_counter() - self.seconds  # the run's time, over every session that trained it
        session = time.perf_counter()  # --max-minutes bounds this session alone
        metrics = {}
        while self.step < cfg.steps:
            batch = self.sample(self.rng, self.split.train_views)
            self.model.train()
            loss = self.loss(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._average_gradients()
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(self.step)
            self.optimizer.step()
            self.ema.step(self.model.parameters())
            self.step += 1
            self.seconds = time.perf_counter() - start
            bar.set_postfix(loss=f"{loss.item():.4f}")
            bar.update(1)
            out_of_time = self._agree(bool(cfg.max_minutes and time.perf_counter() - session > 60 * cfg.max_minutes))
            # stopped on time, a resumable run keeps its last step (the next session goes on from there)
            if cfg.checkpoint_every and (self.step % cfg.checkpoint_every == 0 or out_of_time):
                if self.rank == 0:
                    self.save_checkpoint()
                self._barrier()
            validate = (cfg.val_every and self.step % cfg.val_every == 0) or self.step == cfg.steps or out_of_time
            if validate and self.rank == 0:
                metrics = self.validate()
                bar.write(f"step {self.step}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()
                                                             if isinstance(v, float)))
            if out_of_time:
                break
        bar.close()
        return metrics

    # --- data parallel -------------------------------------------------------------------------
    def _average_gradients(self) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        for p in self.model.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad /= self.world

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def _agree(self, flag: bool) -> bool:
        """True on every rank when any rank says so (a wall-time limit stops all ranks together)."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([1.0 if flag else 0.0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    # --- validation --------------------------------------------------------------------------
    def ema_model(self) -> RelightModel:
        clone = RelightModel(self.model_config, unet=_copy_unet(self.model.unet)).to(self.device)
        clone.load_state_dict(self.model.state_dict())
        self.ema.copy_to(clone.parameters())
        return clone.eval()

    def predict(self, model: RelightModel, view: int, directions: np.ndarray, betas: np.ndarray,
                steps: int, seed: int = 0) -> np.ndarray:  # [L, H, W, 3] per unit irradiance
        flat = self.data.flat[view]
        pipe = self.pipeline(model)
        return pipe(flat, directions, betas, num_inference_steps=steps, seed=seed,
                    normals=self.data.view_normals(view)).images

    def validate(self) -> dict:
        model = self.ema_model()
        rng = np.random.default_rng(1234)
        if self.environment_lit:
            return self._validate_environment(model, rng)
        sets = {"val_lights": (self.split.train_views, self.split.val_lights)}
        out_names = [self.data.layout.names[i] for i in self.split.val_lights]
        if self.split.val_views:
            sets["val_views"] = (self.split.val_views, np.arange(len(self.data.layout)))
        out: dict = {"step": self.step, "seconds": round(self.seconds, 1), "val_light_names": out_names}
        for name, (views, lights) in sets.items():
            if len(lights) == 0:
                continue
            scores = []
            for _ in range(self.cfg.val_samples):
                v, i = int(rng.choice(views)), int(rng.choice(lights))
                pred = self.predict(model, v, self.data.camera_directions(v)[[i]], np.zeros(1), self.cfg.val_steps)[0]
                truth = self.data.olat[v, i].astype(np.float32)
                mask = self.data.alpha[v] > 0.5
                scores.append((psnr(pred, truth, mask), ssim(pred, truth, mask)))
            out[f"{name}_psnr"], out[f"{name}_ssim"] = (float(np.mean([s[k] for s in scores])) for k in (0, 1))
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(out) + "\n")
        return out

    def _validate_environment(self, model: RelightModel, rng: np.random.Generator) -> dict:
        views = self.split.val_views or self.split.train_views
        batch = self.data.sample_portrait(rng, self.cfg.val_samples, views, self.environments,
                                          TARGET_LIGHTINGS[self.cfg.target_lighting], LightingMix(), distinct=True)
        pipe = self.pipeline(model)
        scores = []
        for b in range(len(batch["flat"])):
            pred = pipe(batch["flat"][b], environment=batch["environment"][b:b + 1],
                        num_inference_steps=self.cfg.val_steps,
                        normals=batch["normals"][b] if "normals" in batch else None).images[0]
            truth, mask = batch["target"][b], batch["alpha"][b] > 0.5
            scores.append((psnr(pred, truth, mask), ssim(pred, truth, mask),
                           psnr(best_scale(batch["flat"][b], truth, mask) * batch["flat"][b], truth, mask)))
        name = "val_views" if self.split.val_views else "train_views"
        out = {"step": self.step, "seconds": round(self.seconds, 1),
               f"{name}_env_psnr": float(np.mean([s[0] for s in scores])),
               f"{name}_env_ssim": float(np.mean([s[1] for s in scores])),
               f"{name}_input_x_constant_psnr": float(np.mean([s[2] for s in scores]))}
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(out) + "\n")
        return out

    def pipeline(self, model: RelightModel) -> RelightPipeline:
        """This run's pipeline around ``model`` (e.g. the EMA weights)."""
        return RelightPipeline(model, self.pipe.scheduler, self.pipe.codec, self.pipe.tone,
                               self.pipe.exposure_image, self.pipe.exposure_target, self.objective)

    def save(self, folder: str | Path | None = None) -> Path:
        """The EMA weights as a bundle (stochastic objectives: a bundle samples)."""
        if not self.objective.stochastic:
            raise RelitError(f"the {self.cfg.objective} objective is a deterministic baseline; bundles sample "
                             "(train with --objective refine, diffusion or flow)")
        pipe = self.pipeline(self.ema_model())
        training = {"command": self.cfg.command, "commit": git_hash(), "steps": self.step,
                    "seconds": round(self.seconds, 1), "config": asdict(self.cfg),
                    "identities": self.data.subjects, "started_from": self.started_from,
                    "people_seen": sorted(set(self.data.subjects) - set(self.cfg.holdout_identities)
                                          | set((self.started_from or {}).get("people_seen", []))),
                    "held_out": self.held_out(), "views_seen": self.views_seen(),
                    "data": {"captures": list(self.cfg.captures), "subject": self.data.subject,
                             "image_size": self.data.image_size,
                             "views": len(self.data.views), "lights": len(self.data.layout),
                             "producer": self.data.provenance}}
        info = BundleInfo(
            id=f"{self.data.subject}-{self.model_config.preset}-{self.cfg.objective}-{steps_in_all(training)}",
            config=self.model_config, tone=self.pipe.tone, exposure_image=self.pipe.exposure_image,
            exposure_target=self.pipe.exposure_target, layout=self.data.layout,
            stage_irradiance=self.data.irradiance.round(8).tolist(), subject=self.data.subject,
            training=training,
            recipe={"objective": self.objective.params(),
                    "steps": self.cfg.sample_steps or self.objective.default_steps,
                    "consistency": self.cfg.consistency},
            stage_coverage=np.round(self.coverage, 5).tolist(), target_lighting=self.cfg.target_lighting,
            licence=bundle_licence(self.data.producers, self.data.subjects, self.cfg.base_checkpoint),
        )
        return save_bundle(folder or self.out / "bundle", pipe, info)


def bundle_licence(producers: list[dict], subjects: list[str], base_checkpoint: str | None) -> str:
    """The bundle's provenance and terms, from its capture sets' manifests (their generator and
    licence fields) and its base weights."""
    if all(p.get("generator") == "relit synth" for p in producers):
        data = "relit's own synthetic renders (relit synth; GPL-3.0-or-later project)"
    else:
        terms = sorted({str(p["licence"]) for p in producers if p.get("licence")})
        named = ", ".join(subjects[:4]) + (f" and {len(subjects) - 4} more" if len(subjects) > 4 else "")
        data = (f"the capture set(s) of {named}; their terms: " + ("; ".join(terms) if terms else
                "not stated in their manifest(s): ask the captures' owner before sharing these weights"))
    weights = ("derived from the base checkpoint's weights: its licence terms apply" if base_checkpoint
               else "no third-party base weights")
    return f"weights trained by relit on {data}; {weights}"


def _load_environments(names: list[str], height: int = 32) -> list[np.ndarray]:
    """The training HDRIs, box-filtered down to ``height`` rows (projection and lookup stay cheap)."""
    from ..io.images import box_downsample
    from ..lighting.hdri import load_environment, resolve_hdri

    out = []
    for name in names:
        pixels = load_environment(resolve_hdri(name))
        out.append(box_downsample(pixels, max(1, pixels.shape[0] // height)))
    return out


class RealImages:
    """The multi-task's real photos, scene-linear at the model's resolution: whole frames centre-cropped
    (a subject-specific model), or framed by the face as a portrait bundle frames a plate, moved,
    mirrored and exposed anew at every draw (core.portrait.training_photos)."""

    def __init__(self, paths: list[str], resolution: int, by_face: bool) -> None:
        if not paths:
            raise RelitError("multitask_ratio > 0 needs multitask_images (files of real photos)")
        self.resolution = resolution
        if by_face:
            from ..portrait.training_photos import load_framed_photo

            self.framed = [load_framed_photo(p) for p in paths]
            self.frames: list[np.ndarray] = []
        else:
            from ..io.plates import fit_square, read_plate

            self.framed = []
            self.frames = [fit_square(plate.rgb, plate.alpha, resolution)[0].astype(np.float32)
                           for plate in map(read_plate, paths)]

    def draw(self, rng: np.random.Generator) -> np.ndarray:  # [m, m, 3]
        if self.framed:
            from ..portrait.training_photos import jittered_view

            return jittered_view(self.framed[rng.integers(len(self.framed))], self.resolution, rng)
        return self.frames[rng.integers(len(self.frames))]


def _copy_unet(unet):
    import copy

    return copy.deepcopy(unet)


def train(cfg: TrainConfig, progress: bool = True) -> tuple[Trainer, dict]:
    if not cfg.command:
        cfg.command = shlex.join(["relit"] + sys.argv[1:]) if sys.argv and "relit" in sys.argv[0] else ""
    trainer = Trainer(cfg)
    metrics = trainer.train(progress)
    return trainer, metrics
