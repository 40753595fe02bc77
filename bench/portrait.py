"""The portrait model's training ablations: held-out people, each candidate over seeds, at every
validation step of its runs (``relit train --conditioning envmap`` writes them to metrics.jsonl).

    python bench/portrait.py --runs RUNS_DIR --section portrait-ablation
    python bench/portrait.py --sheet RUN --out docs/portrait_RUN.png   # held-out pairs: input, model, truth
    python bench/portrait.py --eval RUN --regressor RUN2 --out docs/portrait_eval.png --section portrait-eval
    python bench/portrait.py --eval RUN --also RUN3 bundle/portrait --pairs 96 --section ...   # more rows
    python bench/portrait.py --generalisation RUN --regressor RUN2 --pairs 48 --section portrait-generalisation

RUNS_DIR holds one run folder per candidate and seed, named ``CANDIDATE-sSEED``; the candidates'
commands are read from the runs' checkpoints. Every run scores the same held-out pairs (the
validation draw is fixed), so candidates compare pair for pair.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402


def _runs(folder: Path) -> dict[str, dict[int, list[dict]]]:
    """{candidate: {seed: [metrics rows]}} from ``CANDIDATE-sSEED/metrics.jsonl``."""
    out: dict[str, dict[int, list[dict]]] = defaultdict(dict)
    for metrics in sorted(folder.glob("*-s*/metrics.jsonl")):
        match = re.fullmatch(r"(.+)-s(\d+)", metrics.parent.name)
        if match:
            out[match[1]][int(match[2])] = [json.loads(line) for line in metrics.read_text().splitlines() if line]
    return out


def _brace(words: list[str]) -> list[str]:
    """Runs of consecutive numbered words (``a/person-0003 a/person-0004 ...``) as one bash brace range."""
    out: list[str] = []
    run: list[tuple[str, int, str]] = []  # (prefix, number, digits) of the current run

    def flush() -> None:
        if len(run) > 2:
            out.append(f"{run[0][0]}{{{run[0][2]}..{run[-1][2]}}}")
        else:
            out.extend(p + d for p, _, d in run)
        run.clear()

    for word in words:
        match = re.fullmatch(r"(.*?)(\d{4})", word)
        if match and run and match[1] == run[-1][0] and int(match[2]) == run[-1][1] + 1:
            run.append((match[1], int(match[2]), match[2]))
            continue
        flush()
        if match:
            run.append((match[1], int(match[2]), match[2]))
        else:
            out.append(word)
    flush()
    return out


def _command(folder: Path) -> str:
    """The run's command, with runs of numbered people written as bash brace ranges."""
    states = sorted(folder.glob("checkpoints/step_*/state.json"))
    command = json.loads(states[-1].read_text())["config"].get("command", "") if states else ""
    return " ".join(_brace(command.split()))


def _cell(values: list[float]) -> str:
    if not values:
        return ""
    return f"{np.mean(values):.2f}" + (f" ± {np.std(values):.2f}" if len(values) > 1 else "")


def table(folder: Path) -> str:
    runs = _runs(folder)
    key = next((k for rows in runs.values() for r in rows.values() for k in r[0] if k.endswith("_env_psnr")), None)
    if key is None:
        raise SystemExit(f"{folder}: no envmap runs (CANDIDATE-sSEED/metrics.jsonl)")
    split = key.removesuffix("_env_psnr")
    steps = sorted({r["step"] for rows in runs.values() for seed in rows.values() for r in seed})
    lines = ["| candidate | seeds | " + " | ".join(f"step {s}" for s in steps) + " | SSIM at the last step |",
             "| --- | ---: | " + " | ".join("---:" for _ in steps) + " | ---: |"]
    baseline = []
    for name, seeds in sorted(runs.items()):
        cells = []
        for s in steps:
            cells.append(_cell([r[key] for rows in seeds.values() for r in rows if r["step"] == s]))
        last = [rows[-1][f"{split}_env_ssim"] for rows in seeds.values()]
        baseline += [rows[-1][f"{split}_input_x_constant_psnr"] for rows in seeds.values()]
        lines.append(f"| {name} | {len(seeds)} | " + " | ".join(cells) + f" | {_cell(last)} |")
    lines.append("| input x best constant (the scale fitted to the truth) | | "
                 + " | ".join(_cell(sorted(set(baseline))) for _ in steps) + " | |")
    commands = [f"- `{name}`: `{_command(folder / f'{name}-s{min(seeds)}')}`"
                for name, seeds in sorted(runs.items())]
    return ("\n".join(lines) + "\n\nRuns (seed 0's command; the others differ in `--seed` only):\n\n"
            + "\n".join(commands))


