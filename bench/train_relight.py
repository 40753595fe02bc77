"""The training-recipe ablation: every objective on the same capture set, the same number of
optimizer steps and the same seeds, scored against the baselines.

Rows: each objective (core.model.objectives), the same-size deterministic regressor, flat-lit x
best constant, the nearest training OLAT, and the oracle where one exists. Columns: held-out
lights, held-out view, training lights (PSNR / SSIM / HDR-FLIP), HDRI by the stage strategy (raw
and ratio-corrected), by K = 16 area lights, the white environment (raw: its truth is the input),
and UNet evaluations per light. Also: quality against sampler steps and lighting guidance.

Each seed is one process (trainings resume from their run folders), then ``--report`` writes
the table:

    python bench/train_relight.py --capture out/cap --steps 1500 --seeds 0      # one per seed
    python bench/train_relight.py --capture out/cap --steps 1500 --seeds 0 1 2 --report
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402
from core.lighting.area import beta_from_radius, sg_cell_weights  # noqa: E402
from core.lighting.camera import world_to_camera_directions  # noqa: E402
from core.lighting.cluster import cluster_environment  # noqa: E402
from core.lighting.hdri import load_environment, project_to_layout  # noqa: E402
from core.model.metrics import best_scale, flip, psnr, ssim  # noqa: E402
from core.model.train import TrainConfig, Trainer  # noqa: E402
from core.model.consistency import ratio_correct  # noqa: E402
from core.lighting.hdri import resolve_hdri  # noqa: E402

HOLDOUT_CAMERA = "cam05"
OBJECTIVES = ("diffusion", "flow", "refine")
ENVIRONMENTS = (("forest", (0.0, 0.0, 30.0)), ("sunset", (20.0, -35.0, 110.0)))
STEP_CURVE = (1, 4, 10, 30)
GUIDANCE = (1.0, 1.5, 2.0, 3.0)
CLUSTERS = 16


def score(pred, truth, mask) -> list[float]:
    return [psnr(pred, truth, mask), ssim(pred, truth, mask), flip(pred, truth, mask)]


class Predictor:
    """One trained model's EMA pipeline with independent noise per light (as relit relight draws it)."""

    def __init__(self, trainer: Trainer, pipe=None):
        self.trainer = trainer
        self.pipe = pipe if pipe is not None else trainer.pipeline(trainer.ema_model())

    def __call__(self, view: int, dirs: np.ndarray, betas: np.ndarray | None = None, steps: int = 10,
                 seed: int = 0, guidance_light: float = 1.0, guidance_image: float = 1.0) -> np.ndarray:
        shape = (len(dirs),) + self.pipe.latent_shape()
        noise = np.random.default_rng([seed, view, len(dirs)]).standard_normal(shape).astype(np.float32)
        return self.pipe(self.trainer.data.flat[view], dirs, np.zeros(len(dirs)) if betas is None else betas,
                         num_inference_steps=steps, noise=noise, guidance_light=guidance_light,
                         guidance_image=guidance_image, batch_size=32,
                         normals=self.trainer.data.view_normals(view)).images  # (None without normals)


def light_sets(trainer: Trainer) -> dict[str, list[tuple[int, np.ndarray]]]:
    data, split = trainer.data, trainer.split
    rng = np.random.default_rng(7)
    return {"held-out lights": [(v, split.val_lights) for v in split.train_views[::2]],
            "held-out view": [(v, rng.choice(len(data.layout), 12, replace=False)) for v in split.val_views],
            "training lights": [(v, rng.choice(split.train_lights, 8, replace=False)) for v in split.train_views[1::3]]}


