"""``relit relight``: a RelightJob over a frame or a sequence, streamed frame by frame.

- Every frame's file is written atomically into a version folder ``OUT/vNNN``.
- A rerun resumes the newest version whose every frame file carries the input hash this job
  would give that frame (those frames are skipped): the latest one, or an earlier one when the
  artist goes back to its rig. When none matches (an edited rig, bundle, setting or plate) the
  job renders into a new version, so nothing is ever overwritten.
- Inputs are checked before anything is written: bundle vs strategy, the rig and its HDRI,
  every frame's header, the subject of a subject-specific bundle.
- Each light draws its own initial noise (keyed by its direction and size); it is the same every
  frame (``fixed``) or carried along the plate's optical flow (``flow``, see :mod:`core.temporal.noise`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import importlib.util
import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import RelitIOError, ValidationError
from .io.atomic import atomic_write_text, remove_partials_of, remove_stale_partials
from .io.exr import read_info as read_exr_info
from .io.images import read_matte
from .io.naming import new_version_dir, versions
from .io.naming import light_layer_names
from .io.passes import read_metadata, read_passes, write_passes
from .io.plates import GENERAL_SUBJECT, SUBJECT_ATTRIBUTE, read_plate, unpremultiplied
from .io.sequence import find_frames, frame_path, is_sequence, parse_frame_range
from .jobs import AUTO_BUNDLE, AUTO_DELIGHTER, AUTO_MATTE, RelightJob
from .lighting.hdri import load_environment
from .model.consistency import partial_stage_message
from .relight.cache import CACHE_DIR, LightCache, frame_key
from .relight.delight import check_delighter, delight
from .relight.frame import (NO_FACE_NORMALS, LightingPlan, PreparedPlate, RelightSettings, face_normals_of,
                            light_keys, light_noise, pass_metadata, plan_lighting, prepare_plate, relight_prepared)

log = logging.getLogger(__name__)

JOB_RECORD = "job.json"
FILE_HASH_CHUNK = 1 << 20


@dataclass
class ProgressEvent:
    stage: str        # "frames" (a frame finished or was skipped) or "lights" (light-steps of the frame)
    done: int
    total: int
    frame: int | None = None
    skipped: bool = False


@dataclass
class FrameReport:
    frame: int
    path: Path
    skipped: bool                 # an earlier run wrote it with the same input hash
    evaluations: int = 0
    seconds: float = 0.0


@dataclass
class RunReport:
    folder: Path                  # the version folder written into
    frames: list[FrameReport] = field(default_factory=list)
    inferences: int = 0           # per frame
    warnings: list[str] = field(default_factory=list)
    bundle_choice: str | None = None  # which shipped bundle an "auto" job ran and why (None: the job named it)


def _file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(FILE_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _job_digest(job: RelightJob, bundle_sha256: str, hdri_sha256: str, recipe: dict | None = None) -> str:
    """What every frame of the job depends on besides its own pixels and noise.

    Device, batch size, threads and the output folder change no result (beyond float rounding) and
    are left out. ``recipe``: the bundle's recipe with the job's steps, sampler and consistency
    resolved (a job that leaves them to the bundle depends on it).
    """
    keep = {k: v for k, v in job.to_json().items()
            if k not in ("device", "batch_size", "output", "folder", "threads", "cache_mb")}
    parts = [keep, bundle_sha256, hdri_sha256] + ([recipe] if recipe is not None else [])
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _frame_digest(job_digest: str, prepared: PreparedPlate, noise: np.ndarray | None) -> str:
    h = hashlib.sha256(job_digest.encode())
    h.update(np.ascontiguousarray(prepared.source).tobytes())
    h.update(np.ascontiguousarray(prepared.matte).tobytes())
    h.update(f"{prepared.framing}|{prepared.eps!r}".encode())  # the square the model saw (face or matte framed)
    if prepared.normals is not None:  # what MediaPipe found on it (its version can change them)
        h.update(np.ascontiguousarray(prepared.normals, dtype=np.float32).tobytes())
    if noise is not None:
        h.update(np.ascontiguousarray(noise, dtype=np.float32).tobytes())
    return h.hexdigest()


def _chained(digest: str, previous: str | None, temporal: float) -> str:
    """A blended frame also depends on every frame before it (its history): its hash chains theirs."""
    if not temporal or previous is None:
        return digest
    return hashlib.sha256(f"{digest}|{previous}".encode()).hexdigest()


def output_name(name: str, frame: int, basis: bool = False, light_chunk: list[int] | None = None) -> str:
    """NAME.####.exr / NAME_basis.####.exr; a light chunk's share: NAME.####.lightsSSSS-EEEE.exr."""
    part = "" if light_chunk is None else f".lights{light_chunk[0]:04d}-{light_chunk[1]:04d}"
    return f"{name}{'_basis' if basis else ''}.{frame:04d}{part}.exr"


