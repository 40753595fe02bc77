"""``relit synth``: render a synthetic subject on the virtual light stage into a capture set.

Resumable: every image is written atomically, so an interrupted run continues
where it stopped and never re-renders a finished image.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .._version import __version__
from ..data.capture import IDENTITIES, CaptureSet, write_landmarks, write_olats
from ..data.manifest import MANIFEST, CaptureManifest, Frame, HdriRender, load_manifest
from ..errors import RelitError
from ..io.atomic import atomic_write_text, remove_partials_of, remove_stale_partials
from ..io.exr import write_exr
from ..io.plates import SUBJECT_ATTRIBUTE
from ..lighting.layout import load_layout
from ..lighting.rig import Environment
from .cameras import arc_cameras, portrait_cameras
from .subject import MOTIONS, Subject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubjectKind:
    """One kind of synthetic subject: how a seed becomes geometry, and the cameras that frame it."""

    make: Callable[[int], Subject]                      # seed -> subject (may import bpy)
    cameras: Callable[[int, int, int], list]            # (views, resolution, seed) -> cameras
    seeded_cameras: bool = False                        # the seed places the cameras (--camera-seed applies)


def _face(seed: int) -> Subject:
    from .subject import face_subject

    return face_subject(seed)


def _suzanne(seed: int) -> Subject:
    from .scene import suzanne_subject

    return suzanne_subject(seed)


def _person(seed: int) -> Subject:
    from .person import person_subject

    return person_subject(seed)


SUBJECTS: dict[str, SubjectKind] = {
    "face": SubjectKind(_face, lambda views, res, seed: arc_cameras(views, res)),         # the face shell alone
    "suzanne": SubjectKind(_suzanne, lambda views, res, seed: arc_cameras(views, res)),   # a non-face subject
    "person": SubjectKind(_person, portrait_cameras, seeded_cameras=True),  # head, hair, ears, neck, shoulders, clothes
}


@dataclass
class SynthConfig:
    subject: str = "face"        # a key of SUBJECTS: "face" (MediaPipe head), "suzanne" or "person"
    seed: int = 0                # subject variation (shape, skin, eyes) and expression track
    views: int = 8               # cameras on a 120-degree arc in front of the subject
    frames: int = 4              # frames of animated expression
    motion: str = "expressions"  # how the subject moves over the frames: a key of subject.MOTIONS
    first_frame: int = 1         # number of the first frame
    layout: str = "default"      # stage layout name or JSON path
    resolution: int = 128        # square image size
    samples: int = 64            # Cycles samples per pixel for every render
    batch: int = 8               # stage lights per OLAT render
    hdris: list[str] = field(default_factory=list)  # bundled HDRI names or paths for ground truth
    rotations: list[list[float]] = field(default_factory=lambda: [[0.0, 0.0, 0.0]])  # Euler XYZ rad, per HDRI render
    vector: bool = True          # write true motion (Cycles' Vector pass) with each flat-lit image:
                                 # layers motion_prev / motion_next, pixel offsets, +x right, +y down
    olats: bool = True           # render the OLATs; off: flat-lit only (multi-view sequences for 3DGS)
    camera_seed: int | None = None  # places a person's cameras (None: the subject's seed); another seed films
                                 # the same person from new viewpoints, a set to train beside the first
    first_view: int = 0          # number of the first camera's name (camNN): sets of one subject whose numbers
                                 # do not overlap train together, each camera held out by its own name


def _hdri_path(name: str) -> Path:
    from ..lighting.hdri import resolve_hdri

    return resolve_hdri(name).resolve()


def _hdri_renders(cfg: SynthConfig) -> list[HdriRender]:
    out = []
    for name in cfg.hdris:
        path = _hdri_path(name)
        for rot in cfg.rotations:
            deg = "_".join(f"{round(math.degrees(a)):03d}" for a in rot).replace("-", "m")
            label = f"{path.stem}_r{deg}"
            out.append(HdriRender(label, Environment(str(path), tuple(float(a) for a in rot), 1.0),
                                  f"hdri/{label}/{{camera}}/hdri.{{frame:04d}}.exr"))
    return out


def plan_manifest(cfg: SynthConfig, subject_name: str, expressions: list[str],
                  landmarks: bool = False,  # the subject has a face mesh: record each view's landmarks
                  ) -> CaptureManifest:
    layout = load_layout(cfg.layout)
    frames = [Frame(cfg.first_frame + i, e) for i, e in enumerate(expressions)]
    # a unit-radiance white environment: each light delivers its cell's solid angle in W/m²
    irradiance = np.repeat(layout.solid_angles[:, None], 3, axis=1)
    kind = SUBJECTS[cfg.subject]
    placed = kind.cameras(cfg.views, cfg.resolution, cfg.seed if cfg.camera_seed is None else cfg.camera_seed)
    cameras = [replace(cam, name=f"cam{cfg.first_view + i:02d}") for i, cam in enumerate(placed)]
    return CaptureManifest(
        subject=subject_name, cameras=cameras,
        layout=layout,
        irradiance=irradiance, frames=frames,
        flat_images="flat/{camera}/flat.{frame:04d}.exr",
        olat_images="olat/{camera}/olat.{frame:04d}.exr" if cfg.olats else "",
        hdri=_hdri_renders(cfg),
        landmark_images="landmarks/{camera}/landmarks.{frame:04d}.json" if landmarks else "",
        extra={"generator": "relit synth", "relit_version": __version__, "config": asdict(cfg),
               "stage_lights": "Cycles suns sized to their cells; flat-lit = every light on = a uniform "
                               "white environment of unit radiance"},
    )


def _track(cfg: SynthConfig) -> list[tuple[int, tuple[dict[str, float], str]]]:
    """(frame number, (expression weights, label)) of every frame of the set."""
    numbers = [cfg.first_frame + i for i in range(cfg.frames)]
    return list(zip(numbers, MOTIONS[cfg.motion](numbers, cfg.seed)))


def _stage_scene(cfg: SynthConfig, subject: Subject, manifest: CaptureManifest, threads: int):
    """The Blender scene that renders the set's images (bpy)."""
    from .scene import RenderSettings, StageScene

    return StageScene(subject, {f: w for f, (w, _) in _track(cfg)}, manifest.layout, manifest.irradiance,
                      RenderSettings(cfg.resolution, cfg.samples, cfg.batch, threads=threads, seed=cfg.seed))