def baselines(trainer: Trainer) -> dict:
    """Flat-lit x best constant and the nearest training OLAT on the per-light sets."""
    data, split = trainer.data, trainer.split
    train_dirs = data.layout.directions[split.train_lights]
    out: dict = {}
    for name, items in light_sets(trainer).items():
        flat_rows, near_rows = [], []
        for v, lights in items:
            mask = data.alpha[v] > 0.5
            flat = data.flat[v]
            for i in lights:
                truth = data.olat[v, i].astype(np.float32)
                flat_rows.append(score(flat * best_scale(flat, truth, mask), truth, mask))
                nearest = split.train_lights[int(np.argmax(train_dirs @ data.layout.directions[i]))]
                if nearest != i:
                    near_rows.append(score(data.olat[v, nearest].astype(np.float32), truth, mask))
        out[name] = {"flat x best constant": np.mean(flat_rows, 0).tolist()}
        if near_rows:
            out[name]["nearest training OLAT"] = np.mean(near_rows, 0).tolist()
    return out


def environments(trainer: Trainer) -> list[dict]:
    """Per (held-out view frame, HDRI): stage weights, area lights and the composed truth."""
    data, split = trainer.data, trainer.split
    layout = data.layout
    out = []
    for v in split.val_views[:1]:
        c2w = data.views[v].c2w
        for name, deg in ENVIRONMENTS:
            rotation = tuple(math.radians(x) for x in deg)
            pixels = load_environment(resolve_hdri(name))
            w = project_to_layout(pixels, layout, rotation).weights                      # [N, 3]
            truth = np.einsum("nhwc,nc->hwc", data.olat[v].astype(np.float32), w)
            found = cluster_environment(pixels, CLUSTERS, rotation, 1.0, layout)
            centres = np.stack([a.direction for a in found.lights])
            beta = beta_from_radius(np.array([a.radius for a in found.lights]), trainer.model_config.stage_radius)
            energy = np.stack([a.energy for a in found.lights])
            oracle = sum(e * np.einsum("n,nhwc->hwc", sg_cell_weights(c, b, layout.directions, layout.solid_angles,
                                                                      trainer.model_config.stage_radius),
                                       data.olat[v].astype(np.float32))
                         for c, b, e in zip(centres, beta, energy))
            out.append({"view": v, "env": f"{name} {deg}", "weights": w, "truth": truth,
                        "area_dirs": world_to_camera_directions(centres, c2w), "area_beta": beta,
                        "area_energy": energy, "area_oracle": oracle})
    return out


def per_light(trainer: Trainer, predict: Predictor, items, **kw) -> list[float]:
    """Mean [PSNR, SSIM, FLIP] of the predictions for (view, light indices) items against the OLATs."""
    data = trainer.data
    rows = []
    for v, lights in items:
        mask = data.alpha[v] > 0.5
        preds = predict(v, data.camera_directions(v)[lights], **kw)
        rows += [score(p, data.olat[v, i].astype(np.float32), mask) for p, i in zip(preds, lights)]
    return np.mean(rows, 0).tolist()


def evaluate(trainer: Trainer, predict: Predictor, envs: list[dict], steps: int, seed: int,
             curve: bool, guidance: bool) -> dict:
    data = trainer.data
    irradiance = data.irradiance
    sets = light_sets(trainer)
    out: dict = {name: per_light(trainer, predict, items, steps=steps, seed=seed) for name, items in sets.items()}
    stage_raw, stage_fixed, area, white = [], [], [], []
    for e in envs:
        v = e["view"]
        mask = data.alpha[v] > 0.5
        stage = predict(v, data.camera_directions(v), steps=steps, seed=seed + 100)   # [N, H, W, 3]
        stage_raw.append(score(np.einsum("nhwc,nc->hwc", stage, e["weights"]), e["truth"], mask))
        fixed = ratio_correct(stage, irradiance, data.flat[v])
        stage_fixed.append(score(np.einsum("nhwc,nc->hwc", fixed, e["weights"]), e["truth"], mask))
        lights = predict(v, e["area_dirs"], e["area_beta"], steps=steps, seed=seed + 200)
        area.append(score(np.einsum("khwc,kc->hwc", lights, e["area_energy"]), e["truth"], mask))
        white.append(score(np.einsum("nhwc,nc->hwc", stage, irradiance), data.flat[v], mask))
    out["HDRI stage"], out["HDRI stage + ratio"] = np.mean(stage_raw, 0).tolist(), np.mean(stage_fixed, 0).tolist()
    out[f"HDRI area K={CLUSTERS}"], out["white environment"] = np.mean(area, 0).tolist(), np.mean(white, 0).tolist()
    out["evaluations"] = predict.pipe.evaluations(steps)
    if curve:
        out["steps"] = {n: per_light(trainer, predict, sets["held-out lights"][::3], steps=n, seed=seed)
                        for n in STEP_CURVE}
    if guidance:
        out["guidance"] = {g: per_light(trainer, predict, sets["held-out lights"][::4], steps=steps, seed=seed,
                                        guidance_light=g) for g in GUIDANCE}
    return out