FACE_SAMPLES = 5  # frames of a shot searched for the face a portrait bundle frames it by
FACE_DRIFT = 0.5  # face widths a sampled face's centre may lie from the shot's median face before a warning


class FrameSource:
    """The job's frames, read one at a time: plate, matte, framing and initial noise."""

    def __init__(self, job: RelightJob, info, latent_shape: tuple[int, int, int], keys: list[int],
                 normals: bool = False):  # each plate's face normals too (a model that takes them)
        self.job, self.info, self.latent_shape, self.keys = job, info, latent_shape, keys
        self.normals = normals
        # each frame's face landmarks ([468, 3] plate pixels; None: no face), found once for every pass
        self._landmarks: dict[int, np.ndarray | None] = {}
        self.faceless: list[int] = []  # frames on which MediaPipe found no face for the normals
        self._first_noise: np.ndarray | None = None  # [L, C, h, w] the first frame's noise, drawn once
        self._opaque_warned = False  # the opaque-alpha warning is given once per job
        found = find_frames(job.input)
        if job.frames is not None:
            wanted = parse_frame_range(job.frames)
            missing = [f for f in wanted if f not in found]
            if missing and not is_sequence(job.input):
                raise ValidationError(f"--frames {job.frames}: {job.input} is a single file (frame "
                                      f"{next(iter(found))}), not a sequence pattern (name.####.exr)")
            if missing:
                raise RelitIOError(f"{job.input}: frame(s) {missing[:10]} not found; render them or narrow "
                                   "--frames")
            found = {f: found[f] for f in wanted}
        self.frames = found
        self.mattes: dict[int, Path] | None = None  # matte files; None: the plate's alpha or the automatic matte
        if job.matte not in (None, AUTO_MATTE):
            if is_sequence(job.matte):
                self.mattes = {f: frame_path(job.matte, f) for f in found}
                absent = [str(p) for p in self.mattes.values() if not p.exists()]
                if absent:
                    raise RelitIOError(f"matte file(s) not found: {absent[:3]}; give --matte a pattern that "
                                       "covers every frame")
            else:
                self.mattes = {f: Path(job.matte) for f in found}

    def check_headers(self) -> list[str]:
        """Read every frame's header (an unreadable file fails here, before anything is written);
        returns warnings. A subject-specific bundle on another subject's plate is an error unless
        the job allows it; on a plate of unknown subject it is a warning."""
        warnings: list[str] = []
        bundle_subject = None if self.info.subject == GENERAL_SUBJECT else self.info.subject  # relights anyone
        for frame, path in self.frames.items():
            header = read_exr_info(path).parts[0]
            if self.mattes is not None:
                read_exr_info(self.mattes[frame])
            subject = header.attributes.get(SUBJECT_ATTRIBUTE) or self.job.subject
            if bundle_subject and subject and subject != bundle_subject:
                message = (f"{path}: the plate is of subject {subject!r} but bundle {self.info.id} was trained "
                           f"on subject {bundle_subject!r} only; its results on another face are unreliable")
                if not self.job.allow_other_subject:
                    raise ValidationError(message + ". Use a bundle for this subject, or pass "
                                                    "--allow-other-subject to run it anyway")
                if message not in warnings:
                    warnings.append(message)
            elif bundle_subject and not subject:
                message = (f"{path}: the plate carries no subject tag (relit/subject) and bundle {self.info.id} was "
                           f"trained on subject {bundle_subject!r} only; if this is anyone else, relight with the "
                           "portrait bundle (--bundle auto picks it for an untagged plate), or tag the plate with "
                           "--subject")
                if message not in warnings:
                    warnings.append(message)
        return warnings

    def sequence_face(self) -> tuple[int, int, int, int] | None:
        """The face box a general portrait bundle frames the whole shot by (its training people were
        framed by their faces): the median of the largest on-subject face over up to FACE_SAMPLES
        frames spread over the input's whole sequence (every farm unit finds the same one; one box for
        the shot, so the square does not jitter frame to frame). None, with a warning, for a
        subject-specific bundle (matte framing, as its stage trained it), without MediaPipe, or with no
        face found."""
        if self.info.subject != GENERAL_SUBJECT:
            return None
        return self.shot_face(framing=True)

    def shot_face(self, framing: bool = False) -> tuple[int, int, int, int] | None:
        """The shot's face box (:meth:`sequence_face`), found once, whatever the bundle: it also picks
        the person of the automatic matte on a frame where the detector finds no face. ``framing``:
        found to frame the shot (the warnings then say how it is framed instead)."""
        if not hasattr(self, "_shot_face"):
            self._shot_face = self._find_shot_face(framing)
        return self._shot_face

    def _find_shot_face(self, framing: bool) -> tuple[int, int, int, int] | None:
        from .portrait.matte import plate_face

        if importlib.util.find_spec("mediapipe") is None:  # a node without the 'portrait' extra
            if not framing:
                return None
            log.warning("%s: framed by the matte: MediaPipe (pip install 'relit[portrait]') finds the face the "
                        "portrait bundle frames plates by", self.job.input)
            return None
        everything = sorted(find_frames(self.job.input).items())
        picks = np.unique(np.linspace(0, len(everything) - 1, min(FACE_SAMPLES, len(everything))).round().astype(int))
        boxes = []
        for i in picks:
            frame, path = everything[i]
            plate = read_plate(path, self.job.colour_space, self.job.working_space)
            # the face on the subject: the matte file's where one is given, else the plate's alpha
            matte = None
            if self.mattes is not None:
                matte = frame_path(self.job.matte, frame) if is_sequence(self.job.matte) else Path(self.job.matte)
            on_subject = (read_matte(matte) if matte is not None and matte.exists()
                          else plate.alpha if plate.has_alpha else None)
            box = plate_face(plate.rgb, self.job.working_space, on_subject=on_subject)
            if box is not None:
                boxes.append(box)
        if not boxes:
            if framing:
                log.warning("%s: no face found on %d sampled frame(s); framed by the matte instead of the face the "
                            "portrait bundle was trained on", self.job.input, len(picks))
            return None
        found = np.asarray(boxes, np.float64)  # [n, 4] x0, y0, x1, y1
        x0, y0, x1, y1 = np.median(found, axis=0)
        # one square frames the whole shot: say so where the face moves across it
        centres, width = (found[:, :2] + found[:, 2:]) / 2, max(x1 - x0, 1.0)
        if framing and (moved := float(np.abs(centres - [(x0 + x1) / 2, (y0 + y1) / 2]).max() / width)) > FACE_DRIFT:
            log.warning("%s: the face moves by up to %.1f face widths over the shot, and one square (the median "
                        "face) frames every frame; where the face leaves it, split the shot into plate sequences of "
                        "their own", self.job.input, moved)
        return int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))

    def __iter__(self) -> Iterator[tuple[int, Path, PreparedPlate, np.ndarray]]:
        """(frame, plate path, prepared plate, initial noise per light [L, C, h, w])."""
        from .temporal.noise import latent_flow, warp_noise

        job, res = self.job, self.info.config.resolution
        if self._first_noise is None:  # the same for every pass over the frames (resume check, then the run)
            self._first_noise = light_noise(self.keys, job.seed, self.latent_shape)
        noise, previous = self._first_noise, None
        for frame, path in self.frames.items():
            plate = read_plate(path, job.colour_space, job.working_space)
            separate = self.mattes is not None or job.matte == AUTO_MATTE or not plate.has_alpha
            if separate:  # un-premultiplied: the separate matte is applied to it
                plate = unpremultiplied(plate)
            if self.mattes is None and separate:
                from .portrait.matte import auto_matte

                matte, premultiply = auto_matte(plate.rgb, str(path), job.working_space,
                                                shot_face=self.shot_face), True
            elif self.mattes is None:
                matte, premultiply = plate.alpha, False
                if not self._opaque_warned and self.info.subject == GENERAL_SUBJECT and float(matte.min()) >= 0.99:
                    self._opaque_warned = True
                    log.warning("%s: the plate's alpha is opaque everywhere, so the whole frame is relit as the "
                                "subject; give --matte auto (or a matte file) to relight the person alone", path)
            else:
                matte, premultiply = read_matte(self.mattes[frame]), True
                if matte.shape != plate.alpha.shape:
                    raise ValidationError(f"{self.mattes[frame]}: the matte is {matte.shape[1]}x{matte.shape[0]}, "
                                          f"the plate {path.name} is {plate.alpha.shape[1]}x{plate.alpha.shape[0]}")
            prepared = prepare_plate(plate.rgb, matte, res, premultiply, job.margin, str(path),
                                     self.sequence_face(), space=job.working_space)
            if self.normals:
                if frame not in self._landmarks:
                    from .portrait.face_geometry import plate_landmarks

                    self._landmarks[frame] = plate_landmarks(prepared.source, prepared.framing, job.working_space)
                    if self._landmarks[frame] is None:
                        self.faceless.append(frame)
                prepared = replace(prepared, normals=face_normals_of(self._landmarks[frame], prepared.framing))
            if job.noise == "flow" and previous is not None:
                factor = res // self.latent_shape[1]
                flow, valid = latent_flow(previous, prepared.model_input, factor)
                noise = np.stack([warp_noise(n, flow, valid, np.random.default_rng([job.seed, key, frame]))
                                  for n, key in zip(noise, self.keys)]) if len(noise) else noise
            previous = prepared.model_input
            yield frame, path, prepared, noise


