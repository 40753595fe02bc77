"""Model bundles (DESIGN.md contract 4): a folder in diffusers layout plus ``relit.json``.

    bundle/
      relit.json            conditioning, encodings, tone and exposure, stage layout, subject,
                            training command and data provenance, base-weight licence
      unet/                 UNet2DConditionModel (config.json + safetensors)
      scheduler/            the training noise schedule
      vae/                  the SD VAE (vae codec only)
      lighting.safetensors  the learned null lighting token

safetensors only: a pickled checkpoint can run arbitrary code when loaded, so
one anywhere in a bundle is refused with that reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .._version import __version__
from ..errors import RelitIOError, ValidationError
from ..io.atomic import file_mode, replace_synced
from ..io.plates import GENERAL_SUBJECT
from ..lighting.layout import StageLayout, layout_from_json
from .consistency import CONSISTENCY
from ..validation import load_json
from .codec import CODECS
from .config import ModelConfig
from .network import RelightModel
from .objectives import make_objective
from .pipeline import RelightPipeline
from .tone import ToneCurve

log = logging.getLogger(__name__)

SHIPPED = Path(__file__).resolve().parents[2] / "bundle"  # bundles that ship with relit: bundle/<name>
DEFAULT_BUNDLE = SHIPPED / "default"  # the subject-specific bundle of relit's own synthetic subject
PORTRAIT_BUNDLE = SHIPPED / "portrait"  # the general portrait model: any person under any light (envmap)
DELIGHT_BUNDLE = SHIPPED / "portrait-delight"  # the general delighter: a plate as shot -> its flat-lit
GENERAL_OLAT_BUNDLE = SHIPPED / "portrait-olat"  # the general OLAT model: anyone's flat-lit -> any stage light

BUNDLE_JSON = "relit.json"
FORMAT = "relit-bundle"
VERSION = 1
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# bundles written before relit.json had a recipe: DDPM v-prediction, 30 DDIM steps, no correction
LEGACY_RECIPE = {"objective": {"name": "diffusion"}, "steps": 30, "consistency": "none"}


@dataclass
class BundleInfo:
    id: str                      # bundle identifier (name + short hash)
    config: ModelConfig          # architecture and conditioning
    tone: ToneCurve              # tone curve the codec saw
    exposure_image: float        # exposure of flat-lit inputs before the curve
    exposure_target: float       # exposure of unit-irradiance targets before the curve
    layout: StageLayout | None   # the stage the model was trained on (olat mode)
    stage_irradiance: list | None  # [N][3] W/m² each stage light delivered in the flat-lit training images
    subject: str | None          # subject id for subject-specific bundles, None for general ones
    training: dict               # command, commit, data provenance, steps, seconds
    licence: str                 # terms of any base weights
    sha256: str = ""             # hash of the weights and of relit.json but provenance (bundle_sha256)
    recipe: dict = field(default_factory=lambda: json.loads(json.dumps(LEGACY_RECIPE)))
                                 # objective (its params), default sampler steps, consistency correction
    stage_coverage: list = field(default_factory=lambda: [1.0, 1.0, 1.0])  # [3] the stage's OLATs' sum /
                                 # the flat-lit, per channel, on the training views (1: a complete stage)
    target_lighting: str = "any"  # envmap bundles: what they relight to (TARGET_LIGHTINGS): "any" lighting,
                                 # or "flat": a delighter, the first stage of the two-stage design

    @property
    def steps_in_all(self) -> int:
        """Optimizer steps behind these weights: this run's and, for a run started with --init-from, those of
        the bundle it started from (and of its own starting bundle, along the chain)."""
        return steps_in_all(self.training)

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "version": VERSION, "id": self.id,
            "conditioning": self.config.conditioning,
            "sh_degree": self.config.sh_degree, "beta_encoding": self.config.beta_encoding,
            "token_width": self.config.token_width,
            "model": self.config.to_json(),
            "tone": self.tone.to_json(),
            "exposure": {"image": self.exposure_image, "target": self.exposure_target},
            "stage_layout": self.layout.to_json() if self.layout is not None else None,
            "stage_irradiance": self.stage_irradiance,
            "subject": self.subject,
            "training": self.training,
            "licence": self.licence,
            "recipe": self.recipe,
            "stage_coverage": self.stage_coverage,
            "target_lighting": self.target_lighting,
            "relit_version": __version__,
        }


def steps_in_all(training: dict) -> int:
    """A bundle's ``training`` record's steps, those of the bundle it started from included."""
    parent = training.get("started_from") or {}
    before = parent.get("steps_in_all", parent.get("steps")) or 0
    return int(training.get("steps") or 0) + int(before)


def refuse_pickles(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise RelitIOError(
                f"{path}: a pickled checkpoint; loading it could run arbitrary code, so relit bundles hold "
                "safetensors only. Convert it (load it where you trust it, save with safetensors) and remove it.")


# relit.json fields that change no prediction: provenance, left out of the bundle's hash
PROVENANCE_FIELDS = frozenset({"id", "training", "licence", "relit_version"})


def bundle_sha256(folder: Path, record: dict) -> str:
    """The hash of what a bundle predicts with: its weight files, its parts' configs (network, scheduler,
    codec) and every field of its relit.json ``record`` but provenance (tone, exposures, stage calibration
    and coverage, recipe, ...), so a hand edit of any of them is seen by a resume, the light cache and a
    farm plan."""
    digest = hashlib.sha256()
    parts = [p for p in folder.rglob("*") if p.suffix in (".safetensors", ".json") and p.name != BUNDLE_JSON]
    for path in sorted(parts):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(json.dumps({k: v for k, v in record.items() if k not in PROVENANCE_FIELDS}, sort_keys=True).encode())
    return digest.hexdigest()


def save_bundle(folder: str | Path, pipe: RelightPipeline, info: BundleInfo) -> Path:
    """Write a bundle atomically: into a temporary folder beside ``folder``, then renamed."""
    from safetensors.torch import save_file

    folder = Path(folder)
    if folder.exists():
        raise RelitIOError(f"{folder}: exists; bundles are never overwritten, choose a new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        pipe.model.unet.save_pretrained(tmp / "unet", safe_serialization=True)
        if pipe.scheduler is not None:
            pipe.scheduler.save_pretrained(tmp / "scheduler")
        pipe.codec.save(tmp)
        save_file({"null_light": pipe.model.null_light.detach().cpu().contiguous()}, tmp / "lighting.safetensors")
        record = json.loads(json.dumps(info.to_json()))  # as read_info will read it back
        info.sha256 = bundle_sha256(tmp, record)
        (tmp / BUNDLE_JSON).write_text(json.dumps(record, indent=2) + "\n")
        for path in [tmp, *tmp.rglob("*")]:  # mkdtemp's folder and safetensors' files are private; a bundle is shared
            os.chmod(path, file_mode(directory=path.is_dir()))
        replace_synced(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def shipped_bundle_for(subject: str | None, shipped: Path = SHIPPED, delighted: bool = False) -> tuple[Path, str]:
    """The shipped bundle for a plate of ``subject`` (None: the plate names none) and why, for the log:
    the subject-specific bundle trained on that subject, else the general portrait bundle
    (SynthLight's single pass on the plate as shot); a plate ``delighted`` first (the two-stage
    design, with the shipped general delighter) always gets the general OLAT bundle."""
    if subject and subject != GENERAL_SUBJECT and not delighted:  # a delighter is general: so is its bundle
        for folder in sorted(p for p in shipped.iterdir() if (p / BUNDLE_JSON).exists()):
            if read_info(folder).subject == subject:
                return folder, f"bundle {folder.name}: trained on this plate's subject {subject!r}"
    general = shipped / (GENERAL_OLAT_BUNDLE if delighted else PORTRAIT_BUNDLE).name
    if not (general / BUNDLE_JSON).exists():
        raise ValidationError(f"{general}: the general {'OLAT' if delighted else 'portrait'} bundle is missing from "
                              "this install; reinstall relit or give --bundle")
    if delighted:
        return general, f"bundle {general.name}: the general OLAT model relights the delighted plate (any person, " \
                        "the stage's lights)"
    what = f"subject {subject!r}" if subject else "a plate that names no subject"
    return general, f"bundle {general.name}: no shipped bundle was trained on {what}, so the general portrait " \
                    "model relights it (any person, any light)"


def read_info(folder: str | Path) -> BundleInfo:
    folder = Path(folder)
    path = folder / BUNDLE_JSON
    data = load_json(path, f"a model bundle is a folder with {BUNDLE_JSON}")
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ValidationError(f"{path}: not a relit bundle of version {VERSION}")
    layout = data.get("stage_layout")
    config = ModelConfig.from_json(data["model"])
    if data.get("conditioning", config.conditioning) != config.conditioning:
        raise ValidationError(f"{path}: conditioning {data['conditioning']!r} contradicts model.conditioning "
                              f"{config.conditioning!r}; the bundle is inconsistent: copy it again")
    recipe = {**LEGACY_RECIPE, **(data.get("recipe") or {})}
    if recipe["consistency"] not in CONSISTENCY:
        raise ValidationError(f"{path}: recipe.consistency {recipe['consistency']!r}: use one of {CONSISTENCY}")
    if isinstance(recipe["steps"], bool) or not isinstance(recipe["steps"], int):
        raise ValidationError(f"{path}: recipe.steps {recipe['steps']!r}: must be an integer")
    try:
        objective = make_objective(recipe["objective"])
        objective.check_steps(recipe["steps"], "recipe.steps")
    except ValidationError as exc:
        raise ValidationError(f"{path}: recipe: {exc}") from None
    recipe["objective"] = objective.params()  # one form: {"name": ..., params}
    return BundleInfo(
        id=data["id"], config=config, tone=ToneCurve(**data["tone"]),
        exposure_image=float(data["exposure"]["image"]), exposure_target=float(data["exposure"]["target"]),
        layout=None if layout is None else layout_from_json(layout, source=f"{path}: stage_layout"),
        stage_irradiance=data.get("stage_irradiance"),
        subject=data.get("subject"), training=data.get("training", {}), licence=data.get("licence", ""),
        sha256=bundle_sha256(folder, data), recipe=recipe,
        stage_coverage=[float(c) for c in data.get("stage_coverage", [1.0, 1.0, 1.0])],
        target_lighting=_target_lighting(data.get("target_lighting", "any"), path),
    )


def _target_lighting(value, path: Path) -> str:
    from ..lighting.random_lighting import TARGET_LIGHTINGS

    if value not in TARGET_LIGHTINGS:
        raise ValidationError(f"{path}: target_lighting {value!r}: use one of {sorted(TARGET_LIGHTINGS)}")
    return value


def bundle_problems(folder: Path) -> list[str]:
    """The parts a bundle folder lacks (its weights and configs), read without loading anything."""
    out = [f"{part} missing ({what})" for part, what in (("unet/config.json", "the UNet's config"),
                                                        ("lighting.safetensors", "the lighting weights"))
           if not (folder / part).is_file()]
    if not any((folder / "unet").glob("*.safetensors")):
        out.append("unet/ holds no .safetensors weights")
    for path in sorted(folder.rglob("*.safetensors")):
        if problem := safetensors_problem(path):
            out.append(f"{path.relative_to(folder)} {problem}")
    return out


def safetensors_problem(path: Path) -> str | None:
    """What is wrong with a .safetensors file's layout (truncated, not safetensors), read from its
    header alone: 8 bytes of header length, the JSON header, then the tensors' bytes up to the
    largest end offset the header names."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or 8 + n > size:
            return "is not a safetensors file (or is cut short in its header)"
        try:
            header = json.loads(f.read(n))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, AttributeError):
            return "has a damaged header"
    if 8 + n + end > size:
        return f"is truncated ({size} of {8 + n + end} bytes)"
    return None


