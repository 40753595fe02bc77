"""The ``relit`` command line. Each verb imports what it needs when it runs, so
``relit --help`` stays fast and the light verbs never load torch."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
from pathlib import Path

from ._version import __version__
from .errors import RelitError, RelitIOError, ValidationError
from .jobs import AUTO_DELIGHTER, NOISE_MODES, SAMPLERS, TEMPORAL_WEIGHT
from .lighting.hdri import MISSING_POLICIES
from .lighting.random_lighting import TARGET_LIGHTINGS
from .model.conditioning import CONDITIONINGS, OLAT
from .model.consistency import CONSISTENCY
from .model.lr_schedules import LR_FLOOR, LR_SCHEDULES
from .model.real_tasks import DEFAULT_SHARE, REAL_TASKS
from .relight.cache import DEFAULT_LIMIT_MB
from .relight.strategies import STRATEGIES
from .synthetic.subject import MOTIONS

log = logging.getLogger("relit")


def _resolve_hdri(text: str) -> Path:
    """A file path, or the name of one of Blender's bundled HDRIs (``forest``)."""
    from .lighting.hdri import resolve_hdri

    return resolve_hdri(text)


def _shard(text: str) -> tuple[int, int]:
    """An argparse type: ``K/N`` with 0 <= K < N, one process's share of a split job."""
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
        raise argparse.ArgumentTypeError(f"{text!r}: use K/N with 0 <= K < N, e.g. 0/2")
    return int(k), int(n)


def _steps_flag(p: argparse.ArgumentParser) -> None:
    """The sampler-steps flag of every verb that samples a bundle."""
    p.add_argument("--steps", type=_at_least(0),
                   help="sampler steps (default: the bundle's recipe; 0: a refine bundle's mean pass alone)")