PARTS = "parts"  # subfolder of a version folder holding farm units' light-chunk shares


def output_path(job: RelightJob, folder: Path, frame: int, basis: bool = False) -> Path:
    return (folder if job.light_chunk is None else folder / PARTS) / output_name(job.name, frame, basis,
                                                                                 job.light_chunk)


def _outputs(job: RelightJob, folder: Path, frame: int) -> list[Path]:
    """The files a job writes for one frame: the relit passes (when it has a rig), the basis (when asked)."""
    return ([output_path(job, folder, frame)] if job.rig is not None else []) + \
           ([output_path(job, folder, frame, True)] if job.basis else [])


def _matching(job: RelightJob, source: FrameSource, job_digest: str, folder: Path,
              frames: set[int]) -> tuple[set[int], set[int]]:
    """(done, foreign) among ``frames``: done, those whose every output in ``folder`` exists and carries
    this job's input hash; foreign, those with an output made from other inputs. A frame with some
    outputs missing and the rest this job's (a run killed between a frame's basis and its passes) is
    neither: it is made again in the same folder."""
    done, foreign, previous = set(), set(), None
    if not frames:
        return done, foreign
    for frame, _, prepared, noise in source:
        digest = previous = _chained(_frame_digest(job_digest, prepared, noise), previous, job.temporal)
        if frame not in frames:
            continue
        present = [p for p in _outputs(job, folder, frame) if p.exists()]
        if any(read_metadata(p).get("input_hash") != digest for p in present):
            log.info("%s: frame %d was made from other inputs", folder, frame)
            foreign.add(frame)
        elif len(present) == len(_outputs(job, folder, frame)):
            done.add(frame)
        else:
            log.info("%s: frame %d is incomplete (a killed run); it is made again", folder, frame)
    return done, foreign