def _clear_partials(target: Path, shard: tuple[int, int] | None) -> None:
    """A shard's own leftovers: what a killed writer of ``target`` left (the unsharded run cleared
    the whole folder when it started)."""
    if shard is not None and (stale := remove_partials_of(target)):
        log.info("%s: removed %d partial file(s) an interrupted run left", target, stale)


def synthesize(cfg: SynthConfig, out: str | Path, progress: bool = True, threads: int = 2,
               shard: tuple[int, int] | None = None) -> CaptureSet:
    """Render (or finish rendering) the capture set ``cfg`` describes into ``out`` with ``threads``
    Cycles threads (not part of the set's identity: any count renders the same images' statistics).

    ``shard=(k, n)`` renders only every n-th view-frame from the k-th, so n processes (one per core
    or farm node) fill one set together; the set is whole once all n have finished. A shard clears
    only the partial files of the images it is about to write, never another writer's."""
    from tqdm import tqdm

    from .scene import vector_to_flow

    if cfg.subject not in SUBJECTS:
        raise RelitError(f"--subject {cfg.subject!r}: use one of {sorted(SUBJECTS)}")
    if cfg.motion not in MOTIONS:
        raise RelitError(f"--motion {cfg.motion!r}: use one of {sorted(MOTIONS)}")
    if cfg.camera_seed is not None and not SUBJECTS[cfg.subject].seeded_cameras:
        placed = sorted(name for name, kind in SUBJECTS.items() if kind.seeded_cameras)
        raise RelitError(f"--camera-seed: the {cfg.subject} subject is filmed from a fixed arc of cameras; "
                         f"new viewpoints by seed are for --subject {' or '.join(placed)}")
    if cfg.first_view < 0:
        raise RelitError(f"--first-view {cfg.first_view}: camera numbers start at 0")
    if cfg.first_view > 0 and cfg.camera_seed in (None, cfg.seed):
        raise RelitError(f"--first-view {cfg.first_view} names new cameras, but without a --camera-seed other than "
                         f"--seed ({cfg.seed}) they would film the first set's viewpoints again; give --camera-seed")
    out = Path(out)
    subject = SUBJECTS[cfg.subject].make(cfg.seed)
    manifest = plan_manifest(cfg, subject.name, [label for _, (_, label) in _track(cfg)],
                             "landmarks" in subject.regions)
    if (out / MANIFEST).exists():
        existing = load_manifest(out)
        # settings added since the set was made count at their defaults
        if {**asdict(SynthConfig()), **existing.extra.get("config", {})} != manifest.extra["config"]:
            raise RelitError(f"{out / MANIFEST}: this folder holds a capture set made with other settings; "
                             "choose another output folder or delete it")
    manifest.save(out)
    if shard is None and (stale := remove_stale_partials(out)):
        log.info("%s: removed %d partial file(s) an interrupted run left", out, stale)
    cs = CaptureSet(out)
    todo = [(cam, f) for f in manifest.frames for cam in manifest.cameras]
    if shard is not None:
        k, n = shard
        todo = todo[k::n]
    _write_landmarks(cfg, subject, cs, todo)
    images = [cs.path(t, cam.name, f.frame) for cam, f in todo
              for t in [manifest.flat_images, manifest.olat_images] + [h.images for h in manifest.hdri] if t]
    if all(p.exists() for p in images):  # nothing to render (a finished set; its landmarks written above)
        return cs
    n_batches = math.ceil(len(manifest.layout) / cfg.batch)
    n_batches = n_batches if cfg.olats else 0
    per_view = 1 + n_batches + len(manifest.hdri)
    scene = _stage_scene(cfg, subject, manifest, threads)
    bar = tqdm(total=len(todo) * per_view, desc=f"synth {subject.name}", unit="render", disable=not progress)
    start, rendered = time.perf_counter(), 0
    try:
        for cam, f in todo:
            scene.set_view(cam, f.frame)
            flat = cs.path(manifest.flat_images, cam.name, f.frame)
            if not flat.exists():
                _clear_partials(flat, shard)
                rgb, alpha, vector = scene.render_flat(with_vector=cfg.vector)
                px, names = [rgb, alpha[..., None]], ["R", "G", "B", "A"]
                if vector is not None:
                    px += list(vector_to_flow(vector))
                    names += ["motion_prev.X", "motion_prev.Y", "motion_next.X", "motion_next.Y"]
                write_exr(flat, np.concatenate(px, -1), names, ["half"] * 4 + ["float"] * (len(names) - 4),
                          {SUBJECT_ATTRIBUTE: manifest.subject})
                rendered += 1
            bar.update(1)
            olat = cs.path(manifest.olat_images, cam.name, f.frame) if cfg.olats else None
            if olat is not None and not olat.exists():
                _clear_partials(olat, shard)
                olats, alpha = scene.render_olats(progress=bar.update)
                write_olats(olat, manifest.layout, olats, alpha, manifest.irradiance)
                rendered += n_batches
            else:
                bar.update(n_batches)
            for h in manifest.hdri:
                path = cs.path(h.images, cam.name, f.frame)
                if not path.exists():
                    _clear_partials(path, shard)
                    rgb, alpha = scene.render_environment(h.environment, Path(h.environment.path))
                    write_exr(path, np.concatenate([rgb, alpha[..., None]], -1), ["R", "G", "B", "A"])
                    rendered += 1
                bar.update(1)
    finally:
        bar.close()
        scene.close()
    seconds = time.perf_counter() - start
    log.info("%s: %d renders in %.1f s", out, rendered, seconds)
    return cs