def _at_least(lo: int):
    """An argparse type: an integer >= ``lo`` (argparse then names the flag in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be an integer >= {lo}, got {value}")
        return value
    return parse


def _objective(text: str) -> str:
    """An argparse type: a training objective's name (core.model.objectives.OBJECTIVES, which loads
    torch: imported only when ``relit train`` parses its flags)."""
    from .model.objectives import OBJECTIVES

    if text not in OBJECTIVES:
        raise argparse.ArgumentTypeError(f"{text!r}: use one of {sorted(OBJECTIVES)}")
    return text


def _fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _print_exr(path: Path) -> None:
    from .io.exr import read_info

    info = read_info(path)
    print(f"{path}: {info.format}, {len(info.parts)} part(s)")
    for part in info.parts:
        label = f" '{part.name}'" if part.name else ""
        print(f"  part {part.index}{label}: {part.width}x{part.height}, {part.compression or 'no'} compression")
        layers: dict[str, list[tuple[str, str]]] = {}
        for name, ptype in zip(part.channels, part.pixel_types):
            layer, _, comp = name.rpartition(".")
            layers.setdefault(layer, []).append((comp, ptype))
        for layer, comps in layers.items():
            types = sorted({t for _, t in comps})
            print(f"    {layer or '(beauty)'}: {','.join(c for c, _ in comps)} [{'/'.join(types)}]")
        relit = {k: v for k, v in part.attributes.items() if k.startswith("relit/")}
        for key in ("relit/version", "relit/bundle_id", "relit/objective", "relit/sampler", "relit/steps",
                    "relit/consistency", "relit/seed",
                    "relit/colour_space", "relit/input_hash"):
            if key in relit:
                print(f"    {key} = {relit[key]}")
        if "chromaticities" in part.attributes:
            print(f"    chromaticities = {tuple(round(v, 4) for v in part.attributes['chromaticities'])}")


def _print_capture(folder: Path) -> None:
    from .data.capture import CaptureSet

    cs = CaptureSet(folder)
    m = cs.manifest
    print(f"{folder}: capture set of subject {m.subject!r} ({m.colour_space})")
    print(f"  cameras: {len(m.cameras)} ({', '.join(c.name for c in m.cameras[:8])}"
          f"{', ...' if len(m.cameras) > 8 else ''}), {m.cameras[0].width}x{m.cameras[0].height}")
    exprs = sorted({f.expression for f in m.frames})
    print(f"  frames: {len(m.frames)} ({m.frames[0].frame}-{m.frames[-1].frame}), expressions: {exprs}")
    print(f"  stage: {m.layout.name}, {len(m.layout)} lights, coverage {m.layout.coverage:.3f} sr")
    if m.hdri:
        print(f"  HDRI ground truth: {', '.join(h.name for h in m.hdri)}")
    problems = cs.problems()
    if problems:
        raise RelitError(f"{folder}: the capture set is incomplete:\n  " + "\n  ".join(problems))
    print("  files: all present, every layer, size and alpha the manifest names")


def _print_json(path: Path) -> None:
    from .validation import load_json

    data = load_json(path, "give an existing JSON file")
    if isinstance(data, dict) and "lights" in data:
        from .lighting.rig import LightRig

        rig = LightRig.from_json(data, source=str(path))
        print(f"{path}: LightRig with {len(rig.lights)} light(s) in {len(rig.layers())} layer(s)")
        for light in rig.lights[:12]:
            d = ", ".join(f"{v:+.3f}" for v in light.direction)
            print(f"  {light.name} ({light.type}) -> {light.layer}: dir ({d}) size {light.size:.3f} "
                  f"intensity {light.intensity:.4g} W/m2")
        if len(rig.lights) > 12:
            print(f"  ... {len(rig.lights) - 12} more")
        if rig.environment:
            print(f"  environment: {rig.environment.path} rotation {rig.environment.rotation} "
                  f"intensity {rig.environment.intensity}")
    else:
        print(json.dumps(data, indent=2)[:4000])


def _print_bundle(folder: Path) -> None:
    from .model.bundle import bundle_problems, read_info

    info = read_info(folder)
    if problems := bundle_problems(folder):
        raise RelitError(f"{folder}: the bundle is incomplete: {'; '.join(problems)}; copy it again from where it "
                         "was trained")
    c = info.config
    print(f"{folder}: relit bundle {info.id!r}, {c.conditioning} conditioning, preset {c.preset}")
    print(f"  model: {c.resolution}x{c.resolution}, codec {c.codec}, UNet {c.block_out_channels}, "
          f"SH degree {c.sh_degree} ({c.beta_encoding}), token width {c.token_width}")
    print(f"  subject: {info.subject or '(general)'}; stage: "
          f"{info.layout.name + f', {len(info.layout)} lights' if info.layout else '-'}")
    print(f"  tone: white {info.tone.white}, exposure image {info.exposure_image:.4g} / "
          f"target {info.exposure_target:.4g}")
    chained = info.training.get("started_from")
    after = f" ({info.steps_in_all} in all, from {chained.get('id')})" if chained else ""
    print(f"  trained: {info.training.get('steps')} steps{after}, {info.training.get('seconds')} s, "
          f"commit {str(info.training.get('commit'))[:12]}")
    print(f"  command: {info.training.get('command') or '-'}")
    r = info.recipe
    print(f"  recipe: objective {r['objective']}, {r['steps']} sampler steps, consistency {r['consistency']}")
    print(f"  sha256 (weights and calibration): {info.sha256[:16]}...; licence: {info.licence}")


def cmd_info(args: argparse.Namespace) -> None:
    path = Path(args.path)
    if path.is_dir():
        if (path / "manifest.json").exists():
            _print_capture(path)
        elif (path / "relit.json").exists():
            _print_bundle(path)
        else:
            raise RelitError(f"{path}: neither a capture set (manifest.json) nor a model bundle (relit.json)")
    elif path.suffix.lower() == ".json":
        _print_json(path)
    else:
        _print_exr(_resolve_hdri(args.path))


def _rig_from_blender(args: argparse.Namespace) -> None:
    """``relit rig --blend`` / ``--light``: the add-on's scene conversion in a Python process of its own
    (bpy never loads into core's); its errors are already reported, its exit code is passed on."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("bpy") is None:
        what = f"{args.blend}: reading a .blend" if args.blend else "--light: converting lamps as Blender does"
        raise ValidationError(f"{what} needs the bpy module in this Python (pip install bpy==5.0.1)")
    command = [sys.executable, "-m", "blender_addon.rig_export"] + ([args.blend] if args.blend else [])
    command += ["-o", args.output]
    for spec in args.light or []:
        command += ["--light", *spec]
    for flag in ("scene", "camera", "anchor", "bundle", "camera_c2w"):
        if getattr(args, flag):
            command += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    code = subprocess.run(command).returncode
    if code:
        raise SystemExit(code)


def cmd_rig(args: argparse.Namespace) -> None:
    if args.blend or args.light:
        _rig_from_blender(args)
        return
    import numpy as np

    from .lighting.camera import front_camera_c2w
    from .lighting.hdri import load_environment, project_to_layout
    from .lighting.layout import load_layout
    from .lighting.rig import Environment, LightRig, stage_rig
    from .lighting.rotation import parse_rotation

    hdri = _resolve_hdri(args.hdri)
    rotation = parse_rotation(args.rotation)
    env = Environment(str(hdri.resolve()), rotation, args.intensity)
    pixels = load_environment(hdri)
    if args.camera_c2w:
        c2w = np.asarray(json.loads(Path(args.camera_c2w).read_text()), dtype=np.float64)
    else:
        c2w = front_camera_c2w()
    if args.layout:
        layout = load_layout(args.layout)
        proj = project_to_layout(pixels, layout, rotation, args.intensity, args.missing)
        rig = stage_rig(layout, proj, c2w, env)
        log.info("projected %s onto %d stage lights (%s); total %.4g W/m2, dropped %.1f%%",
                 hdri.name, len(layout), layout.name, proj.total.mean(), 100 * proj.dropped_fraction)
        print(f"{len(layout)} stage lights from {hdri.name}: "
              f"irradiance sum {proj.weights.sum(axis=0).round(4).tolist()} W/m2 (R, G, B), "
              f"dropped below the stage floor {100 * proj.dropped_fraction:.1f}%")
    else:
        rig = LightRig([], env, c2w.tolist())
    rig.save(args.output)
    print(f"wrote {args.output}")


def cmd_synth(args: argparse.Namespace) -> None:
    from .lighting.rotation import parse_rotation
    from .synthetic.synth import SynthConfig, synthesize, synthesize_identities

    subject = args.subject or ("person" if args.identities else "face")
    cfg = SynthConfig(subject=subject, seed=args.seed, views=args.views, frames=args.frames, motion=args.motion,
                      first_frame=args.first_frame, layout=args.layout, resolution=args.res,
                      samples=args.samples, batch=args.batch, hdris=list(args.hdris),
                      rotations=[list(parse_rotation(r)) for r in args.rotations], vector=not args.no_vector,
                      olats=not args.no_olats, camera_seed=args.camera_seed, first_view=args.first_view)
    if args.shard is not None and args.identities:
        raise RelitError("--shard splits one capture set's views; with --identities run one process per "
                         "--seed range instead")
    if args.identities:
        entries = synthesize_identities(cfg, args.identities, args.output, progress=not args.quiet,
                                        threads=args.threads)
        print(f"{len(entries)} identities in {args.output} (index: {args.output}/identities.json)")
        return
    cs = synthesize(cfg, args.output, progress=not args.quiet, threads=args.threads, shard=args.shard)
    print(f"capture set: {cs}" if args.shard is None else f"shard {args.shard[0]}/{args.shard[1]} of {cs} done")


def cmd_train(args: argparse.Namespace) -> None:
    import shlex

    from .model.train import TrainConfig, train

    if (args.real_task or args.real_share is not None) and not args.real_images:
        raise ValidationError("--real-task and --real-share set the real-image task: give its photos with "
                              "--real-images PHOTO [PHOTO ...]")

    cfg = TrainConfig(captures=args.capture, output=args.output, preset=args.preset, resolution=args.res,
                      patch=args.patch, position=args.position, normals=args.normals,
                      objective=args.objective, relative=args.relative, environment_token=args.environment_token,
                      source_tint=args.source_tint, subject_saturation=args.subject_saturation, shift=args.shift,
                      conditioning=args.conditioning,
                      target_lighting=args.target_lighting,
                      multitask_ratio=(DEFAULT_SHARE if args.real_share is None else args.real_share)
                      if args.real_images else 0.0,
                      multitask_images=args.real_images, multitask_task=args.real_task or "",
                      holdout_identities=args.holdout_identities,
                      steps=args.steps, max_minutes=args.max_minutes, batch=args.batch, lr=args.lr,
                      lr_schedule=args.lr_schedule, seed=args.seed,
                      holdout_light_every=args.holdout_light_every, holdout_cameras=args.holdout_cameras,
                      holdout_lights=[k for k in args.holdout_lights.split(",") if k] if args.holdout_lights else [],
                      holdout_expressions=args.holdout_expressions, val_every=args.val_every,
                      val_samples=args.val_samples,
                      checkpoint_every=args.checkpoint_every, device=args.device, bf16=args.bf16,
                      gradient_checkpointing=args.gradient_checkpointing, base_checkpoint=args.base_checkpoint,
                      init_from=args.init_from, command=shlex.join(["relit", *sys.argv[1:]]))
    from .model.objectives import make_objective

    bundle_folder = Path(args.bundle) if args.bundle else Path(args.output) / "bundle"
    if make_objective({"name": cfg.objective}).stochastic and bundle_folder.exists():  # before training, not after
        raise RelitIOError(f"{bundle_folder}: exists; bundles are never overwritten: give --bundle a new folder (or "
                           "move this one away) and run the same command again, which resumes from the checkpoints")
    trainer, metrics = train(cfg, progress=not args.quiet)
    if trainer.rank != 0:  # data-parallel under torchrun: rank 0 writes the bundle
        return
    if trainer.objective.stochastic:
        bundle = trainer.save(args.bundle) if args.bundle else trainer.save()
        print(f"bundle: {bundle}")
    else:
        print(f"the {cfg.objective} baseline writes no bundle (checkpoints: {Path(args.output) / 'checkpoints'})")
    print("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float)))


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    result = run_demo(Path(args.output), Path(args.bundle) if args.bundle else None, args.train, args.steps,
                      args.seed, progress=not args.quiet)
    print(f"relit passes:  {result.passes}")
    print(f"contact sheet: {result.sheet}")
    print("PSNR against Cycles ground truth on the subject: " +
          ", ".join(f"{k} {v:.1f} dB" for k, v in result.scores.items()))
    print("real photo, general portrait bundle: " + ", ".join(f"{k} {v:.2f}x" for k, v in result.photo.items()))
    stage, portrait = result.hdri_cost["stage"], result.hdri_cost["portrait"]
    print(f"UNet evaluations of one HDRI: stage strategy {stage}, portrait bundle {portrait} (one pass, "
          f"1/{stage / portrait:.0f})")


def cmd_check_consistency(args: argparse.Namespace) -> None:
    from .io.plates import read_plate, unpremultiplied
    from .jobs import AUTO_MATTE
    from .io.sequence import find_frames, is_sequence
    from .model.bundle import load_bundle
    from .io.framing import to_model
    from .relight.frame import RelightSettings, consistency_error, prepare_plate

    pipe, info = load_bundle(args.bundle, args.device)
    steps = int(info.recipe["steps"]) if args.steps is None else pipe.objective.check_steps(args.steps, "--steps")
    settings = RelightSettings(steps=steps, seed=args.seed)
    for frame, path in find_frames(args.input).items():
        plate = read_plate(path)
        alpha, separate = plate.alpha, True
        # the matte relit relight uses: a file, the automatic one (asked for, or the plate has no alpha), or the
        # plate's own alpha; a separate matte is applied to the plate un-premultiplied
        if args.matte == AUTO_MATTE or (args.matte is None and not plate.has_alpha):
            from .portrait.matte import auto_matte

            plate = unpremultiplied(plate)
            alpha = auto_matte(plate.rgb, str(path))
        elif args.matte:
            from .io.images import read_matte

            mattes = find_frames(args.matte)
            alpha = read_matte(mattes[frame] if is_sequence(args.matte) else next(iter(mattes.values())))
            plate = unpremultiplied(plate)
        else:
            separate = False
        # framed as relit relight frames it (the square around the matte, at the model's size)
        prepared = prepare_plate(plate.rgb, alpha, info.config.resolution, premultiply=separate,
                                 source=str(path), normals=info.config.normals)
        matte = to_model(prepared.matte[..., None], prepared.framing)[..., 0]
        err, _ = consistency_error(pipe, info, prepared.model_input, matte, settings, normals=prepared.normals)
        print(f"frame {frame}: {path.name}: sum of {len(info.layout)} predicted stage OLATs vs input: "
              f"{100 * err:.1f}% mean absolute error (relative to the input's mean)")


def _job_from_args(args: argparse.Namespace):
    """A RelightJob from ``relit relight`` flags (or the --job file they point at)."""
    from .jobs import RelightJob
    from .lighting.rig import Environment, LightRig
    from .lighting.rotation import parse_rotation

    if args.job:
        # the run's own flags (how to run it) may come with --job; what the job renders comes from its file
        how = {"job", "func", "command", "quiet", "save_job", "ray", "workers", "chunk", "light_chunk",
               "cpus_per_worker", "gpus_per_worker", "units_out"}
        defaults = vars(build_parser().parse_args(["relight", "--job", args.job]))
        given = sorted(f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                       if k not in how and k in defaults and v != defaults[k])
        if given:
            raise RelitError(f"--job {args.job} holds the whole job; {', '.join(given)} would be ignored: edit the "
                             "job file (or drop --job and give the flags)")
        return RelightJob.load(args.job)
    if not args.input or not args.output:
        raise RelitError("relit relight needs --input and -o/--output (or --job JOB.json)")
    if args.rig and args.hdri:
        raise RelitError("give either --rig or --hdri, not both (a rig may hold an environment)")
    rig = None
    if args.rig:
        rig = LightRig.load(args.rig)
    elif args.hdri:
        env = Environment(str(_resolve_hdri(args.hdri).resolve()), parse_rotation(args.rotation), args.intensity)
        rig = LightRig([], env)
    from .jobs import AUTO_BUNDLE

    job = RelightJob(bundle=str(args.bundle or AUTO_BUNDLE), input=args.input, output=args.output,
                     rig=rig, delight=args.delight, matte=args.matte, frames=args.frames,
                     camera_c2w=_read_c2w(args.camera_c2w),
                     hdri_strategy=args.hdri_strategy, clusters=args.clusters, missing=args.missing,
                     basis=args.basis, steps=args.steps, guidance_image=args.guidance_image,
                     guidance_light=args.guidance_light, seed=args.seed, sampler=args.sampler, noise=args.noise,
                     temporal=args.temporal, samples=args.samples, consistency=args.consistency,
                     device=args.device, batch_size=args.batch_size, cache_mb=args.cache_mb, margin=args.margin,
                     colour_space=args.colour_space, working_space=args.working_space, subject=args.subject,
                     allow_other_subject=args.allow_other_subject, name=args.name)
    job.validate("command line", flags=True)
    return job


def _read_c2w(path: str | None) -> list | None:
    if not path:
        return None
    from .validation import as_numbers, load_json

    return as_numbers(load_json(path, "give a JSON file holding a 4x4 camera-to-world matrix"),
                      f"{path}", (4, 4)).tolist()


def cmd_relight(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .relight_job import run_relight

    job = _job_from_args(args)
    if args.save_job:
        job.save(args.save_job)
        print(f"wrote {args.save_job}")
        return
    if args.ray is not None or args.chunk:
        _relight_in_units(job, args)
        return
    bars: dict[str, tqdm] = {}

    def progress(event) -> None:
        bar = bars.get(event.stage)
        if bar is None:
            bar = bars[event.stage] = tqdm(total=event.total, desc=event.stage, position=len(bars),
                                           unit="frame" if event.stage == "frames" else "light-step",
                                           disable=args.quiet, leave=event.stage == "frames")
        if event.stage == "lights" and event.done < bar.n:
            bar.reset(total=event.total)
        bar.set_postfix_str(f"frame {event.frame}{' (skipped)' if event.skipped else ''}")
        bar.update(event.done - bar.n)

    try:
        report = run_relight(job, progress)
    finally:
        for bar in bars.values():
            bar.close()
    rendered = [f for f in report.frames if not f.skipped]
    skipped = len(report.frames) - len(rendered)
    print(f"{report.folder}: {len(rendered)} frame(s) relit"
          + (f", {skipped} skipped (same inputs as before)" if skipped else "")
          + f"; {report.inferences} inference(s) per frame")
    if report.bundle_choice:
        print(f"  {report.bundle_choice}")
    if rendered:
        evals = rendered[0].evaluations
        secs = sum(f.seconds for f in rendered) / len(rendered)
        print(f"  {evals} UNet evaluations and {secs:.2f} s per frame on {job.device}")
    for w in report.warnings:
        print(f"  warning: {w}")


def _relight_in_units(job, args: argparse.Namespace) -> None:
    """``relit relight --chunk N [--light-chunk M] [--ray [ADDRESS]]``: plan, then run the units."""
    from tqdm import tqdm

    from .farm.units import plan_job, run_plan_local

    plan = plan_job(job, args.chunk or 1_000_000, args.light_chunk)
    units_path = Path(args.units_out or Path(next(iter(plan.folders.values()))) / "units.json")
    plan.save(units_path)
    if args.ray is not None:
        from .farm.ray_runner import run_plan_ray

        report = run_plan_ray(plan, args.ray or None, args.workers, args.cpus_per_worker, args.gpus_per_worker,
                              threads=job.threads, progress=not args.quiet)
        print(f"{units_path}: {len(report.done)} unit(s) done on {len(report.workers)} Ray worker(s), "
              f"{report.retries} retried, {len(report.failed)} failed")
        for f in report.failed:
            print(f"  unit {f['unit']} failed after {f['attempts']} attempt(s): {f['error']}\n    {f['command']}")
        if report.failed:
            raise RelitError(f"{len(report.failed)} unit(s) failed; rerun the same command to retry only those")
        return
    bar = tqdm(total=len(plan.units), desc="units", unit="unit", disable=args.quiet)
    run_plan_local(plan, job.threads, lambda done, total: bar.update(1))
    bar.close()
    print(f"{units_path}: {len(plan.units)} unit(s) done in this process; outputs in "
          f"{', '.join(sorted(set(plan.folders.values())))}")


def cmd_plan(args: argparse.Namespace) -> None:
    from .farm.units import plan_job
    from .jobs import RelightJob

    plan = plan_job(RelightJob.load(args.job), args.chunk, args.light_chunk)
    plan.save(args.output)
    kinds = {k: sum(u.kind == k for u in plan.units) for k in ("relight", "merge")}
    print(f"{args.output}: {len(plan.units)} unit(s) ({kinds['relight']} relight, {kinds['merge']} merge) over "
          f"{len(plan.folders)} camera(s); run each with: relit run-unit {args.output} --index I")


def cmd_run_unit(args: argparse.Namespace) -> None:
    from .farm.units import Plan, run_unit

    result = run_unit(Plan.load(args.units), args.index)
    print(f"unit {args.index} ({result['kind']}): {len(result['outputs'])} file(s)"
          + (f", {len(result['skipped'])} frame(s) already done" if result["skipped"] else ""))


def cmd_import_stage(args: argparse.Namespace) -> None:
    from .data.stage_import import import_stage

    report = import_stage(args.stage, args.output)
    m = report.capture.manifest
    print(f"{args.output}: capture set of {m.subject!r}: {len(m.layout)} lights, {len(m.cameras)} camera(s), "
          f"{len(m.frames)} frame(s)")
    print(f"  irradiance: {report.calibration}")
    if report.flat_vs_sum is None:
        print("  flat-lit: made as the exact sum of the OLATs")
    else:
        print(f"  flat-lit: imported; it differs from the OLATs' sum by {100 * report.flat_vs_sum:.2f} % (mean)")
    for w in report.warnings:
        log.warning("%s", w)


def _flag_value(value) -> str:
    """A setting as it is typed after its flag (a list: its items, space-separated)."""
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "(none)"
    return str(value)


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from dataclasses import fields

    from tqdm import tqdm

    from .data.capture import CaptureSet
    from .gaussians.train import (capture_frames, check_overlap, keyframes, load_config, preset, reconstruct,
                                  save_config)
    from .io.sequence import parse_frame_range

    out = Path(args.output)
    capture = CaptureSet(args.capture)  # checked before anything is written: a rerun can fix the path
    frames = parse_frame_range(args.frames) if args.frames else None
    flags = {"keyframes": "--keyframes", "kframe_iterations": "--kframe-iterations",  # config field -> its flag
             "segment_iterations": "--segment-iterations", "warmup": "--warmup", "resolution": "--res",
             "gaussians": "--gaussians", "overlap": "--overlap", "holdout_cameras": "--holdout-cameras"}
    given = {k: v for k, v in (("keyframes", args.keyframes), ("kframe_iterations", args.kframe_iterations),
                               ("segment_iterations", args.segment_iterations), ("warmup", args.warmup),
                               ("resolution", args.res), ("gaussians", args.gaussians), ("overlap", args.overlap),
                               ("holdout_cameras", args.holdout_cameras))
             if v is not None}
    if (out / "reconstruction.json").exists():
        cfg, capture_path = load_config(out)
        if Path(capture_path).resolve() != Path(args.capture).resolve():
            raise RelitError(f"{out}: holds a reconstruction of {capture_path}; choose another folder")
        views = capture_frames(capture, cfg.resolution, cfg.frames)  # read a model's share at a time
        if frames is not None and frames != views.frames:
            raise RelitError(f"{out}: holds a reconstruction of frames {views.frames[0]}-{views.frames[-1]}; rerun "
                             "without --frames to finish it, or choose another folder")
        if changed := [k for k, v in given.items() if getattr(cfg, k) != v]:
            raise RelitError(f"{out}: holds a reconstruction made with " + ", ".join(
                f"{flags[k]} {_flag_value(getattr(cfg, k))}" for k in changed) + "; rerun without " + ", ".join(
                flags[k] for k in changed) + " to finish it, or choose another folder")
        if args.preset is not None:  # the preset's own settings, where no flag above overrides them
            wanted = preset(args.preset, **given)
            if off := [f.name for f in fields(cfg) if f.name not in {*given, "frames", "device"}
                       and getattr(cfg, f.name) != getattr(wanted, f.name)]:
                raise RelitError(f"{out}: holds a reconstruction whose {', '.join(off)} differ from --preset "
                                 f"{args.preset}'s; rerun without --preset to finish it, or choose another folder")
    else:
        overrides = {**given, **({} if frames is None else {"frames": frames})}
        cfg = preset(args.preset or "tiny", device=args.device, **overrides)
        views = capture_frames(capture, cfg.resolution, cfg.frames)  # a bad range is refused before anything is written
        check_overlap(views.frames, keyframes(views.frames, cfg.keyframes), cfg)
        save_config(out, cfg, str(Path(args.capture).resolve()))
    if args.ray is not None:  # the K-frame model here, then the segments (independent in a wave) as Ray tasks
        from .farm.ray_runner import map_ray
        from .gaussians.train import segment_waves

        reconstruct(views, cfg, store=out, segments=False)
        n = len(keyframes(views.frames, cfg.keyframes)) - 1
        for wave in segment_waves(n, cfg):
            _, failed = map_ray("core.gaussians.train", "train_segment", [(str(out.resolve()), i) for i in wave],
                                args.ray or None, args.workers, progress=not args.quiet)
            if failed:
                raise RelitError(f"{len(failed)} segment(s) failed after three attempts: {failed}; rerun to retry")
        print(f"{out}: K-frame model and {n} segment(s), segments trained on Ray")
        return
    bar = tqdm(total=cfg.keyframes, desc="reconstruct", unit="model", disable=args.quiet)
    recon = reconstruct(views, cfg, store=out, progress=lambda done, total, name: bar.update(done - bar.n))
    bar.close()
    print(f"{out}: K-frame model and {len(recon.segments)} segment(s) between keyframes {recon.keyframes}")


def cmd_render_views(args: argparse.Namespace) -> None:
    import numpy as np
    from tqdm import tqdm

    from .data.capture import CaptureSet
    from .gaussians.export import render_sequence
    from .gaussians.train import load_config
    from .io.sequence import parse_frame_range
    from .validation import check_fields, load_json

    if args.camera_json:
        data = load_json(args.camera_json, "give a JSON camera: {K, c2w, width, height}")
        check_fields(data, args.camera_json, {"K", "c2w", "width", "height"}, required=("K", "c2w", "width", "height"))
        K, c2w, width, height = np.asarray(data["K"]), np.asarray(data["c2w"]), int(data["width"]), int(data["height"])
    else:
        _, capture_path = load_config(args.recon)
        cams = {c.name: c for c in CaptureSet(capture_path).manifest.cameras}
        if args.camera not in cams:
            raise RelitError(f"--camera {args.camera!r}: the capture set's cameras are {sorted(cams)}")
        cam = cams[args.camera]
        scale = args.res / cam.height if args.res else 1.0
        K = np.asarray(cam.K, dtype=np.float64).copy()
        K[:2] *= scale
        c2w, width, height = cam.c2w, round(cam.width * scale), round(cam.height * scale)
    frames = parse_frame_range(args.frames) if args.frames else None
    if args.ray is not None:  # chunks of frames as Ray tasks
        from .farm.ray_runner import map_ray

        if frames is None:
            recon_cfg, capture_path = load_config(args.recon)
            frames = recon_cfg.frames or [f.frame for f in CaptureSet(capture_path).manifest.frames]
        chunks = [frames[i:i + args.chunk] for i in range(0, len(frames), args.chunk)]
        calls = [(str(Path(args.recon).resolve()), np.asarray(K), np.asarray(c2w), width, height, chunk,
                  str(Path(args.output).resolve()), args.ply) for chunk in chunks]
        results, failed = map_ray("core.gaussians.export", "render_sequence", calls, args.ray or None, args.workers,
                                  progress=not args.quiet)
        if failed:
            raise RelitError(f"{len(failed)} chunk(s) failed after three attempts; rerun to retry")
        print(f"{args.output}: {sum(r[0] for r in results)} frame(s) rendered on Ray "
              f"({sum(r[1] for r in results)} already there)")
        return
    bar = tqdm(desc="render-views", unit="frame", disable=args.quiet)
    rendered, kept = render_sequence(args.recon, K, c2w, width, height, frames, args.output, args.ply,
                                     lambda done, total, f: (setattr(bar, "total", total), bar.update(1)))
    bar.close()
    print(f"{args.output}: {rendered} frame(s) rendered ({kept} already there)"
          + (f"; PLY per frame in {Path(args.output) / 'ply'}" if args.ply else ""))


def cmd_comp(args: argparse.Namespace) -> None:
    from compositor_nodes.defaults import default_graph
    from compositor_nodes.evaluate import check_writes, evaluate
    from compositor_nodes.graph import Graph, Read
    from compositor_nodes.nuke import write_nuke
    from tqdm import tqdm

    from .io.sequence import find_frames, is_sequence, parse_frame_range

    if bool(args.graph) == bool(args.default):
        raise RelitError("give a graph JSON, or --default PASSES to build the default comp of a pass file")
    if args.default:
        frames = sorted(find_frames(args.default)) if is_sequence(args.default) else []
        if args.default and not args.output:
            raise RelitError("--default needs -o/--output: where the comp writes (file or name.####.exr)")
        graph = default_graph(args.default, args.output, args.plate, frames[0] if frames else None,
                              frames[-1] if frames else None)
    else:
        graph = Graph.load(args.graph)
    if args.save_graph:
        graph.save(args.save_graph)
        print(f"wrote {args.save_graph}")
    reads = [n for n in graph.nodes.values() if isinstance(n, Read) and n.first is not None]
    if args.frames:
        frames = parse_frame_range(args.frames)
    elif reads:
        frames = list(range(reads[0].first, reads[0].last + 1))
    else:
        frames = [None]
    if args.nuke:
        write_nuke(graph, args.nuke, frame=frames[0])
        print(f"wrote {args.nuke}")
    if args.no_render:
        return
    graph.validate()
    check_writes(graph, frames, args.overwrite)
    for frame in tqdm(frames, desc="comp", unit="frame", disable=args.quiet or len(frames) == 1):
        written = evaluate(graph, frame, keep={w.name for w in graph.outputs()})
    print(f"comp: {len(frames)} frame(s); last written: {', '.join(str(p) for p in written.values())}")


def _add_info(sub) -> None:
    """``relit info``."""
    p = sub.add_parser("info", help="describe an EXR/HDR file, a capture set, a rig or a model bundle",
                       description="Describe an image's parts, layers, size and pixel types; a capture set; "
                                   "a LightRig JSON; or a model bundle folder.")
    p.add_argument("path", help="an image file, a folder, a .json file, or a bundled HDRI name (e.g. forest)")
    p.set_defaults(func=cmd_info)


def _add_rig(sub) -> None:
    """``relit rig``."""
    p = sub.add_parser("rig", help="make a LightRig JSON from an HDRI or a .blend's lamps and world",
                       description="Make a LightRig from a lat-long HDRI or from a saved .blend. With --layout, "
                                   "the HDRI is also projected onto the stage's light directions (energy-"
                                   "conserving cells), one 'olat' light each, as seen from the camera. With "
                                   "--blend (a saved scene's lights and world) or --light (lamps given here, seen from "
                                   "--camera-c2w or the front view), they become the rig exactly as the "
                                   "add-on's Relight button converts them (needs bpy).")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--hdri", help="lat-long EXR/HDR file, or a Blender bundled HDRI name: city, courtyard, "
                                       "forest, interior, night, studio, sunrise, sunset")
    source.add_argument("--blend", help="a saved .blend: its lamps and world, seen by its camera")
    source.add_argument("--light", action="append", nargs="+", metavar="NAME TYPE [key=value]",
                        help="a lamp in Blender's units, repeatable (needs bpy): TYPE point|spot|area|sun; "
                             "location=X,Y,Z (m; spot and area lamps aim at the subject at the origin) or, for a "
                             "sun, from=X,Y,Z; power=W or strength=W/m2 (sun); size=m or angle=deg (sun); "
                             "colour=R,G,B; spot=deg, blend=0-1; group=LAYER")
    p.add_argument("--scene", help="with --blend: scene name (default: the file's active scene)")
    p.add_argument("--camera", help="with --blend: camera object (default: the scene's camera)")
    p.add_argument("--anchor", help="with --blend: object at the subject (default: the world origin)")
    p.add_argument("--bundle", help="with --blend: bundle whose stage sets the lamps' sizes (default: the "
                                    "shipped bundles' stage)")
    p.add_argument("--rotation", default="0",
                   help="DEG turns the world about the vertical axis; X,Y,Z are Euler XYZ degrees as "
                        "Blender's Mapping node shows them (default 0)")
    p.add_argument("--intensity", type=float, default=1.0, help="multiplies the HDRI radiance (Background strength)")
    p.add_argument("--layout", help="stage layout: default, ringsN, fibN, domeN, or a layout JSON file")
    p.add_argument("--missing", choices=MISSING_POLICIES, default="drop",
                   help="light from below a stage floor: drop it (reported) or give it to the nearest light")
    p.add_argument("--camera-c2w", help="JSON 4x4 Blender camera-to-world; default: front view from -Y")
    p.add_argument("-o", "--output", required=True, help="rig JSON to write")
    p.set_defaults(func=cmd_rig)


def _add_synth(sub) -> None:
    """``relit synth``."""
    p = sub.add_parser("synth", help="render a synthetic subject on a virtual light stage (Blender Cycles)",
                       description="Render a synthetic subject into a capture set: flat-lit, one OLAT per stage "
                                   "light (batched light groups), optional HDRI ground truth and true motion. "
                                   "Resumable: rerun the same command to finish an interrupted set.")
    p.add_argument("--subject", default=None,
                   help="face (the face shell), suzanne, or person (head, hair, ears, neck, shoulders, clothes; "
                        "the default with --identities)")
    p.add_argument("--identities", type=_at_least(0), default=0,
                   help="render N people (seeds SEED..SEED+N-1), one capture set each under -o, with an index "
                        "identities.json recording each one's look and render time")
    p.add_argument("--seed", type=int, default=0, help="subject variation and expression track")
    p.add_argument("--views", type=_at_least(1), default=8, help="cameras on a 120-degree arc in front of the subject")
    p.add_argument("--frames", type=_at_least(1), default=4, help="frames of animated expression")
    p.add_argument("--motion", default="expressions", choices=tuple(MOTIONS),
                   help="how the subject moves: expressions (small changes and a +-12 degree head turn over the "
                        "sequence) or performance (head turns of +-30 degrees, nods, speech, a 12 cm step "
                        "forward: long sequences for relit reconstruct)")
    p.add_argument("--first-frame", type=int, default=1)
    p.add_argument("--camera-seed", type=int, default=None,
                   help="place a person's cameras by this seed instead of --seed: the same person from new "
                        "viewpoints, a capture set to train beside the first (with --first-view past its cameras)")
    p.add_argument("--first-view", type=_at_least(0), default=0,
                   help="number of the first camera (camNN), so that capture sets of one subject name their "
                        "cameras apart")
    p.add_argument("--layout", default="default", help="stage layout: default, ringsN, fibN, domeN or a JSON file")
    p.add_argument("--res", type=_at_least(1), default=128, help="square image size in pixels")
    p.add_argument("--samples", type=_at_least(1), default=64, help="Cycles samples per pixel")
    p.add_argument("--batch", type=_at_least(1), default=8, help="stage lights per OLAT render")
    p.add_argument("--hdris", nargs="*", default=[], help="HDRI ground truth: bundled names (forest ...) or files")
    p.add_argument("--rotations", nargs="*", default=["0"],
                   help="rotations for each HDRI render (DEG or X,Y,Z degrees, as --rotation)")
    p.add_argument("--no-vector", action="store_true", help="skip Cycles' Vector (motion) pass")
    p.add_argument("--no-olats", action="store_true",
                   help="flat-lit only (a multi-view sequence for relit reconstruct), no OLAT renders")
    p.add_argument("--threads", type=_at_least(1), default=2,
                   help="Cycles CPU threads (1 leaves a core free in the background)")
    p.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                   help="render only every N-th view-frame from the K-th (0-based), so N processes fill one "
                        "set together, e.g. --shard 0/2 and --shard 1/2 on two cores")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("-o", "--output", required=True, help="capture set folder")
    p.set_defaults(func=cmd_synth)


def _add_train(sub) -> None:
    """``relit train``."""
    p = sub.add_parser("train", help="train a relighting model on capture sets",
                       description="Train a RelightModel and save a bundle: olat conditioning (DifFRelight: one "
                                   "subject's flat-lit -> one light) or envmap (SynthLight: any person under any "
                                   "lighting -> a target environment, from many people's OLATs). Resumes from the "
                                   "run folder's last checkpoint.")
    p.add_argument("capture", nargs="+", help="capture set folder(s) (relit synth, or a real capture), or a folder "
                                              "of people from relit synth --identities")
    p.add_argument("--conditioning", default=OLAT.name, choices=tuple(CONDITIONINGS),
                   help="; ".join(f"{c.name}: {c.description}" for c in CONDITIONINGS.values()))
    p.add_argument("--holdout-identities", nargs="*", default=[],
                   help="subjects (capture sets) held out entirely for validation, e.g. person-0064")
    p.add_argument("-o", "--output", required=True, help="run folder (checkpoints, metrics.jsonl, bundle/)")
    p.add_argument("--bundle", help="where to write the bundle (default: OUTPUT/bundle)")
    p.add_argument("--preset", default="tiny", help="tiny, small, sd15, sd21")
    p.add_argument("--res", type=_at_least(1), default=64, help="training resolution")
    p.add_argument("--patch", type=_at_least(0), default=0,
                   help="olat: train on random crops of this many pixels (0: whole frames), e.g. --res 256 --patch 64: "
                        "the subject at 256 px for the cost of 64-px steps; the bundle relights by blended tiles")
    p.add_argument("--position", action="store_true",
                   help="with --patch: give the model each pixel's place in the whole frame (two input channels), "
                        "so a patch knows where on the face it lies")
    p.add_argument("--normals", action="store_true",
                   help="give the model the face mesh's normals (three input channels): from the landmarks relit "
                        "synth records, else MediaPipe's on each view; at relight time MediaPipe's on the plate "
                        "(needs relit[portrait])")
    p.add_argument("--steps", type=_at_least(1), default=2000)
    p.add_argument("--objective", default="refine", type=_objective,
                   help="refine (predict-and-refine, default), diffusion (DDPM v-prediction), flow (flat-lit to "
                        "target rectified flow), regression (the deterministic baseline; saves no bundle)")
    p.add_argument("--relative", action="store_true",
                   help="learn the change from the input (through the log tone curve, the log shading ratio) "
                        "instead of the target image; not with --objective flow")
    p.add_argument("--environment-token", action="store_true",
                   help="envmap: also give the target map's order-2 spherical harmonics to every pixel as a "
                        "cross-attention token (besides the map's channels)")
    p.add_argument("--target-lighting", default="any", choices=tuple(TARGET_LIGHTINGS),
                   help="envmap: what the targets are lit by: any drawn lighting (default), or flat: a delighter "
                        "(the plate as shot -> flat-lit, for a general OLAT bundle to relight)")
    p.add_argument("--source-tint", type=_fraction, default=1.0,
                   help="envmap: scale of the chance that a source (plate) light is tinted, 0-1 (default 1: as "
                        "often as the targets; lower keeps a plate's colour, most sets being white-lit)")
    p.add_argument("--shift", type=int, default=0, metavar="PIXELS",
                   help="olat: move each training sample by up to this many pixels at model resolution, "
                        "zero-filled (the light's direction is unchanged; 0, the default: none)")
    p.add_argument("--subject-saturation", type=float, default=0.0, metavar="STRENGTH",
                   help="envmap: saturate each pair's subject along its own hue, input and target alike, by a "
                        "strength drawn up to this (0, the default: the synthetic people's own, paler colours; "
                        "1 doubles the subject's chroma about)")
    p.add_argument("--real-images", nargs="+", default=[], metavar="PHOTO",
                   help="real photos (sRGB or EXR) for a real-image task beside the synthetic pairs; an envmap "
                        "model sees each framed by its face, as it sees plates")
    p.add_argument("--real-share", type=_fraction,
                   help=f"share of each batch given to --real-images (default {DEFAULT_SHARE:g})")
    p.add_argument("--real-task", choices=tuple(REAL_TASKS),
                   help="; ".join(f"{t.name}: {t.description}" for t in REAL_TASKS.values()) +
                        " (default: " + ", ".join(f"{c.real_task} for {c.name}" for c in CONDITIONINGS.values()) + ")")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop after this wall time (0: none)")
    p.add_argument("--batch", type=_at_least(1), default=8)
    p.add_argument("--lr", type=float, default=5e-4, help="peak learning rate")
    p.add_argument("--lr-schedule", default="constant", choices=sorted(LR_SCHEDULES),
                   help=f"constant, or cosine (from --lr down to {LR_FLOOR:g} x --lr at --steps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--holdout-light-every", type=int, default=10, help="hold out every k-th stage light")
    p.add_argument("--holdout-lights", help="stage lights held out for validation, by name or index: L005,L013,...")
    p.add_argument("--holdout-cameras", nargs="*", default=[], help="cameras held out for validation")
    p.add_argument("--holdout-expressions", nargs="*", default=[], help="expressions held out for validation")
    p.add_argument("--val-every", type=_at_least(0), default=500)
    p.add_argument("--val-samples", type=_at_least(1), default=6,
                   help="validation images per split (the same draw at every validation)")
    p.add_argument("--checkpoint-every", type=_at_least(0), default=500)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--base-checkpoint", help="local Stable Diffusion folder (diffusers layout) for sd15/sd21")
    p.add_argument("--init-from", metavar="BUNDLE",
                   help="start from a bundle's weights (train a shipped bundle further once its run folder is "
                        "gone); the run's model settings must match the bundle's. A run folder with checkpoints "
                        "resumes from them instead")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)