def _recorded_digest(folder: Path) -> str | None:
    """The job digest a version folder's record holds (None: no readable record)."""
    try:
        return json.loads((folder / JOB_RECORD).read_text()).get("digest")
    except (OSError, ValueError, AttributeError):
        return None


def _choose_folder(job: RelightJob, source: FrameSource, job_digest: str) -> tuple[Path | None, set[int]]:
    """The version folder to resume (and the frames it already holds), or None for a new one: the
    newest whose every frame file for this job carries the hash this job gives it. Going back to an
    earlier rig reuses that rig's version; a version is read frame by frame only when its job record
    has this job's digest, or (the newest) has no readable record."""
    for age, folder in enumerate(reversed(versions(job.output))):
        recorded = _recorded_digest(folder)
        same = recorded == job_digest
        if not same and (age or recorded is not None):
            continue  # a frame's hash chains its job's digest: another job's frames never match this one's
        held = {f for f in source.frames if any(p.exists() for p in _outputs(job, folder, f))}
        if not held:
            if same:
                return folder, set()
            continue
        done, foreign = _matching(job, source, job_digest, folder, held)
        if not foreign:
            return folder, done
    return None, set()


def plate_subject(job: RelightJob) -> str | None:
    """The subject the job's plate names in its first frame's header, else the job's ``subject``."""
    pattern = job.input if job.cameras is None else job.input.replace("{camera}", next(iter(job.cameras)))
    first = next(iter(find_frames(pattern).values()))
    return read_exr_info(first).parts[0].attributes.get(SUBJECT_ATTRIBUTE) or job.subject


