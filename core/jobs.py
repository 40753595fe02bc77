"""The job schema (DESIGN.md contract 5): one JSON shape for the CLI, the worker's requests,
the ``JOB.json`` a farm plan splits and a Ray task's argument.

Pure Python (no torch): the Blender add-on builds and validates jobs in its own process.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .errors import ValidationError
from .io.atomic import atomic_write_text
from .io.sequence import parse_frame_range
from .lighting.rig import LightRig
from .model.consistency import CONSISTENCY
from .relight.cache import DEFAULT_LIMIT_MB
from .relight.strategies import STRATEGIES
from .validation import as_number, as_numbers, check_fields, load_json

JOB_VERSION = 1
NOISE_MODES = ("fixed", "flow")
TEMPORAL_WEIGHT = 0.5  # RelightJob.temporal when blending is asked for without a share (the CLI, the add-on)
SAMPLERS = ("ddim", "dpmpp", "euler", "direct")  # which apply depends on the bundle's objective


OUTPUT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # RelightJob.name: a file stem, never a path
AUTO_MATTE = "auto"  # RelightJob.matte: segment the person whose face is found (core.portrait.matte)
AUTO_DELIGHTER = "auto"  # RelightJob.delight: the shipped delighter (core.model.bundle.DELIGHT_BUNDLE)
AUTO_BUNDLE = "auto"  # RelightJob.bundle: the shipped bundle for the plate's subject (relight_job.choose_bundle)


@dataclass
class RelightJob:
    bundle: str                          # model bundle folder, or "auto": the shipped bundle trained on the
                                         # plate's subject, else the general portrait bundle (with delight:
                                         # the general OLAT bundle)
    input: str                           # flat-lit plate: a file or a sequence pattern (####, %04d)
    output: str                          # output root; every run writes into a version folder vNNN below it
    rig: LightRig | None = None          # lights and/or environment, parsed once where the job is received (in
                                         # JSON: the LightRig's JSON, inline); a dict given here is parsed
    delight: str | None = None           # delighter bundle folder, or "auto" (the shipped one): the plate as shot
                                         # is made flat-lit by it before the bundle relights it (two-stage;
                                         # core.relight.delight); None: the plate is relit as it is
    matte: str | None = None             # matte file or pattern, or "auto" (default: the plate's alpha, or
                                         # "auto" when the plate has none: core.portrait.matte)
    camera_c2w: list | None = None       # Blender 4x4 camera-to-world of the plate (default: the rig's, else
                                         # the front view); what stage directions are seen from
    frames: str | None = None            # frame range "A-B" or "A-B,C" (default: every frame found)
    hdri_strategy: str = "auto"          # how an environment is relit: stage | area | envmap (auto: by bundle)
    clusters: int = 8                    # area lights for the "area" strategy
    missing: str = "drop"                # light below a stage floor: drop (reported) | nearest
    basis: bool = False                  # also write every stage direction's unit prediction (OLAT basis)
    steps: int | None = None             # sampler steps (default: the bundle's recipe; 0: a refine bundle's mean pass)
    guidance_image: float = 1.0          # lambda_I
    guidance_light: float = 1.0          # lambda_L
    seed: int = 0                        # initial-noise seed
    samples: int = 1                     # samples averaged per light: less sampling grain, samples x the cost
    sampler: str | None = None           # ddim | dpmpp (diffusion, refine) | euler (flow); default: the bundle's
    consistency: str | None = None       # stage predictions: none | ratio (pinned to the input); default: bundle
    noise: str = "fixed"                 # initial noise over a sequence: fixed (same every frame) | flow (warped)
    temporal: float = 0.0                # share of the previous relit frame carried along the plates' optical
                                         # flow, where it passes the forward-backward check (0: off)
    device: str = "cpu"                  # torch device of the model
    batch_size: int = 16                 # lights per UNet batch
    cache_mb: int = DEFAULT_LIMIT_MB     # per-light predictions kept in OUTPUT/.cache, MB (0: none kept);
                                         # a rerun changing only intensities, colours or grouping reuses them
    margin: float = 0.1                  # border around the subject's box when cropping big plates
    colour_space: str | None = None      # the plates' colour space (default: header, else by file type)
    working_space: str = "lin_rec709"    # scene-linear space of the outputs: lin_rec709 | acescg
    subject: str | None = None           # the plate's subject, when its header does not say
    allow_other_subject: bool = False    # run a subject-specific bundle on another subject (warns)
    name: str = "relit"                  # output file stem: NAME.####.exr (and NAME_basis.####.exr)
    cameras: dict | None = None          # several cameras: name -> Blender 4x4 c2w; input, matte and output
                                         # hold "{camera}", the rig is seen from its camera_c2w (reference)
    light_chunk: list | None = None      # [start, end) of the stage directions to compute (a farm unit's
                                         # share); the frame's other chunks are merged later
    folder: str | None = None            # write into this version folder (farm units share the plan's)
    threads: int = 0                     # torch CPU threads (0: torch's default); pin it for identical bytes
    version: int = JOB_VERSION           # schema version

    def __post_init__(self):
        if isinstance(self.rig, dict):  # a job built in Python from a rig's JSON
            self.rig = LightRig.from_json(self.rig, source="job.rig")

    def to_json(self) -> dict:
        return {f.name: (None if self.rig is None else self.rig.to_json()) if f.name == "rig"
                else copy.deepcopy(getattr(self, f.name)) for f in fields(self)}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.dumps() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "RelightJob":
        return cls.from_json(load_json(path, "give a relight job JSON file"), source=str(path))

    @classmethod
    def from_json(cls, data: dict, source: str = "job") -> "RelightJob":
        """Parse and validate; errors name the source and the field."""
        known = {f.name for f in fields(cls)}
        check_fields(data, source, known, required=("bundle", "input", "output"))
        if isinstance(data.get("rig"), dict):
            data = {**data, "rig": LightRig.from_json(data["rig"], source=f"{source}.rig")}
        job = cls(**data)
        job.validate(source)
        return job

    def validate(self, source: str = "job", flags: bool = False) -> None:
        """Check every field; errors name ``source`` and the field (or, with ``flags``, the field as
        ``relit relight``'s flag: --steps)."""
        def at(key: str) -> str:
            return f"--{key.replace('_', '-')}" if flags else f"{source}.{key}"

        if self.version != JOB_VERSION:
            raise ValidationError(f"{source}: version: {self.version!r} is not supported (this relit reads "
                                  f"{JOB_VERSION})")
        for key in ("bundle", "input", "output", "name"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ValidationError(f"{at(key)}: must be a non-empty string")
        if self.delight is not None and (not isinstance(self.delight, str) or not self.delight):
            raise ValidationError(f"{at('delight')}: must be a delighter bundle folder or 'auto', got {self.delight!r}")
        if Path(self.output).exists() and not Path(self.output).is_dir():
            raise ValidationError(f"{at('output')}: {self.output} is a file; relit writes version folders (v001, "
                                  "v002, ...) into a folder: give a folder")
        if not OUTPUT_NAME.fullmatch(self.name):
            raise ValidationError(f"{at('name')}: {self.name!r} is the output files' stem, not a path: use letters, "
                                  "digits, '_', '-' and '.' (not first), e.g. relit_key")
        _choice(self.hdri_strategy, tuple(STRATEGIES), at("hdri_strategy"))
        _choice(self.noise, NOISE_MODES, at("noise"))
        if self.sampler is not None:
            _choice(self.sampler, SAMPLERS, at("sampler"))
        if self.consistency is not None:
            _choice(self.consistency, CONSISTENCY, at("consistency"))
        _choice(self.missing, ("drop", "nearest"), at("missing"))
        for key, lo in (("clusters", 1), ("steps", 0), ("batch_size", 1), ("seed", 0), ("threads", 0),
                        ("samples", 1), ("cache_mb", 0)):
            value = getattr(self, key)
            if key == "steps" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValidationError(f"{at(key)}: must be an integer >= {lo}, got {value!r}")
        as_number(self.guidance_image, at("guidance_image"), 0.0)
        as_number(self.guidance_light, at("guidance_light"), 0.0)
        as_number(self.margin, at("margin"), 0.0, 2.0)
        as_number(self.temporal, at("temporal"), 0.0, 0.95)
        if self.temporal and self.light_chunk is not None:
            raise ValidationError(f"{at('temporal')}: blending runs on whole frames, not on a light chunk's share: "
                                  "blend after the chunks are merged, or leave it 0")
        if self.frames is not None:
            parse_frame_range(self.frames)
        if self.rig is None and not self.basis:
            raise ValidationError(f"{source}: nothing to render; give a rig (lights or an HDRI) or ask for the "
                                  "OLAT basis")
        if self.rig is not None and not isinstance(self.rig, LightRig):
            raise ValidationError(f"{at('rig')}: must be a LightRig (in JSON: an object with lights and/or an "
                                  f"environment), got {type(self.rig).__name__}")
        if self.camera_c2w is not None:
            self.camera_c2w = as_numbers(self.camera_c2w, at("camera_c2w"), (4, 4)).tolist()
        if self.cameras is not None:
            if not isinstance(self.cameras, dict) or not self.cameras:
                raise ValidationError(f"{at('cameras')}: must map camera names to 4x4 camera-to-world matrices")
            for name, c2w in self.cameras.items():
                as_numbers(c2w, f"{at('cameras')}.{name}", (4, 4))
            for key in ("input", "output"):
                if "{camera}" not in getattr(self, key):
                    raise ValidationError(f"{at(key)}: a job over several cameras needs '{{camera}}' in it")
            if self.rig is not None and self.rig.camera_c2w is None:
                raise ValidationError(f"{at('rig')}.camera_c2w: a job over several cameras needs the camera the "
                                      "rig's directions are given in")
        if self.light_chunk is not None:
            chunk = self.light_chunk
            if (not isinstance(chunk, list) or len(chunk) != 2 or not all(isinstance(v, int) for v in chunk)
                    or not 0 <= chunk[0] < chunk[1]):
                raise ValidationError(f"{at('light_chunk')}: must be [start, end) with 0 <= start < end, got {chunk!r}")

    def for_camera(self, name: str) -> "RelightJob":
        """The single-camera job of one of ``cameras``: paths filled in, camera set, lights turned
        from the rig's reference camera into this one's frame (the world lighting stays put)."""
        import numpy as np

        from .lighting.camera import camera_to_world_directions, world_to_camera_directions

        if self.cameras is None or name not in self.cameras:
            raise ValidationError(f"camera {name!r} is not one of the job's cameras {sorted(self.cameras or {})}")
        c2w = np.asarray(self.cameras[name], dtype=np.float64)
        rig = None
        if self.rig is not None:
            rig = copy.deepcopy(self.rig)
            for light in rig.lights:
                world = camera_to_world_directions(np.asarray(light.direction), np.asarray(self.rig.camera_c2w))
                light.direction = tuple(world_to_camera_directions(world, c2w).tolist())
            rig.camera_c2w = c2w.tolist()
        job = replace(self, cameras=None, rig=rig, camera_c2w=c2w.tolist(),
                      input=self.input.replace("{camera}", name), output=self.output.replace("{camera}", name),
                      matte=self.matte if self.matte in (None, AUTO_MATTE) else self.matte.replace("{camera}", name))
        job.validate(f"job camera {name}")
        return job

    def light_rig(self) -> LightRig | None:
        """The rig as the plate's camera sees it, or None (basis-only jobs): the one place where the
        job's camera_c2w, when given, wins over the rig's."""
        if self.rig is None or self.camera_c2w is None:
            return self.rig
        return replace(self.rig, camera_c2w=copy.deepcopy(self.camera_c2w))


def _choice(value, options: tuple[str, ...], where: str) -> None:
    if value not in options:
        raise ValidationError(f"{where}: {value!r} is not one of {options}")