def _write_landmarks(cfg: SynthConfig, subject: Subject, cs: CaptureSet, todo: list) -> None:
    """Each (camera, frame) of ``todo``'s face landmarks, where the set records them and the file is
    missing (pure numpy: a set rendered before landmarks were recorded gets them without a render)."""
    from .landmarks import view_landmarks

    template = cs.manifest.landmark_images
    if not template:
        return
    weights = {number: w for number, (w, _) in _track(cfg)}
    for cam, f in todo:
        path = cs.path(template, cam.name, f.frame)
        if not path.exists():
            write_landmarks(path, view_landmarks(subject, weights[f.frame], cam))


def render_stage_mixes(out: str | Path, mixes: dict[str, np.ndarray],  # name -> [N, 3] irradiance per light
                       threads: int = 2) -> dict[str, np.ndarray]:       # name -> [H, W, 3]
    """Images of the capture set ``out`` (first camera, first frame) lit by several stage lights at
    once, one Cycles render per mix: ground truth for a rig of stage lights or an HDRI projected on
    the stage, at the cost of one render instead of every OLAT. Each is kept as
    ``out/mixes/NAME.DIGEST.exr`` (the digest is the mix's), so a rerun with the same mixes renders
    nothing and a changed mix renders again."""
    import hashlib

    from ..io.exr import read_channels

    cs = CaptureSet(out)
    m = cs.manifest
    cfg = SynthConfig(**{**asdict(SynthConfig()), **m.extra["config"]})
    for name, w in mixes.items():
        w = np.asarray(w)
        if w.shape != (len(m.layout), 3) or not np.isfinite(w).all() or (w < 0).any():
            raise RelitError(f"stage mix {name!r}: give {len(m.layout)} x 3 finite irradiances >= 0 "
                             f"(one RGB row per light of {cs.root}'s stage), got shape {w.shape}")
    cam, frame = m.cameras[0], m.frames[0].frame
    paths = {name: cs.root / "mixes" / f"{name}.{hashlib.sha256(np.asarray(w, '<f8').tobytes()).hexdigest()[:12]}.exr"
             for name, w in mixes.items()}
    todo = [name for name, path in paths.items() if not path.exists()]
    if todo:
        scene = _stage_scene(cfg, SUBJECTS[cfg.subject].make(cfg.seed), m, threads)
        try:
            scene.set_view(cam, frame)
            for name in todo:
                paths[name].parent.mkdir(parents=True, exist_ok=True)
                write_exr(paths[name], scene.render_mix(mixes[name]).astype(np.float32), ["R", "G", "B"],
                          ["float"] * 3)
        finally:
            scene.close()
    return {name: read_channels(path, ["R", "G", "B"]) for name, path in paths.items()}