def choose_bundle(job: RelightJob) -> tuple[RelightJob, str | None]:
    """The job with an ``auto`` bundle replaced by the shipped bundle for its plate's subject (a
    subject-specific bundle trained on it, else the general portrait bundle, or for a job that
    delights its plate the general OLAT bundle), and why (logged);
    a job that names its bundle is returned as it is, with None."""
    from .model.bundle import shipped_bundle_for

    if job.bundle != AUTO_BUNDLE:
        return job, None
    folder, why = shipped_bundle_for(plate_subject(job), delighted=job.delight is not None)
    log.info("%s: %s", job.input, why)
    return replace(job, bundle=str(folder)), why


def delighter_folder(delight: str) -> Path:
    """The delighter bundle folder a job names (``auto``: the shipped one)."""
    from .model.bundle import DELIGHT_BUNDLE

    return DELIGHT_BUNDLE if delight == AUTO_DELIGHTER else Path(delight)


def delighter_digest(info) -> dict:
    """What a delighter adds to every frame's inputs (digests, cache keys, a farm plan's hash): its
    weights, its recipe and its config (which, for a patch bundle, decides its tiles)."""
    return {"sha256": info.sha256, "recipe": info.recipe, "config": info.config.to_json()}


def checked_delighter(job: RelightJob, info):
    """The BundleInfo of the delighter ``job`` names, checked against its bundle's ``info``; None
    when the job does not delight. Read before anything is written (a relight, a farm plan)."""
    from .model.bundle import read_info

    if job.delight is None:
        return None
    folder = delighter_folder(job.delight)
    delighter = read_info(folder)
    check_delighter(delighter, info, str(folder))
    return delighter


def checked_sampling(job: RelightJob, info) -> tuple[int, str]:
    """The sampler steps and sampler ``job`` runs the bundle ``info`` (BundleInfo) with: its recipe's
    where the job leaves them, else the job's, checked against the bundle's objective (0 steps is a
    refine bundle's mean pass alone). Called before anything is written (a relight, a farm plan)."""
    from .model.objectives import make_objective

    objective = make_objective(info.recipe["objective"])
    steps = int(info.recipe["steps"]) if job.steps is None else objective.check_steps(job.steps,
                                                                                       f"steps (bundle {info.id})")
    return steps, objective.check_sampler(job.sampler)