def sheet(run: Path, out: Path, pairs: int = 16, shown: int = 6) -> str:
    """A contact sheet of held-out pairs (input, the run's last checkpoint, truth) and a table of the
    per-pair scores, with the scale fitted to the truth for the input and for the model (what is left
    when the exposure is given away)."""
    import torch

    from core.io.preview import contact_sheet
    from core.model.metrics import best_scale, psnr, ssim
    from core.model.train import TrainConfig, Trainer

    torch.set_num_threads(1)
    state = sorted(run.glob("checkpoints/step_*/state.json"))[-1]
    trainer = Trainer(TrainConfig(**json.loads(state.read_text())["config"]))
    pipe = trainer.pipeline(trainer.ema_model())
    batch = trainer.data.sample_portrait(np.random.default_rng(1234), pairs, trainer.split.val_views,
                                         trainer.environments, *_mixes(trainer), distinct=True)
    rows, tiles = [], []
    for b in range(pairs):
        x, y, m = batch["flat"][b], batch["target"][b], batch["alpha"][b] > 0.5
        p = pipe(x, environment=batch["environment"][b:b + 1], num_inference_steps=1,
                 normals=_geometry(pipe, batch.get("normals", [None] * pairs)[b])).images[0]
        cx, cp = best_scale(x, y, m), best_scale(p, y, m)
        rows.append([psnr(cx * x, y, m), psnr(p, y, m), psnr(cp * p, y, m), ssim(cx * x, y, m), ssim(p, y, m)])
        if b < shown:
            tiles += [(f"input {b}", x, 0.0), (f"model {b}", p, 0.0), (f"truth {b}", y, 0.0)]
    contact_sheet(out, tiles, 3, title=f"{run.name} step {trainer.step}: held-out people", scale=3)
    mean = np.mean(rows, axis=0)
    return ("| pairs | input x fitted scale | model | model x fitted scale | SSIM input x scale | SSIM model |\n"
            "| ---: | ---: | ---: | ---: | ---: | ---: |\n"
            f"| {pairs} | {mean[0]:.2f} dB | {mean[1]:.2f} dB | {mean[2]:.2f} dB | {mean[3]:.3f} | {mean[4]:.3f} |")


def _mixes(trainer) -> tuple:
    """(target, source) lighting mixes of a run's scored pairs, as its validation draws them."""
    from core.lighting.random_lighting import TARGET_LIGHTINGS, LightingMix

    return TARGET_LIGHTINGS[trainer.cfg.target_lighting], LightingMix()


def _trainer(run: Path):
    from core.model.train import TrainConfig, Trainer

    state = sorted(run.glob("checkpoints/step_*/state.json"))[-1]
    return Trainer(TrainConfig(**json.loads(state.read_text())["config"]))


def _mesh_shading(x: np.ndarray, environment: np.ndarray) -> np.ndarray | None:
    """The physically based estimate on one pair: MediaPipe's face mesh fitted to the input as a
    photo, the input's lighting fitted as SH, the face times target / source irradiance (the rest
    of the subject follows the face's median ratio); None when no face is found."""
    import torch

    from core.model.envmap import environment_sh
    from core.portrait.face_geometry import face_normals, shading_relight
    from core.portrait.matte import display_rgb8

    exposure = 1.0 / max(float(np.percentile(x, 99)), 1e-6)  # display the input as a photo would be
    found = face_normals(display_rgb8(x * exposure))
    if found is None or found[1].sum() < 20:
        return None
    sh = environment_sh(torch.from_numpy(environment[None])).numpy().reshape(3, -1).T  # [9, 3]
    return shading_relight(x, found[0], found[1], sh)


ORACLE_SIGMAS = (4.0, 2.0)  # px at model resolution: the shading-only oracles' blur