def _add_demo(sub) -> None:
    """``relit demo``."""
    p = sub.add_parser("demo", help="relight a synthetic subject end to end (CPU, a few minutes)",
                       description="Render a held-out view of the default bundle's synthetic subject, relight it "
                                   "under two lights and an HDRI, write relit EXR passes and a contact sheet.")
    p.add_argument("-o", "--output", default="out/demo", help="demo folder (default out/demo)")
    p.add_argument("--bundle", help="model bundle (default: the bundled default)")
    p.add_argument("--train", action="store_true", help="train a fresh bundle first (about half an hour on CPU)")
    _steps_flag(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)


def _add_relight(sub) -> None:
    """``relit relight``."""
    p = sub.add_parser("relight", help="relight a plate or a sequence under a rig or an HDRI -> EXR passes",
                       description="Relight flat-lit plates with a model bundle. Lights of a rig become one "
                                   "inference each; an HDRI is relit by projection onto the bundle's stage "
                                   "(stage), by K fitted area lights (area) or by an env-map bundle (envmap). "
                                   "Writes one multi-layer EXR per frame (a layer per light or group, summing "
                                   "to the beauty) into a new version folder OUT/vNNN; a rerun resumes it and "
                                   "skips frames whose inputs did not change.")
    p.add_argument("--bundle", help="model bundle folder (default: the shipped bundle trained on the plate's subject "
                                    "if there is one, else the general portrait bundle; the log says which)")
    p.add_argument("--input", help="flat-lit plate file or sequence pattern (name.####.exr, name.%%04d.exr)")
    p.add_argument("--delight", nargs="?", const=AUTO_DELIGHTER, metavar="BUNDLE",
                   help="make the plate flat-lit first with a delighter bundle (alone: the shipped one), for a plate "
                        "shot under any light; then the bundle (auto: the general OLAT bundle for a plate of "
                        "anyone) relights it with every strategy (two-stage)")
    p.add_argument("--matte", help="matte file or pattern, or auto (default: the plate's alpha, or auto when the "
                                   "plate has none: the person whose face is found, segmented by MediaPipe; with a "
                                   "matte the plate is taken as not premultiplied)")
    p.add_argument("--frames", help="frame range A-B, A-BxSTEP or a comma list (default: every frame found)")
    p.add_argument("--rig", help="LightRig JSON (lights, light groups, an optional environment)")
    p.add_argument("--hdri", help="lat-long HDRI file or a Blender bundled HDRI name (forest, sunset, ...)")
    p.add_argument("--rotation", default="0", help="HDRI rotation: DEG about Z, or X,Y,Z Euler degrees")
    p.add_argument("--intensity", type=float, default=1.0, help="HDRI strength (multiplies its radiance)")
    p.add_argument("--camera-c2w", help="JSON 4x4 Blender camera-to-world the plate is seen from "
                                        "(default: the rig's, else the front view)")
    p.add_argument("--hdri-strategy", choices=tuple(STRATEGIES), default="auto",
                   help="; ".join(f"{s.name}: {s.description}" for s in STRATEGIES.values()))
    p.add_argument("--clusters", type=_at_least(1), default=8, help="area lights for --hdri-strategy area")
    p.add_argument("--missing", choices=MISSING_POLICIES, default="drop",
                   help="HDRI light below the stage floor: drop it (reported) or give it to the nearest light")
    p.add_argument("--basis", action="store_true",
                   help="also write NAME_basis.####.exr: every stage direction's unit-light prediction, to "
                        "relight later in comp by weights alone")
    _steps_flag(p)
    p.add_argument("--consistency", choices=CONSISTENCY,
                   help="stage predictions (environment, basis): ratio pins their irradiance-weighted sum to "
                        "the input; default: the bundle's recipe")
    p.add_argument("--guidance-image", type=float, default=1.0, help="image guidance scale (lambda_I)")
    p.add_argument("--guidance-light", type=float, default=1.0, help="lighting guidance scale (lambda_L)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", choices=SAMPLERS,
                   help="ddim or dpmpp (diffusion and refine bundles), euler (flow bundles), direct (regression); "
                        "default: the bundle's")
    p.add_argument("--samples", type=_at_least(1), default=1,
                   help="samples averaged per light: less sampling grain at samples x the cost")
    p.add_argument("--noise", choices=NOISE_MODES, default="fixed",
                   help="initial noise over a sequence: the same every frame, or carried along optical flow")
    p.add_argument("--temporal", type=float, nargs="?", const=TEMPORAL_WEIGHT, default=0.0, metavar="SHARE",
                   help="blend each relit frame with the previous one carried along the plate's optical flow "
                        f"(forward-backward checked): the share of the previous frame (alone: {TEMPORAL_WEIGHT}; "
                        "default 0: off)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1)")
    p.add_argument("--batch-size", type=_at_least(1), default=16, help="lights per UNet batch")
    p.add_argument("--cache-mb", type=_at_least(0), default=DEFAULT_LIMIT_MB,
                   help="per-light predictions kept in OUT/.cache for reruns that change only intensities, "
                        f"colours or grouping, in MB (default {DEFAULT_LIMIT_MB}; 0: keep none)")
    p.add_argument("--margin", type=float, default=0.1, help="border around the subject when cropping big plates")
    p.add_argument("--colour-space", help="the plates' colour space (default: header, else by file type)")
    p.add_argument("--working-space", default="lin_rec709", help="output scene-linear space: lin_rec709 or acescg")
    p.add_argument("--subject", help="the plate's subject id, when its header does not name it")
    p.add_argument("--allow-other-subject", action="store_true",
                   help="run a subject-specific bundle on another subject's plate (warns)")
    p.add_argument("--name", default="relit", help="output file stem (NAME.####.exr)")
    p.add_argument("--job", help="run this job JSON instead of the flags (the schema the worker and farm use)")
    p.add_argument("--save-job", help="write the job JSON the flags make and exit")
    p.add_argument("--chunk", type=_at_least(1), help="split into work units of this many frames (see relit plan)")
    p.add_argument("--light-chunk", type=_at_least(1),
                   help="and, for the stage strategy and the basis, of this many stage directions (merged per "
                        "frame)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the units on Ray: a local cluster started here, or the cluster at ADDRESS")
    p.add_argument("--workers", type=_at_least(1), default=2, help="Ray workers (each loads the bundle once)")
    p.add_argument("--cpus-per-worker", type=_at_least(1), default=1)
    p.add_argument("--gpus-per-worker", type=float, default=0.0)
    p.add_argument("--units-out", help="where to write the units JSON (default: in the version folder)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("-o", "--output", help="output folder (version folders vNNN are made inside)")
    p.set_defaults(func=cmd_relight)


def _add_comp(sub) -> None:
    """``relit comp``."""
    p = sub.add_parser("comp", help="evaluate a comp graph over relit passes (or build the default one)",
                       description="Evaluate a compositor_nodes graph (JSON) frame by frame with OpenImageIO, "
                                   "writing EXRs atomically; or build the default comp of a pass file "
                                   "(a Shuffle -> Grade branch per light, summed). Optionally export it as a "
                                   "Nuke script.")
    p.add_argument("graph", nargs="?", help="comp graph JSON")
    p.add_argument("--default", metavar="PASSES", help="build the default comp of this pass file or sequence")
    p.add_argument("--plate", help="with --default: the flat-lit plate, read for reference")
    p.add_argument("-o", "--output", help="with --default: the file or name.####.exr the comp writes")
    p.add_argument("--frames", help="frame range A-B (default: the Read nodes' range)")
    p.add_argument("--nuke", help="also write the graph as a Nuke script (.nk)")
    p.add_argument("--save-graph", help="write the graph JSON (e.g. the default one, to edit)")
    p.add_argument("--no-render", action="store_true", help="only write --nuke / --save-graph")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the Write nodes' files when they exist (otherwise the comp refuses to start)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_comp)


def _add_plan(sub) -> None:
    """``relit plan``."""
    p = sub.add_parser("plan", help="split a relight job into work units for a render farm",
                       description="Split JOB.json (relit relight --save-job) into units of --chunk frames per "
                                   "camera (and --light-chunk stage directions, merged per frame) and write "
                                   "units.json with the exact relit run-unit command of each unit. Units are "
                                   "deterministic, write atomically, and skip work already done.")
    p.add_argument("job", help="job JSON")
    p.add_argument("--chunk", type=_at_least(1), required=True, help="frames per unit")
    p.add_argument("--light-chunk", type=_at_least(1), help="stage directions per unit (stage strategy, OLAT basis)")
    p.add_argument("-o", "--output", required=True, help="units JSON to write")
    p.set_defaults(func=cmd_plan)


def _add_run_unit(sub) -> None:
    """``relit run-unit``."""
    p = sub.add_parser("run-unit", help="run one work unit of a plan (what a farm task runs)")
    p.add_argument("units", help="units JSON written by relit plan")
    p.add_argument("--index", type=int, required=True, help="the unit to run")
    p.set_defaults(func=cmd_run_unit)


def _add_import_stage(sub) -> None:
    """``relit import-stage``."""
    p = sub.add_parser("import-stage", help="a light stage's own OLAT files + a stage JSON -> a capture set",
                       description="Read a stage description (format relit-stage: lights as directions or "
                                   "positions, cameras as K or lens/sensor in OpenCV or Blender convention, "
                                   "per-light or multi-layer OLAT files, irradiance or a calibration card) and "
                                   "write a relit capture set. Everything is checked before anything is written. "
                                   "See docs/capture_sets.md.")
    p.add_argument("stage", help="the stage description JSON")
    p.add_argument("-o", "--output", required=True, help="the capture set folder to write (new)")
    p.set_defaults(func=cmd_import_stage)


def _add_reconstruct(sub) -> None:
    """``relit reconstruct``."""
    p = sub.add_parser("reconstruct", help="dynamic 3D Gaussians of a multi-view flat-lit sequence",
                       description="Reconstruct a capture set's flat-lit performance as dynamic 3D Gaussians the "
                                   "scalable way (DifFRelight): a K-frame model, then one model per segment between "
                                   "keyframes, initialised from it. Resumes: finished models are kept.")
    p.add_argument("capture", help="capture set with flat-lit frames from several cameras")
    p.add_argument("--keyframes", type=_at_least(2),
                   help="K, the first and last frame included (default: the preset's, 4)")
    p.add_argument("--preset", help="tiny (CPU, minutes; the default) or production (GPU)")
    p.add_argument("--res", type=_at_least(1), help="training resolution")
    p.add_argument("--gaussians", type=_at_least(1), help="initial Gaussians")
    p.add_argument("--kframe-iterations", type=int)
    p.add_argument("--segment-iterations", type=int)
    p.add_argument("--warmup", type=int, help="frozen-Gaussian warm-up iterations per segment")
    p.add_argument("--overlap", type=_at_least(0),
                   help="frames each segment also trains on past each of its keyframes; renders there dissolve "
                        "from one segment into the next instead of cutting at the keyframe (default: the preset's, 0)")
    p.add_argument("--holdout-cameras", nargs="*", help="cameras never trained on")
    p.add_argument("--frames", help="the capture's frames to reconstruct, e.g. 1-120 (default: every frame)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="train the segments (independent once the K-frame model exists) as Ray tasks")
    p.add_argument("--workers", type=_at_least(1), default=2, help="Ray workers")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("-o", "--output", required=True, help="reconstruction folder")
    p.set_defaults(func=cmd_reconstruct)


def _add_render_views(sub) -> None:
    """``relit render-views``."""
    p = sub.add_parser("render-views", help="render a reconstruction from any camera as flat-lit EXRs",
                       description="Render a relit reconstruct folder from a capture set camera or a JSON camera "
                                   "({K, c2w (Blender), width, height}) at any frames: OUT/flat.####.exr, the input "
                                   "relit relight takes. --ply also writes the Gaussians of each frame (standard "
                                   "3DGS PLY). Frames already rendered are kept (resume).")
    p.add_argument("recon", help="folder relit reconstruct wrote")
    p.add_argument("--camera", help="a camera of the capture set")
    p.add_argument("--camera-json", help="or a JSON camera file")
    p.add_argument("--res", type=_at_least(1), help="output height in pixels for a capture camera (default: its own)")
    p.add_argument("--frames", help="frame range A-B (default: every frame reconstructed)")
    p.add_argument("--ply", action="store_true", help="also export per-frame PLY files")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="render chunks of frames as Ray tasks (a local cluster, or the one at ADDRESS)")
    p.add_argument("--chunk", type=_at_least(1), default=8, help="frames per Ray task")
    p.add_argument("--workers", type=_at_least(1), default=2)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_render_views)


