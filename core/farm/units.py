"""Work units: a relight job split by camera x frame range x light chunk, for any farm manager.

``relit plan JOB.json --chunk N [--light-chunk M] -o units.json`` writes the units with the exact
``relit run-unit`` command line of each, so OpenCue, Deadline, Flamenco or a shell loop can run
them; Ray runs them too (:mod:`core.farm.ray_runner`). A unit is a pure function of its inputs:
it writes its files atomically into the version folder the plan chose and skips frames whose
files already carry its input hash, so rerunning a crashed job recomputes only what is missing.
When frames are split by light chunk (the ``stage`` HDRI strategy and the OLAT basis: one
inference per stage direction), each chunk writes a float share into ``parts/`` and a merge unit,
which depends on them, sums the shares into the frame's passes.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ValidationError
from ..io.atomic import atomic_write_text, remove_partials_of
from ..io.naming import new_version_dir, versions
from ..io.passes import RelitPasses, read_metadata, read_pass_metadata, write_passes
from ..io.sequence import find_frames, frame_path, is_sequence, parse_frame_range
from ..jobs import AUTO_MATTE, RelightJob
from ..relight.strategies import STAGE, hdri_strategy
from ..validation import load_json

UNITS_VERSION = 1


@dataclass
class WorkUnit:
    index: int
    kind: str                              # "relight" or "merge"
    camera: str | None                     # one of the job's cameras (None: a single-camera job)
    frames: list[int]                      # the frames it makes
    light_chunk: list[int] | None = None   # [start, end) of the stage directions (relight units)
    chunks: list[list[int]] | None = None  # the light chunks it sums (merge units)
    depends_on: list[int] = field(default_factory=list)  # units that must finish first
    command: str = ""                      # the exact command a farm runs


@dataclass
class Plan:
    job: dict                              # the RelightJob JSON
    folders: dict[str, str]                # camera ("" for a single camera) -> version folder
    units: list[WorkUnit]
    version: int = UNITS_VERSION

    def save(self, path: str | Path) -> None:
        path = Path(path).resolve()
        for unit in self.units:
            unit.command = shlex.join(["relit", "run-unit", str(path), "--index", str(unit.index)])
        atomic_write_text(path, json.dumps({"version": self.version, "job": self.job, "folders": self.folders,
                                            "units": [asdict(u) for u in self.units]}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        data = load_json(path, "give the units.json that relit plan wrote")
        if data.get("version") != UNITS_VERSION:
            raise ValidationError(f"{path}: not a relit plan of version {UNITS_VERSION}")
        return cls(data["job"], data["folders"], [WorkUnit(**u) for u in data["units"]])

    def unit_job(self, unit: WorkUnit) -> RelightJob:
        """The single-camera job a relight unit runs."""
        job = RelightJob.from_json(self.job, source="units.json: job")
        if unit.camera is not None:
            job = job.for_camera(unit.camera)
        data = {**job.to_json(), "frames": ",".join(str(f) for f in unit.frames), "light_chunk": unit.light_chunk,
                "folder": self.folders[unit.camera or ""]}
        return RelightJob.from_json(data, source=f"unit {unit.index}")


def _stage_size(job: RelightJob) -> int:
    """How many stage directions a frame's light chunks cover (0: the job has nothing to split)."""
    from ..model.bundle import read_info

    env = job.rig is not None and job.rig.environment is not None
    if not (job.basis or env):
        return 0
    info = read_info(job.bundle)
    if info.config.conditioning != STAGE.conditioning or info.layout is None:
        return 0
    if not (job.basis or hdri_strategy(job.hdri_strategy, info.config.conditioning).light_chunks):
        return 0
    return len(info.layout)