def _ratio_oracle(x: np.ndarray, y: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:  # [H, W, 3]
    """The input times the truth / input ratio blurred at ``sigma`` px over the subject: what a model
    that changes only the shading, at that sharpness, could reach at best (it is told the truth)."""
    import cv2

    w = mask.astype(np.float32)[..., None]
    blur = lambda a: cv2.GaussianBlur(a, (0, 0), sigma)  # noqa: E731
    return x * (blur(y * w) + 1e-4) / (blur(x * w) + 1e-4)


def _model(path: Path, role: str) -> tuple[str, tuple]:
    """(row name, (pipeline, sampler steps)) of a run folder's last checkpoint (its EMA weights, at
    its objective's default steps) or of a bundle folder (a shipped model whose run folder is gone,
    at its recipe's steps)."""
    if (path / "relit.json").exists():
        from core.model.bundle import load_bundle

        pipe, info = load_bundle(path)
        steps = int(info.recipe["steps"])
        return f"{role}: bundle {info.id}" + ("" if steps else " (mean pass)"), (pipe, steps)
    trainer = _trainer(path)
    return (f"{role}: {path.name} (step {trainer.step})",
            (trainer.pipeline(trainer.ema_model()), trainer.objective.default_steps))


def _geometry(pipe, normals: np.ndarray | None) -> np.ndarray | None:  # [H, W, 3] or None
    """A view's face normals (the run's data: recorded landmarks, jittered as MediaPipe errs) for a
    model that takes them."""
    if not pipe.model.config.normals:
        return None
    if normals is None:
        raise SystemExit("a model here takes face normals: score it as the run (its data has them), not beside one")
    return normals


def _stage_relight(pipe, steps: int, flat: np.ndarray, dirs: np.ndarray, weights: np.ndarray,
                   irradiance: np.ndarray | None, normals: np.ndarray | None, seed: int) -> tuple[np.ndarray, int]:
    """An OLAT model's stage relight of one view, as relit's stage strategy does it: every stage
    light predicted from ``flat`` [H, W, 3] (its own initial noise per light, as core.relight draws
    it), ratio-corrected to ``flat`` when ``irradiance`` [N, 3] is given, weighted by the target
    lighting's projection ``weights`` [N, 3] on the stage. Returns the image and the UNet evaluations."""
    from core.model.consistency import ratio_correct

    noise = np.random.default_rng([seed, len(dirs)]).standard_normal(
        (len(dirs),) + pipe.latent_shape()).astype(np.float32)
    out = pipe(flat, dirs, np.zeros(len(dirs)), num_inference_steps=steps, noise=noise, batch_size=32,
               normals=_geometry(pipe, normals))
    stage = out.images if irradiance is None else ratio_correct(out.images, irradiance, flat)
    return np.einsum("nc,nhwc->hwc", weights, stage), out.evaluations


def _pipes(run: Path, regressor: Path | None, also: list[Path] = ()) -> dict:
    """Name -> (pipeline, sampler steps) of the run's model, the regressor's and any other runs' or bundles'."""
    pipes = dict([_model(run, "model")] + [_model(p, "model") for p in also])
    if regressor is not None:
        pipes.update([_model(regressor, "regressor")])
    return pipes


def generalisation(run: Path, regressor: Path | None, pairs: int) -> str:
    """The same random lighting pairs on training people and on held-out people: PSNR with the scale
    fitted to the truth, and the gain over the input times that scale. Equal gains mean the model
    is not fitted to the people it saw; the held-out pairs alone cannot say it, their difficulty
    varies with the lightings drawn."""
    import torch

    from core.model.metrics import best_scale, psnr

    torch.set_num_threads(1)
    trainer = _trainer(run)
    pipes = _pipes(run, regressor)
    data, split, rng = trainer.data, trainer.split, np.random.default_rng(7)
    names = ["input x fitted scale", *pipes, *(f"oracle: shading ratio blurred {s:g} px" for s in ORACLE_SIGMAS)]
    scores = {side: {name: [] for name in names} for side in ("training", "held-out")}
    for b in range(pairs):
        train_view, held_view = int(rng.choice(split.train_views)), int(rng.choice(split.val_views))
        lightings = data.portrait_lightings(rng, train_view, trainer.environments, *_mixes(trainer), distinct=True)
        for side, view in (("training", train_view), ("held-out", held_view)):
            x, y, env = data.portrait_pair(view, *lightings)
            m = data.alpha[view] > 0.5
            preds = {"input x fitted scale": x}
            preds.update({name: pipe(x, environment=env[None], num_inference_steps=steps, seed=b,
                                     normals=_geometry(pipe, data.view_normals(view))).images[0]
                          for name, (pipe, steps) in pipes.items()})
            preds.update({f"oracle: shading ratio blurred {s:g} px": _ratio_oracle(x, y, m, s) for s in ORACLE_SIGMAS})
            for name, p in preds.items():
                scores[side][name].append(psnr(best_scale(p, y, m) * p, y, m))
    lines = ["| method | training people: PSNR x fitted scale | held-out people | gain over input x scale: "
             "training | held-out |", "| --- | ---: | ---: | ---: | ---: |"]
    base = {side: np.array(scores[side]["input x fitted scale"]) for side in scores}
    for name in names:
        t, h = np.array(scores["training"][name]), np.array(scores["held-out"][name])
        lines.append(f"| {name} | {t.mean():.2f} dB | {h.mean():.2f} dB | {np.mean(t - base['training']):+.2f} dB | "
                     f"{np.mean(h - base['held-out']):+.2f} dB |")
    return (f"{pairs} random lighting pairs (source and target drawn alike, never the same lighting), each "
            f"applied to a view of a training person and a view of a held-out person.\n\n" + "\n".join(lines))


def evaluate(run: Path, regressor: Path | None, out: Path | None, pairs: int, shown: int = 6,
             also: list[Path] = ()) -> str:
    """Held-out pairs scored for the run's model and every baseline: PSNR, SSIM and HDR-FLIP as
    predicted and with the scale fitted to the truth, and a contact sheet."""
    import torch

    from core.io.preview import contact_sheet
    from core.model.metrics import best_scale, flip, psnr, ssim

    torch.set_num_threads(1)
    trainer = _trainer(run)
    rows = {"input (unchanged)": [], "input x fitted scale": [], "mesh shading (SH, face mesh)": []}
    pipes = _pipes(run, regressor, also)
    rows.update({name: [] for name in pipes})
    rows.update({f"oracle: shading ratio blurred {s:g} px": [] for s in ORACLE_SIGMAS})
    batch = trainer.data.sample_portrait(np.random.default_rng(1234), pairs, trainer.split.val_views,
                                         trainer.environments, *_mixes(trainer), distinct=True)
    found, tiles = 0, []
    for b in range(pairs):
        x, y, m, env = batch["flat"][b], batch["target"][b], batch["alpha"][b] > 0.5, batch["environment"][b]
        shaded = _mesh_shading(x, env)
        found += shaded is not None
        preds = {"input (unchanged)": x, "input x fitted scale": best_scale(x, y, m) * x,
                 "mesh shading (SH, face mesh)": x if shaded is None else shaded}
        for name, (pipe, steps) in pipes.items():
            preds[name] = pipe(x, environment=env[None], num_inference_steps=steps, seed=b,
                               normals=_geometry(pipe, batch.get("normals", [None] * pairs)[b])).images[0]
        preds.update({f"oracle: shading ratio blurred {s:g} px": _ratio_oracle(x, y, m, s) for s in ORACLE_SIGMAS})
        for name, p in preds.items():
            c = best_scale(p, y, m)
            rows[name].append([psnr(p, y, m), ssim(p, y, m), flip(p, y, m), psnr(c * p, y, m), ssim(c * p, y, m)])
        if b < shown:
            tiles += [(f"input {b}", x, 0.0), ("mesh shading", preds["mesh shading (SH, face mesh)"], 0.0)]
            tiles += [(name.split(": ", 1)[1][:24], preds[name], 0.0) for name in pipes] + [(f"truth {b}", y, 0.0)]
    if out is not None:
        contact_sheet(out, tiles, 3 + len(pipes), title=f"{run.name}: held-out people, input / baselines / truth",
                      scale=3)
    lines = ["| method | PSNR | SSIM | HDR-FLIP | PSNR x fitted scale | SSIM x fitted scale |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, values in rows.items():
        v = np.mean(values, axis=0)
        lines.append(f"| {name} | {v[0]:.2f} dB | {v[1]:.3f} | "
                     f"{v[2]:.3f} | {v[3]:.2f} dB | {v[4]:.3f} |")
    people = sorted({trainer.data.views[i].identity for i in trainer.split.val_views})
    return (f"{pairs} held-out pairs of {len(people)} people never trained on ({people[0]} ... {people[-1]}), "
            f"no pair's target lighting its source's; "
            f"MediaPipe found the face on {found} of {pairs} inputs (the mesh-shading row leaves the others "
            f"unchanged).\n\n" + "\n".join(lines))


def two_stage(run: Path, delighter: Path, olat: Path, pairs: int, out: Path | None = None, shown: int = 5) -> str:
    """Issue 24's two-stage design beside SynthLight's single pass, on the run's held-out pairs: a
    general delighter (an envmap model trained to the flat-lit, ``--target-lighting flat``) turns
    the input flat-lit, then a general OLAT model trained on the same people relights that by the
    stage strategy (every stage light, ratio-corrected to the delighted image, weighted by the target
    lighting's projection on the stage). Rows also give each stage its ceiling: the OLAT stage on the
    true flat-lit, and the delighter against the true flat-lit. ``out``: a contact sheet of the first
    ``shown`` pairs."""
    import torch

    from core.io.preview import contact_sheet
    from core.lighting.hdri import project_to_layout
    from core.model.metrics import best_scale, flip, psnr, ssim

    torch.set_num_threads(1)
    trainer = _trainer(run)
    data = trainer.data
    (name, (pipe, steps)), (_, (dl_pipe, dl_steps)), (_, (olat_pipe, olat_steps)) = (
        _model(run, "model"), _model(delighter, "delighter"), _model(olat, "olat"))
    uniform = np.ones((16, 32, 3), np.float32)  # unit radiance everywhere: the flat-lit's lighting
    rng = np.random.default_rng(1234)  # the draws of evaluate()'s pairs, with their lightings kept
    views = rng.choice(trainer.split.val_views, size=pairs)
    names = ["input x fitted scale", name, "two-stage: delighter -> OLAT stage",
             "OLAT stage on the true flat-lit (second stage's ceiling)", "delighter vs the true flat-lit"]
    rows = {n: [] for n in names}
    stage_evals, tiles = 0, []
    for b, v in enumerate(views):
        lit, goal = data.portrait_lightings(rng, int(v), trainer.environments, *_mixes(trainer), distinct=True)
        x, y, env = data.portrait_pair(int(v), lit, goal)
        m = data.alpha[v] > 0.5
        flat_true, _, flat_env = data.portrait_pair(int(v), uniform, uniform)
        normals = data.view_normals(int(v))
        delit = dl_pipe(x, environment=flat_env[None], num_inference_steps=dl_steps, seed=b,
                        normals=_geometry(dl_pipe, normals)).images[0]
        weights = project_to_layout(goal, data.layout, (0.0, 0.0, 0.0)).weights  # [N, 3]
        dirs = data.camera_directions(int(v))

        two, stage_evals = _stage_relight(olat_pipe, olat_steps, delit, dirs, weights, data.irradiance, normals, b)
        preds = {"input x fitted scale": best_scale(x, y, m) * x, "two-stage: delighter -> OLAT stage": two,
                 "OLAT stage on the true flat-lit (second stage's ceiling)": _stage_relight(
                     olat_pipe, olat_steps, flat_true, dirs, weights, data.irradiance, normals, b)[0],
                 name: pipe(x, environment=env[None], num_inference_steps=steps, seed=b,
                            normals=_geometry(pipe, normals)).images[0]}
        for key, p in preds.items():
            rows[key].append([psnr(p, y, m), ssim(p, y, m), flip(p, y, m)])
        if b < shown:
            tiles += [(f"input {b}", x, 0.0), (f"delighted {b}", delit, 0.0), (f"true flat-lit {b}", flat_true, 0.0),
                      (f"two-stage {b}", two, 0.0), (f"single pass {b}", preds[name], 0.0), (f"truth {b}", y, 0.0)]
        rows["delighter vs the true flat-lit"].append([psnr(delit, flat_true, m), ssim(delit, flat_true, m),
                                                       flip(delit, flat_true, m)])
    lines = ["| method | PSNR | SSIM | HDR-FLIP | UNet evaluations per relight |",
             "| --- | ---: | ---: | ---: | ---: |"]
    cost = {name: pipe.evaluations(steps),
            "two-stage: delighter -> OLAT stage": dl_pipe.evaluations(dl_steps) + stage_evals}
    for key, values in rows.items():
        v = np.mean(values, axis=0)
        lines.append(f"| {key} | {v[0]:.2f} dB | {v[1]:.3f} | {v[2]:.3f} | {cost.get(key, '')} |")
    if out is not None:
        contact_sheet(out, tiles, 6, title=f"two-stage design on held-out people ({delighter.name}, {olat.name})",
                      scale=3)
    return (f"{pairs} held-out pairs of {run.name}'s held-out people (the pairs of `--eval`); delighter "
            f"{delighter}, OLAT model {olat}.\n\n" + "\n".join(lines))


def guidance_grid(run: Path, pairs: int, image_scales: list[float], light_scales: list[float]) -> str:
    """Dual classifier-free guidance (SynthLight: lambda_I on the input image, lambda_L on the target
    lighting) on a grid, scored on the same held-out pairs: PSNR / SSIM per cell."""
    import torch

    from core.model.metrics import psnr, ssim

    torch.set_num_threads(1)
    trainer = _trainer(run)
    pipe, steps = trainer.pipeline(trainer.ema_model()), trainer.objective.default_steps
    batch = trainer.data.sample_portrait(np.random.default_rng(1234), pairs, trainer.split.val_views,
                                         trainer.environments, *_mixes(trainer), distinct=True)
    lines = ["| lambda_I \\ lambda_L | " + " | ".join(f"{g:g}" for g in light_scales) + " |",
             "| ---: |" + " ---: |" * len(light_scales)]
    for gi in image_scales:
        cells = []
        for gl in light_scales:
            scores = []
            for b in range(pairs):
                x, y, m = batch["flat"][b], batch["target"][b], batch["alpha"][b] > 0.5
                p = pipe(x, environment=batch["environment"][b:b + 1], num_inference_steps=steps, guidance_image=gi,
                         guidance_light=gl, seed=b, normals=_geometry(pipe, batch.get("normals", [None] * pairs)[b])
                         ).images[0]
                scores.append((psnr(p, y, m), ssim(p, y, m)))
            v = np.mean(scores, axis=0)
            cells.append(f"{v[0]:.2f} dB / {v[1]:.3f}")
        lines.append(f"| {gi:g} | " + " | ".join(cells) + " |")
    return (f"{run.name} (step {trainer.step}), {steps} sampler step(s), {pairs} held-out pairs; PSNR / SSIM "
            "(1 / 1 is no guidance: one UNet branch; otherwise three).\n\n" + "\n".join(lines))


def subject_comparison(run: Path, bundle: Path, pairs: int, regressor: Path | None = None,
                       envmap: Path | None = None, delight_olat: tuple[Path, Path] | None = None,
                       also: list[Path] = (), out: Path | None = None, shown: int = 5) -> str:
    """The general model against subject-specific bundles of one held-out person, on pairs of that
    person only (any source lighting -> a target environment). The portrait models see the view under
    the source lighting. The subject's OLAT bundle relights the target by the stage strategy (every
    stage light, weighted by the target's projection, with its recipe's ratio correction) from its
    flat-lit capture (what an artist with a light-stage capture of the actor gets from a flat-lit
    plate) and, with ``delight_olat`` (DELIGHTER, general OLAT), from the delighted view: the same input
    as the portrait models. ``envmap``: a subject-specific envmap model (the portrait recipe trained
    on that person alone), given the same input as the portrait models: the same task, one person.
    ``out``: a contact sheet of the first ``shown`` pairs, every row's prediction beside the truth."""
    import torch

    from core.io.preview import contact_sheet
    from core.lighting.hdri import project_to_layout
    from core.model.bundle import load_bundle
    from core.model.metrics import best_scale, flip, psnr, ssim

    torch.set_num_threads(1)
    trainer = _trainer(run)
    data = trainer.data
    sp_pipe, sp_info = load_bundle(bundle)
    views = [i for i in trainer.split.val_views if data.views[i].identity == sp_info.subject]
    if not views:
        raise SystemExit(f"{bundle}: its subject {sp_info.subject} is not among {run.name}'s held-out people")
    pipes = _pipes(run, regressor, also)
    if envmap is not None:
        label, model = _model(envmap, "subject-specific envmap model")
        envmap_name = f"{label} (the same input)"
        pipes[envmap_name] = model
    sp_steps = int(sp_info.recipe["steps"])
    sp_irradiance = (np.asarray(sp_info.stage_irradiance, np.float32)
                     if sp_info.recipe.get("consistency") == "ratio" else None)
    flat_name = f"subject-specific OLAT: {sp_info.id}, its flat-lit capture in (another input)"
    names = ["input x fitted scale", *pipes, flat_name]
    if delight_olat is not None:
        (_, (dl_pipe, dl_steps)), (_, (olat_pipe, olat_steps)) = _model(delight_olat[0], "delighter"), _model(
            delight_olat[1], "olat")
        names += ["two-stage: delighter -> general OLAT (the same input)",
                  f"two-stage: delighter -> subject-specific OLAT {sp_info.id} (the same input)"]
    rows: dict = {name: [] for name in names}
    short = {flat_name: "subject OLAT, flat-lit in"}  # the sheet's labels
    if envmap is not None:
        short[envmap_name] = "subject envmap model"
    if delight_olat is not None:
        short.update({names[-2]: "delit > general OLAT", names[-1]: "delit > subject OLAT"})
    uniform = np.ones((16, 32, 3), np.float32)  # unit radiance everywhere: the flat-lit's lighting
    rng = np.random.default_rng(1234)
    tiles = []
    for k in range(pairs):
        v = views[k % len(views)]
        source, goal = data.portrait_lightings(rng, v, trainer.environments, *_mixes(trainer), distinct=True)
        x, y, env = data.portrait_pair(v, source, goal)
        m = data.alpha[v] > 0.5
        normals, dirs = data.view_normals(v), data.camera_directions(v)
        weights = project_to_layout(goal, data.layout, (0.0, 0.0, 0.0)).weights  # [N, 3]
        preds = {"input x fitted scale": best_scale(x, y, m) * x}
        for name, (pipe, steps) in pipes.items():
            preds[name] = pipe(x, environment=env[None], num_inference_steps=steps, seed=k,
                               normals=_geometry(pipe, normals)).images[0]
        preds[flat_name] = _stage_relight(sp_pipe, sp_steps, data.flat[v], dirs, weights, sp_irradiance, normals,
                                          k)[0]
        if delight_olat is not None:
            flat_env = data.portrait_pair(v, uniform, uniform)[2]
            delit = dl_pipe(x, environment=flat_env[None], num_inference_steps=dl_steps, seed=k,
                            normals=_geometry(dl_pipe, normals)).images[0]
            preds[names[-2]] = _stage_relight(olat_pipe, olat_steps, delit, dirs, weights, data.irradiance,
                                              normals, k)[0]
            preds[names[-1]] = _stage_relight(sp_pipe, sp_steps, delit, dirs, weights, sp_irradiance, normals, k)[0]
        for name, p in preds.items():
            rows[name].append([psnr(p, y, m), ssim(p, y, m), flip(p, y, m)])
        if k < shown:
            tiles += [(f"input {k}", x, 0.0), *((short.get(n, n.split(": ", 1)[-1])[:24], preds[n], 0.0)
                                                for n in names[1:]), (f"truth {k}", y, 0.0)]
    if out is not None:
        contact_sheet(out, tiles, len(names) + 1, title=f"{sp_info.subject}: input / each method / truth", scale=3)
    lines = ["| method | PSNR | SSIM | HDR-FLIP |", "| --- | ---: | ---: | ---: |"]
    for name, values in rows.items():
        v = np.mean(values, axis=0)
        lines.append(f"| {name} | {v[0]:.2f} dB | {v[1]:.3f} | {v[2]:.3f} |")
    return (f"{pairs} pairs of {sp_info.subject} ({len(views)} views), never seen by {run.name}; no pair's target "
            f"its source. The subject's OLAT bundle: `{sp_info.training.get('command', '')}`.\n\n" + "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, help="folder of CANDIDATE-sSEED run folders")
    parser.add_argument("--sheet", type=Path, help="a run folder: contact sheet of held-out pairs (with --out)")
    parser.add_argument("--out", type=Path, help="the contact sheet's PNG")
    parser.add_argument("--eval", type=Path, help="a run folder: its model and the baselines on held-out pairs")
    parser.add_argument("--regressor", type=Path,
                        help="with --eval and --generalisation: the same-size deterministic regressor's run")
    parser.add_argument("--also", type=Path, nargs="+", default=[], help="with --eval (and --subject-bundle): more "
                        "run folders or bundle folders scored on the same pairs (e.g. the shipped bundle/portrait)")
    parser.add_argument("--two-stage", type=Path, nargs=2, metavar=("DELIGHTER", "OLAT"),
                        help="with --eval: the two-stage design (a delighter run or bundle, then a general OLAT "
                        "run or bundle by the stage strategy) scored on the same pairs")
    parser.add_argument("--pairs", type=int, default=48, help="with --eval and --generalisation: pairs scored")
    parser.add_argument("--generalisation", type=Path, help="a run folder: the same lightings on training and "
                        "held-out people (with --regressor, --pairs)")
    parser.add_argument("--guidance", type=Path, help="a run folder: its dual-guidance grid on held-out pairs")
    parser.add_argument("--image-scales", type=float, nargs="+", default=[1.0, 1.5, 2.0], help="with --guidance")
    parser.add_argument("--light-scales", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0],
                        help="with --guidance")
    parser.add_argument("--subject-bundle", type=Path, help="with --eval: compare on the pairs of this "
                        "subject-specific bundle's person (one of the run's held-out people) instead; with "
                        "--two-stage, its OLAT bundle is also given the delighted view")
    parser.add_argument("--subject-envmap", type=Path, help="with --subject-bundle: a subject-specific envmap "
                        "run or bundle of the same person, scored on the same inputs as the portrait model")
    parser.add_argument("--section", default="portrait-ablation", help="docs/benchmarks.md section to write")
    parser.add_argument("--title", default="Portrait model: candidates on held-out people")
    args = parser.parse_args()
    if args.sheet:
        print(sheet(args.sheet, args.out or Path(f"{args.sheet.name}.png")))
        return
    if args.guidance or args.eval or args.generalisation:
        command = " ".join(["python bench/portrait.py", *sys.argv[1:]])
        if args.guidance:
            title = ": dual classifier-free guidance"
            result = guidance_grid(args.guidance, args.pairs, args.image_scales, args.light_scales)
        elif args.subject_bundle:
            title = " against a subject-specific bundle of a held-out person"
            result = subject_comparison(args.eval, args.subject_bundle, args.pairs, args.regressor,
                                        args.subject_envmap, args.two_stage, args.also,
                                        args.out)
        elif args.two_stage:
            title = ": the two-stage design (delighter, then a general OLAT model) on held-out people"
            result = two_stage(args.eval, *args.two_stage, args.pairs, args.out)
        elif args.generalisation:
            title = ": training people against held-out people"
            result = generalisation(args.generalisation, args.regressor, args.pairs)
        else:
            title = " against its baselines on held-out people"
            result = evaluate(args.eval, args.regressor, args.out, args.pairs, also=args.also)
        body = f"## Portrait model{title} (`{command}`)\n\nOn {machine()}, one torch thread.\n\n{result}\n"
        if args.section != "portrait-ablation":
            write_section(args.section, body)
        print(body)
        return
    if not args.runs:
        parser.error("give --runs (the ablation table) or --sheet (a run's contact sheet)")
    body = (f"## {args.title} (`python bench/portrait.py --runs {args.runs.name} --section {args.section}`)\n\n"
            f"PSNR (dB, mean ± sd over seeds) on the held-out people's pairs at each validation step, on "
            f"{machine()}, one torch thread per run.\n\n{table(args.runs)}\n")
    write_section(args.section, body)
    print(body)


if __name__ == "__main__":
    main()