def run_relight(job: RelightJob, progress: Callable[[ProgressEvent], None] | None = None,
                pipe_and_info=None) -> RunReport:
    """Run a relight job; ``progress`` receives events (and may raise to cancel).

    ``pipe_and_info``: an already loaded ``(pipeline, BundleInfo)`` (a worker that keeps it).
    """
    from .model.bundle import load_bundle, read_info
    from .model.objectives import make_objective

    job.validate()
    job, choice = choose_bundle(job)
    info = read_info(job.bundle) if pipe_and_info is None else pipe_and_info[1]
    rig = job.light_rig()
    environment, hdri_sha = None, ""
    if rig is not None and rig.environment is not None:
        environment = load_environment(rig.environment.path)
        hdri_sha = _file_sha256(rig.environment.path)
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    consistency = job.consistency or info.recipe["consistency"]
    objective = make_objective(info.recipe["objective"])
    steps, sampler = checked_sampling(job, info)  # checked before anything is written
    plan: LightingPlan = plan_lighting(info, rig, job.hdri_strategy, job.clusters, job.missing, job.basis,
                                       environment, job.camera_c2w,
                                       None if job.light_chunk is None else tuple(job.light_chunk), consistency)
    delighter = None  # (its pipeline, its BundleInfo) when the plate is made flat-lit first
    checked_delighter(job, info)
    pipe, info = pipe_and_info if pipe_and_info is not None else load_bundle(job.bundle, job.device)
    if job.delight is not None:
        delighter = load_bundle(delighter_folder(job.delight), job.device)
    source = FrameSource(job, info, pipe.latent_shape(), light_keys(plan, job.samples),
                         normals=info.config.normals or (delighter is not None and delighter[1].config.normals))
    report = RunReport(folder=Path(job.output), inferences=plan.inferences, warnings=source.check_headers(),
                       bundle_choice=choice)
    if job.delight is None and info.subject == GENERAL_SUBJECT and not info.config.conditioning_mode.environment:
        report.warnings.append(f"bundle {info.id} is a general OLAT model: it takes flat-lit plates; a plate shot "
                               "under any other light should be delighted first (--delight auto)")
    if plan.correction is not None and (partial := partial_stage_message(info.stage_coverage, f"bundle {info.id}")):
        report.warnings.append(partial)
    if job.samples > 1 and (steps == 0 or not objective.stochastic):
        report.warnings.append(f"samples {job.samples}: bundle {info.id} at {steps} sampler steps is deterministic, "
                               "so every sample is the same prediction; samples 1 writes the same passes for "
                               f"1/{job.samples} of the UNet evaluations")
    for w in report.warnings:
        log.warning("%s", w)
    # a patch bundle's tiles decide what its weights predict (its config is not in the weights' hash)
    tiling = {"tiles": list(pipe.tiles())} if info.config.tiled else {}
    delighting = {} if delighter is None else {"delighter": delighter_digest(delighter[1])}
    job_digest = _job_digest(job, info.sha256, hdri_sha, {**info.recipe, "steps": steps, "sampler": sampler,
                                                          "consistency": consistency, **tiling, **delighting})
    fresh = False  # a version folder this run made (removed again if the run fails before any frame)
    made_root = not Path(job.output).exists()  # likewise the output folder itself
    if job.folder is not None:  # a farm unit: the plan chose the version folder, other units share it
        folder = Path(job.folder)
        folder.mkdir(parents=True, exist_ok=True)
        done = _matching(job, source, job_digest, folder, set(source.frames))[0]
    else:
        folder, done = _choose_folder(job, source, job_digest)
        if folder is None:
            folder, fresh = new_version_dir(job.output), True
        else:
            removed = remove_stale_partials(folder)
            if removed:
                log.info("%s: removed %d partial file(s) a killed run left", folder, removed)
    report.folder = folder
    applied = "ratio" if plan.correction is not None else "none"  # what the headers say was done
    settings = RelightSettings(steps, job.guidance_image, job.guidance_light, job.seed, sampler,
                               job.batch_size, job.samples, applied)
    light_steps = plan.inferences * job.samples * objective.evaluations(steps)
    cache = LightCache(Path(job.output) / CACHE_DIR, job.cache_mb << 20) if job.cache_mb else None
    # what every cached prediction of this job depends on besides its frame's pixels, light and noise
    cache_parts = {"bundle": info.sha256, "recipe": {**info.recipe, "steps": steps, "sampler": sampler, **tiling},
                   "guidance": [job.guidance_image, job.guidance_light], "seed": job.seed, "samples": job.samples,
                   "device": job.device, **delighting}
    stamp = None if delighter is None else {"id": delighter[1].id, "sha256": delighter[1].sha256}  # headers
    chain, history = None, None  # the previous frame's digest; its (plate, relit layers) for blending
    try:
        if job.folder is None:  # the version's record (a farm's plan writes its own); a failed write undoes the folder
            atomic_write_text(folder / JOB_RECORD, json.dumps({"job": job.to_json(), "digest": job_digest,
                                                               "bundle_sha256": info.sha256, "hdri_sha256": hdri_sha},
                                                              indent=2, sort_keys=True) + "\n")
        total = len(source.frames)
        for n, (frame, path, prepared, noise) in enumerate(source, start=1):
            out = output_path(job, folder, frame, basis=rig is None)
            digest = chain = _chained(_frame_digest(job_digest, prepared, noise), chain, job.temporal)
            if frame in done:
                report.frames.append(FrameReport(frame, out, True))
                _emit(progress, ProgressEvent("frames", n, total, frame, skipped=True))
                if job.temporal and rig is not None:
                    history = (prepared.source, out)  # read only if the next frame is blended with it
                continue
            start = time.perf_counter()
            for target in _outputs(job, folder, frame):  # a killed earlier attempt at this frame
                remove_partials_of(target)
            counter = [0]

            def on_batch(lights: int) -> None:
                counter[0] += lights
                _emit(progress, ProgressEvent("lights", counter[0], light_steps, frame))

            spent = 0  # the delighter's UNet evaluations
            if delighter is not None:
                seen, spent = delight(delighter[0], prepared, job.seed, int(delighter[1].recipe["steps"]))
                prepared = replace(prepared, seen=seen)
            key = frame_key(cache_parts, prepared.model_input, prepared.normals) if cache is not None else ""
            result = relight_prepared(pipe, plan, prepared, settings, noise, on_batch=on_batch, cache=cache,
                                      frame_key=key)
            if counter[0] < light_steps:  # lights the cache held cost no step: the frame's lights are done
                _emit(progress, ProgressEvent("lights", light_steps, light_steps, frame))
            if job.temporal and result.passes is not None:
                if history is not None:
                    result.passes.layers = _blend_layers(result.passes.layers, history, prepared.source, job.temporal)
                layer_of = light_layer_names(list(result.passes.layers))
                # as written (half): a resumed run carries exactly what an uninterrupted one carries
                history = (prepared.source, {layer_of[k]: v.astype(np.float16).astype(np.float32)
                                             for k, v in result.passes.layers.items()})
            colour = job.working_space
            precision = "half" if job.light_chunk is None else "float"  # a chunk's share is summed later
            if result.basis is not None:
                write_passes(output_path(job, folder, frame, True), result.basis,
                             replace(pass_metadata(rig, info, settings, digest, colour, plan, basis=True),
                                     noise=job.noise, delighter=stamp), precision)  # (the basis is not blended)
            if result.passes is not None:
                meta = replace(pass_metadata(rig, info, settings, digest, colour), noise=job.noise,
                               temporal=job.temporal, delighter=stamp)
                write_passes(out, result.passes, meta, precision)
            report.frames.append(FrameReport(frame, out, False, result.evaluations + spent,
                                             time.perf_counter() - start))
            _emit(progress, ProgressEvent("frames", n, total, frame))
    except BaseException:
        if fresh and not any(folder.glob("*.exr")):  # nothing was written: leave no empty version behind
            shutil.rmtree(folder, ignore_errors=True)
            if made_root:
                with contextlib.suppress(OSError):  # only if empty: another run may have written there since
                    Path(job.output).rmdir()
        raise
    if source.faceless:
        frames = sorted(source.faceless)
        report.warnings.append(f"{job.input}: frame(s) {frames[:10]}{' ...' if len(frames) > 10 else ''}: "
                               f"{NO_FACE_NORMALS}")
        log.warning("%s", report.warnings[-1])
    return report