def _inputs_fingerprint(job: RelightJob, frames: list[int]) -> list:
    """What a plan's inputs are on disk: the HDRI's contents, and each plate and matte file's size and
    modification time (a re-rendered plate or an edited HDRI is a new version, never the old one's
    frames replaced in place; hashing every plate would cost a read of the shot at plan time)."""
    from ..relight_job import _file_sha256

    files = [frame_path(job.input, f) if is_sequence(job.input) else Path(job.input) for f in frames]
    if job.matte not in (None, AUTO_MATTE):
        files += [frame_path(job.matte, f) if is_sequence(job.matte) else Path(job.matte) for f in frames]
    stamps = [[str(p), (st := p.stat()).st_size, st.st_mtime_ns] for p in dict.fromkeys(files) if p.exists()]
    rig = job.light_rig()
    env = None if rig is None or rig.environment is None else Path(rig.environment.path)
    hdri = _file_sha256(env) if env is not None and env.is_file() else ""
    return [hdri, stamps]


def _version_folder(job: RelightJob, digest: str) -> Path:
    """The newest version folder when it was planned for the same job, else a new one."""
    existing = versions(job.output)
    if existing:
        record = existing[-1] / "plan.json"
        if record.exists() and json.loads(record.read_text()).get("digest") == digest:
            return existing[-1]
    folder = new_version_dir(job.output)
    atomic_write_text(folder / "plan.json", json.dumps({"digest": digest, "job": job.to_json()}, indent=1) + "\n")
    return folder


def plan_job(job: RelightJob, chunk: int, light_chunk: int | None = None) -> Plan:
    """Split ``job`` into units of ``chunk`` frames (x ``light_chunk`` stage directions)."""
    from ..model.bundle import read_info
    from ..relight_job import checked_delighter, checked_sampling, choose_bundle, delighter_digest

    job.validate()
    job, _ = choose_bundle(job)  # units name the bundle the plan chose (logged)
    if chunk < 1 or (light_chunk is not None and light_chunk < 1):
        raise ValidationError("--chunk and --light-chunk must be >= 1")
    cameras = sorted(job.cameras) if job.cameras else [None]
    n_stage = _stage_size(job) if light_chunk else 0
    if n_stage and (job.consistency or read_info(job.bundle).recipe["consistency"]) == "ratio":
        raise ValidationError(f"{job.bundle}: the bundle corrects a frame's stage predictions together (recipe "
                              "consistency 'ratio'), so they cannot be split into light chunks; plan without "
                              "--light-chunk, or set the job's consistency to none")
    if job.temporal and light_chunk:
        raise ValidationError("temporal blending runs on whole frames: plan a --temporal job without --light-chunk")
    light_chunks = [[s, min(s + light_chunk, n_stage)] for s in range(0, n_stage, light_chunk)] if n_stage else [None]
    info = read_info(job.bundle)
    checked_sampling(job, info)  # refused here, before the plan is written
    sha = [info.sha256, info.recipe]  # a job leaving steps/consistency to the bundle depends on its recipe
    if (delighter := checked_delighter(job, info)) is not None:  # refused here, before the plan is written
        sha.append(delighter_digest(delighter))
    folders, units = {}, []
    for camera in cameras:
        single = job.for_camera(camera) if camera is not None else job
        frames = parse_frame_range(single.frames) if single.frames else sorted(find_frames(single.input))
        if job.temporal and chunk < len(frames):
            raise ValidationError(f"temporal blending carries each frame into the next: units of {chunk} frame(s) "
                                  f"would restart it every {chunk} of the {len(frames)} frames; plan a --temporal job "
                                  f"with --chunk {len(frames)} (one unit per camera), or without --temporal")
        digest = hashlib.sha256(json.dumps([single.to_json(), sha, _inputs_fingerprint(single, frames)],
                                           sort_keys=True).encode()).hexdigest()
        folders[camera or ""] = str(_version_folder(single, digest))
        for start in range(0, len(frames), chunk):
            part = frames[start:start + chunk]
            first = len(units)
            for lc in light_chunks:
                units.append(WorkUnit(len(units), "relight", camera, part, lc))
            if light_chunks != [None]:
                units.append(WorkUnit(len(units), "merge", camera, part, chunks=light_chunks,
                                      depends_on=list(range(first, len(units)))))
    return Plan(job.to_json(), folders, units)