def env_baselines(trainer: Trainer, envs: list[dict]) -> dict:
    data = trainer.data
    flat_rows, area_oracle = [], []
    for e in envs:
        v, mask = e["view"], data.alpha[e["view"]] > 0.5
        flat = data.flat[v]
        flat_rows.append(score(flat * best_scale(flat, e["truth"], mask), e["truth"], mask))
        area_oracle.append(score(e["area_oracle"], e["truth"], mask))
    return {"HDRI stage": np.mean(flat_rows, 0).tolist(), "area oracle": np.mean(area_oracle, 0).tolist()}


def train_one(args, objective: str, seed: int) -> tuple[Trainer, float]:
    cfg = TrainConfig(captures=[args.capture], output=str(Path(args.runs) / f"seed{seed}" / objective),
                      resolution=args.res, objective=objective, steps=args.steps, seed=seed, lr=args.lr,
                      holdout_cameras=[HOLDOUT_CAMERA], val_every=0, checkpoint_every=250)
    trainer = Trainer(cfg)
    trainer.train(progress=False)
    return trainer, trainer.seconds


def run_seed(args, seed: int) -> None:
    import torch

    torch.set_num_threads(args.threads)
    folder = Path(args.runs) / f"seed{seed}"
    result_path = folder / "results.json"
    results = json.loads(result_path.read_text()) if result_path.exists() else {}
    for objective in ("regression",) + tuple(args.objectives):
        if objective in results:
            continue
        trainer, seconds = train_one(args, objective, seed)
        envs = environments(trainer)
        if "baselines" not in results:
            results["baselines"] = {**baselines(trainer), **env_baselines(trainer, envs)}
        stochastic = trainer.objective.stochastic
        res = evaluate(trainer, Predictor(trainer), envs, args.eval_steps if stochastic else 1, seed,
                       curve=stochastic and seed == args.curve_seed, guidance=stochastic and seed == args.curve_seed)
        res["seconds"], res["train_steps"] = seconds, trainer.step
        results[objective] = res
        folder.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(results, indent=1))


def fmt(values: np.ndarray) -> str:
    """'PSNR ± sd / SSIM / FLIP' of per-seed rows [S, 3]."""
    m, s = values.mean(0), values.std(0)
    return f"{m[0]:.2f} ± {s[0]:.2f} / {m[1]:.3f} / {m[2]:.3f}"