def _blend_layers(layers: dict[str, np.ndarray],  # light (or group) name -> [H, W, 3] this frame as relit
                  history: tuple[np.ndarray, dict[str, np.ndarray] | Path],  # previous plate, its layers by
                                                                             # layer name (or its pass file)
                  plate: np.ndarray, weight: float) -> dict[str, np.ndarray]:
    """Every light layer blended with the previous frame's along the plates' flow (one flow and one
    check for all layers, so the blended layers still sum to the blended beauty)."""
    from .temporal.blend import blend_frame

    before, previous = history
    if isinstance(previous, Path):  # a frame an earlier run wrote: its layers as written
        previous = read_passes(previous)[0]
    names = list(layers)
    layer_of = light_layer_names(names)
    if sorted(previous) != sorted(layer_of.values()):
        raise ValidationError(f"temporal blending: the previous frame has layers {sorted(previous)}, this one "
                              f"{sorted(layer_of.values())}")
    stacked = blend_frame(np.concatenate([layers[k] for k in names], -1),
                          np.concatenate([previous[layer_of[k]] for k in names], -1), before, plate, weight)
    return {k: stacked[..., 3 * i: 3 * i + 3] for i, k in enumerate(names)}


def _emit(progress, event: ProgressEvent) -> None:
    if progress is not None:
        progress(event)