def merge_unit(plan: Plan, unit: WorkUnit) -> list[Path]:
    """Sum a frame range's light-chunk shares into its passes (and union its basis layers)."""
    from ..relight_job import PARTS, output_name

    job = plan.unit_job(WorkUnit(unit.index, "relight", unit.camera, unit.frames, unit.chunks[0]))
    folder = Path(plan.folders[unit.camera or ""])
    written = []
    for frame in unit.frames:
        kinds = ([False] if job.rig is not None else []) + ([True] if job.basis else [])
        for basis in kinds:
            parts = [folder / PARTS / output_name(job.name, frame, basis, c) for c in unit.chunks]
            missing = [str(p) for p in parts if not p.exists()]
            if missing:
                raise ValidationError(f"unit {unit.index}: light-chunk files missing: {missing[:3]}; run the units "
                                      f"it depends on ({unit.depends_on}) first")
            target = folder / output_name(job.name, frame, basis)
            remove_partials_of(target)
            written.append(_merge_files(parts, target, basis))
    return written


def _merge_files(parts: list[Path], target: Path, basis: bool) -> Path:
    from ..io.exr import read_channels, read_info

    metas = [read_metadata(p) for p in parts]
    digest = hashlib.sha256("".join(m.get("input_hash", "") for m in metas).encode()).hexdigest()
    if target.exists() and read_metadata(target).get("input_hash") == digest:
        return target
    layers: dict[str, np.ndarray] = {}
    alpha = None
    for path in parts:
        names = [n for n in read_info(path).layers() if n.startswith("light_")]
        pixels = read_channels(path, ["A"] + [f"{n}.{c}" for n in names for c in "RGB"])
        alpha = pixels[..., 0]
        for i, name in enumerate(names):
            img = pixels[..., 1 + 3 * i: 4 + 3 * i]
            layers[name] = layers[name] + img if name in layers else img.astype(np.float32)
    meta = replace(read_pass_metadata(parts[0]), input_hash=digest)
    if basis:
        meta.basis = [b for m in metas for b in (m.get("basis") or [])]
    # the layer names already carry the light_ prefix the writer adds
    named = {name.removeprefix("light_"): img for name, img in layers.items()}
    return write_passes(target, RelitPasses(named, alpha), meta)


def run_unit(plan: Plan, index: int, pipe_and_info=None, progress=None) -> dict:
    """Run one unit; returns {unit, kind, outputs, skipped frames}."""
    from ..relight_job import run_relight

    if not 0 <= index < len(plan.units):
        raise ValidationError(f"--index {index}: the plan has units 0-{len(plan.units) - 1}")
    unit = plan.units[index]
    if unit.kind == "merge":
        return {"unit": index, "kind": "merge", "outputs": [str(p) for p in merge_unit(plan, unit)], "skipped": []}
    report = run_relight(plan.unit_job(unit), progress, pipe_and_info=pipe_and_info)
    return {"unit": index, "kind": "relight", "outputs": [str(f.path) for f in report.frames],
            "skipped": [f.frame for f in report.frames if f.skipped]}


def run_plan_local(plan: Plan, threads: int = 0, progress=None) -> list[dict]:
    """Every unit in order in this process, the bundle loaded once (the single-process reference a
    Ray run with the same chunking reproduces)."""
    from ..model.bundle import load_bundle

    if threads:
        import torch

        torch.set_num_threads(threads)
    model = load_bundle(plan.job["bundle"], plan.job.get("device", "cpu"))
    results = []
    for unit in plan.units:
        results.append(run_unit(plan, unit.index, pipe_and_info=model))
        if progress is not None:
            progress(len(results), len(plan.units))
    return results