def report(args) -> None:
    runs = [json.loads((Path(args.runs) / f"seed{s}" / "results.json").read_text()) for s in args.seeds]
    splits = ("held-out lights", "held-out view", "training lights")
    envcols = ("HDRI stage", "HDRI stage + ratio", f"HDRI area K={CLUSTERS}", "white environment")
    head = "| method | " + " | ".join(splits + envcols) + " | UNet evals / light | train s |"
    table = [head, "| --- |" + " ---: |" * (len(splits) + len(envcols) + 2)]
    for method in ("regression",) + tuple(args.objectives):
        have = [r for r in runs if method in r]  # a method may have been run on fewer seeds (said in its row)
        cells = [fmt(np.array([r[method][c] for r in have])) for c in splits + envcols]
        secs = np.mean([r[method]["seconds"] for r in have])
        label = "regressor (same size, deterministic)" if method == "regression" else f"**{method}**"
        if len(have) < len(runs):
            label += f" ({len(have)} seed{'s' if len(have) > 1 else ''})"
        table.append(f"| {label} | " + " | ".join(cells) + f" | {have[0][method]['evaluations']} | {secs:.0f} |")
    base = runs[0]["baselines"]
    for name in ("flat x best constant", "nearest training OLAT"):
        cells = [fmt(np.array([base[c][name]])) if name in base[c] else "—" for c in splits]
        env = [fmt(np.array([base["HDRI stage"]])) if name == "flat x best constant" else "—"] + ["—"] * 3
        if name == "flat x best constant":
            env[1], env[2] = env[0], env[0]
        table.append(f"| {name} | " + " | ".join(cells + env) + " | 0 | — |")
    table.append("| oracle (true OLATs through the strategy) | — | — | — | exact | exact | "
                 f"{fmt(np.array([base['area oracle']]))} | exact | — | — |")
    curve_run = runs[args.seeds.index(args.curve_seed)]
    curve = ["| method | " + " | ".join(f"{n} steps" for n in STEP_CURVE) + " |", "| --- |" + " ---: |" * len(STEP_CURVE)]
    guide = ["| method | " + " | ".join(f"λ_L = {g:g}" for g in GUIDANCE) + " |", "| --- |" + " ---: |" * len(GUIDANCE)]
    for method in args.objectives:
        res = curve_run[method]
        curve.append(f"| {method} | " + " | ".join(fmt(np.array([res["steps"][str(n)]])) for n in STEP_CURVE) + " |")
        guide.append(f"| {method} | " + " | ".join(fmt(np.array([res["guidance"][str(float(g))]])) for g in GUIDANCE)
                     + " |")
    command = "python bench/train_relight.py " + shlex.join(sys.argv[1:])
    write_section("train-relight", f"""## Training recipe ablation (`{command}`)

Machine: {machine()}. Each seed ran as its own process (`--seeds N` without `--report`, {args.threads}
torch thread(s) each, the seeds side by side), then `--report` wrote this table. Capture set
`{args.capture}` (relit synth: face seed 0, 8 views x 3 frames, 134-light default stage, 128 px, 128 spp);
every view framed as `relit relight` frames a plate (square around the matte, 10 % margin) at
{args.res} px. Every model: the tiny preset (same UNet, same size), {args.steps} AdamW steps, batch 8,
lr {args.lr:g}, EMA 0.995, seeds {args.seeds}. Held out: every 10th stage light (13 lights, scored on
every other training view), camera `{HOLDOUT_CAMERA}` entirely (12 random lights per frame); training
lights: 8 per third training view. HDRI columns: camera `{HOLDOUT_CAMERA}` frame 1 under
{", ".join(f"{n} turned {d} deg" for n, d in ENVIRONMENTS)}; truth = the rendered OLATs weighted by the
stage projection (exact by linearity). "+ ratio": the stage predictions ratio-corrected so that their
irradiance-weighted sum is the input (core.model.consistency); with it the white environment is
exact by construction, so that column shows the raw sum (its truth is the input itself). Stochastic
models sample {args.eval_steps} steps (DDIM for diffusion/refine, Euler for flow), guidance 1, an
independent noise map per light. Cells: PSNR (dB, ± sd over seeds) / SSIM / HDR-FLIP (lower is
better), on subject pixels (alpha > 0.5) of scene-linear images; PSNR uses the truth's peak.

{chr(10).join(table)}

**Sampler steps** (held-out lights on every third of those views, seed {args.curve_seed}; UNet evaluations per light: the steps, +1 for refine's mean pass):

{chr(10).join(curve)}

**Lighting guidance λ_L** (λ_I = 1, {args.eval_steps} steps, held-out lights on every fourth of those views, seed {args.curve_seed}; 3 UNet evaluations per step):

{chr(10).join(guide)}
""")
    print("\n".join(table + [""] + curve + [""] + guide))