def _add_check_consistency(sub) -> None:
    """``relit check-consistency``."""
    p = sub.add_parser("check-consistency", help="sum of predicted stage OLATs vs the input (no ground truth)",
                       description="Light transport is linear and flat-lit is the sum of all stage lights, so the "
                                   "predictions for every stage direction must add back up to the input plate. "
                                   "Reports that error per frame; works on real plates.")
    p.add_argument("--bundle", required=True)
    p.add_argument("--input", required=True, help="plate file or sequence pattern (####, %%04d)")
    p.add_argument("--matte", help="matte file or sequence, or auto (default: the plate's alpha; the automatic matte "
                                   "where it has none, as relit relight)")
    _steps_flag(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_check_consistency)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relit",
        description="Relight captured faces with diffusion models; write scene-linear EXR passes for comp.",
    )
    parser.add_argument("--version", action="version", version=f"relit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    _add_info(sub)
    _add_rig(sub)
    _add_synth(sub)
    _add_train(sub)
    _add_demo(sub)
    _add_relight(sub)
    _add_comp(sub)
    _add_plan(sub)
    _add_run_unit(sub)
    _add_import_stage(sub)
    _add_reconstruct(sub)
    _add_render_views(sub)
    _add_check_consistency(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except RelitError as e:
        print(f"relit: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
    except OSError as e:
        if e.errno not in OS_FIXES:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print(f"relit: error: {where}{OS_FIXES[e.errno]} (files are written whole or not at all: nothing "
              "finished was lost; rerun to continue)", file=sys.stderr)
        return 2
    return 0


# what the user can do about the operating system's refusals (others are bugs and keep their traceback)
OS_FIXES = {errno.ENOSPC: "disk full: free space there and rerun",
            errno.EDQUOT: "disk quota exceeded: free space there and rerun",
            errno.EACCES: "permission denied: choose a folder you may write to (or read)",
            errno.EROFS: "read-only file system: choose a writable output folder"}


if __name__ == "__main__":
    sys.exit(main())