def check_device(device: str | torch.device) -> None:
    """A device this torch can use, or a clear error with the fix."""
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValidationError(f"--device {device}: this torch has no usable CUDA (torch.cuda.is_available() is "
                              "False); use --device cpu, or install a CUDA build of torch on a machine with a GPU")


def load_bundle(folder: str | Path, device: str | torch.device = "cpu") -> tuple[RelightPipeline, BundleInfo]:
    """The pipeline and info of a bundle folder (local only, safetensors only)."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.is_dir():
        raise RelitIOError(f"{folder}: not a bundle folder" + (" (it is a file)" if folder.exists() else
                                                               " (not found)")
                           + "; a model bundle is a folder with relit.json, unet/ and lighting.safetensors")
    check_device(device)
    refuse_pickles(folder)
    info = read_info(folder)
    if problems := bundle_problems(folder):
        raise RelitIOError(f"{folder}: {problems[0]}; the bundle is incomplete: copy it again from where it was "
                           "trained")
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", use_safetensors=True, local_files_only=True)
    model = RelightModel(info.config, unet=unet)
    model.null_light.data.copy_(load_file(folder / "lighting.safetensors")["null_light"])
    codec = CODECS[info.config.codec].build(info.config, folder)
    objective = make_objective(info.recipe["objective"], from_scratch=not info.config.base_checkpoint)
    scheduler = objective.scheduler()
    if scheduler is not None:
        if not (folder / "scheduler" / "scheduler_config.json").is_file():
            raise RelitIOError(f"{folder}: scheduler/scheduler_config.json missing; the bundle is incomplete "
                               "(copy it again from where it was trained)")
        scheduler = type(scheduler).from_pretrained(folder / "scheduler", local_files_only=True)
    pipe = RelightPipeline(model.eval(), scheduler, codec, info.tone, info.exposure_image, info.exposure_target,
                           objective)
    return pipe.to(device), info