def shipped(args) -> None:
    """Score the shipped bundle (a longer run of the chosen recipe) with the same protocol: its training
    config gives the capture, splits and framing; the weights are the bundle's."""
    import torch

    from core.model.bundle import load_bundle

    torch.set_num_threads(args.threads)
    pipe, info = load_bundle(args.shipped)
    cfg = TrainConfig(**{**info.training["config"], "output": str(Path(args.runs) / "shipped_data")})
    trainer = Trainer(cfg)  # data and splits only
    envs = environments(trainer)
    base = {**baselines(trainer), **env_baselines(trainer, envs)}
    steps = args.eval_steps if args.eval_steps else int(info.recipe["steps"])
    res = evaluate(trainer, Predictor(trainer, pipe), envs, steps, 0, curve=True, guidance=False)
    run = Path(args.shipped)
    splits = ("held-out lights", "held-out view", "training lights", "HDRI stage", "HDRI stage + ratio",
              f"HDRI area K={CLUSTERS}", "white environment")
    rows = ["| | " + " | ".join(splits) + " |", "| --- |" + " ---: |" * len(splits),
            f"| {cfg.objective}, {info.training['steps']} training steps, {steps} sampler step(s) | "
            + " | ".join(fmt(np.array([res[c]])) for c in splits) + " |"]
    curve = ["| sampler steps | " + " | ".join(str(n) for n in STEP_CURVE) + " |", "| --- |" + " ---: |" * len(STEP_CURVE),
             "| held-out lights | " + " | ".join(fmt(np.array([res["steps"][n]])) for n in STEP_CURVE) + " |"]
    near = base["held-out lights"]["nearest training OLAT"]
    command = "python bench/train_relight.py " + shlex.join(sys.argv[1:])
    write_section("train-relight-shipped", f"""## The shipped recipe trained longer (`{command}`)

Machine: {machine()}. Bundle `{run}` (`{info.id}`): `{cfg.command}` ({info.training["steps"]} steps,
{info.training["seconds"] / 60:.0f} min of one CPU thread beside other jobs; {info.steps_in_all} steps in all, those of any bundle it started from included), scored exactly as the ablation above (same capture, splits and
metrics; seed-0 noise). Nearest training OLAT on held-out lights: {fmt(np.array([near]))}; flat-lit x
best constant on the HDRI: {fmt(np.array([base["HDRI stage"]]))}.

{chr(10).join(rows)}

Sampler steps on held-out lights (every third view):

{chr(10).join(curve)}
""")
    (Path(args.runs) / "shipped.json").write_text(json.dumps({"baselines": base, "result": res}, indent=1))
    print("\n".join(rows + [""] + curve))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", default="out/cap")
    ap.add_argument("--steps", type=int, default=1500, help="optimizer steps of every model")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--objectives", nargs="*", default=list(OBJECTIVES))
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-steps", type=int, default=10,
                    help="sampler steps of the main table (--shipped: 0 = the bundle's recipe)")
    ap.add_argument("--curve-seed", type=int, default=0, help="seed whose models get the steps and guidance sweeps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", default="out/bench_train")
    ap.add_argument("--report", action="store_true", help="write the table from the seeds' results")
    ap.add_argument("--shipped", help="a bundle of the chosen recipe trained longer, scored the same way")
    args = ap.parse_args()
    if args.shipped:
        shipped(args)
        return
    if args.report:
        report(args)
        return
    for seed in args.seeds:
        run_seed(args, seed)


if __name__ == "__main__":
    main()