def synthesize_identities(cfg: SynthConfig, count: int, out: str | Path, progress: bool = True,
                          threads: int = 2) -> list[dict]:
    """``count`` people (seeds ``cfg.seed`` ...), one capture set each under ``out``, and an index
    ``out/identities.json`` (name, seed, look, renders, seconds) rewritten after each identity.

    Resumable like :func:`synthesize`: finished identities are not rendered again (only files a newer
    relit records beside the images, such as landmarks, are added), a half-rendered one goes on
    where it stopped. Seconds are those of the last run that rendered the identity.
    """
    import json

    if cfg.camera_seed is not None:
        raise RelitError("--camera-seed films one person from new viewpoints; with --identities each person's "
                         "own seed places their cameras")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / IDENTITIES
    index = json.loads(index_path.read_text()) if index_path.exists() else {"identities": []}
    done = {entry["seed"]: entry for entry in index["identities"] if entry.get("complete")}
    entries = []
    for seed in range(cfg.seed, cfg.seed + count):
        if seed in done:
            entries.append(done[seed])
            finished = CaptureSet(out / done[seed]["folder"])
            if not finished.manifest.landmark_images or finished.missing_files():
                # renders nothing: writes what a newer relit records beside the images (landmarks)
                synthesize(replace(cfg, seed=seed), finished.root, progress=False, threads=threads)
            continue
        subject = SUBJECTS[cfg.subject].make(seed)
        name = subject.name
        start = time.perf_counter()
        cs = synthesize(replace(cfg, seed=seed), out / name, progress=progress, threads=threads)
        seconds = time.perf_counter() - start
        entries.append({"name": name, "seed": seed, "folder": name, "complete": True, "seconds": round(seconds, 1),
                        "look": asdict(subject.look), "views": len(cs.manifest.cameras),
                        "frames": len(cs.manifest.frames), "lights": len(cs.manifest.layout)})
        log.info("%s: identity %d/%d in %.1f s", name, seed - cfg.seed + 1, count, seconds)
        index = {"config": asdict(cfg), "count": count, "identities": entries + [
            e for e in index["identities"] if e["seed"] > seed]}
        atomic_write_text(index_path, json.dumps(index, indent=1) + "\n")
    return entries
