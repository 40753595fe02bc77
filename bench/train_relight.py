"""Train the tiny olat model on a synthetic capture set and score it on held-out lights and a held-out
view against three baselines, over 3 seeds:

* flat-lit input scaled to the best constant (per image),
* the nearest training light's OLAT of the same view (per unit irradiance),
* a deterministic U-Net regressor of the same size trained for the same wall time.

    python bench/train_relight.py --capture out/bench_capture --minutes 5
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402
from core.model.bundle import load_bundle  # noqa: E402
from core.model.metrics import best_scale, psnr, ssim  # noqa: E402
from core.model.train import TrainConfig, Trainer, regress  # noqa: E402

HOLDOUT_CAMERA = "cam05"


def score(pred, truth, mask):
    return psnr(pred, truth, mask), ssim(pred, truth, mask)


def evaluate(trainer: Trainer, predict, rng_seed=7, per_view=12):
    """Scores per method on the held-out lights (training views) and on the held-out camera (all lights)."""
    data, split = trainer.data, trainer.split
    rng = np.random.default_rng(rng_seed)
    train_dirs = data.layout.directions[split.train_lights]
    sets = {"held-out lights": [(v, split.val_lights) for v in split.train_views[::2]],
            "held-out view": [(v, rng.choice(len(data.layout), per_view, replace=False)) for v in split.val_views]}
    out = {}
    for name, items in sets.items():
        rows = {k: [] for k in ("diffusion", "regressor", "flat x best constant", "nearest training OLAT")}
        for v, lights in items:
            mask = data.alpha[v] > 0.5
            cam_dirs = data.camera_directions(v)
            preds = predict(v, cam_dirs[lights])
            for j, i in enumerate(lights):
                truth = data.olat[v, i].astype(np.float32)
                rows["diffusion"].append(score(preds["diffusion"][j], truth, mask))
                rows["regressor"].append(score(preds["regressor"][j], truth, mask))
                flat = data.flat[v]
                rows["flat x best constant"].append(score(flat * best_scale(flat, truth, mask), truth, mask))
                nearest = split.train_lights[int(np.argmax(train_dirs @ data.layout.directions[i]))]
                if nearest != i:
                    rows["nearest training OLAT"].append(score(data.olat[v, nearest].astype(np.float32), truth, mask))
        out[name] = {k: np.array(v) for k, v in rows.items() if v}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", default="out/bench_capture")
    ap.add_argument("--minutes", type=float, default=5.0, help="wall time per model and seed")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate of both models")
    ap.add_argument("--steps", type=int, default=30, help="DDIM steps at evaluation")
    ap.add_argument("--runs", default="out/bench_train")
    ap.add_argument("--default-bundle", default="", help="copy seed 0's bundle here (the demo's default)")
    args = ap.parse_args()
    results, timing = [], []
    for seed in args.seeds:
        run = Path(args.runs) / f"seed{seed}"
        cmd = ["relit", "train", args.capture, "-o", str(run / "diffusion"), "--res", str(args.res),
               "--steps", "100000", "--max-minutes", str(args.minutes), "--seed", str(seed), "--lr", str(args.lr),
               "--holdout-cameras", HOLDOUT_CAMERA, "--val-every", "0", "--checkpoint-every", "0", "--quiet"]
        if seed == args.seeds[0] and args.default_bundle:
            cmd += ["--bundle", args.default_bundle]
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "core.cli", *cmd[1:]], cwd=ROOT, check=True)
        diffusion_s = time.perf_counter() - t
        bundle = Path(args.default_bundle) if seed == args.seeds[0] and args.default_bundle else run / "diffusion" / "bundle"
        pipe, info = load_bundle(bundle)
        regressor = Trainer(TrainConfig(capture=args.capture, output=str(run / "regressor"), resolution=args.res,
                                        objective="regression", steps=100000, max_minutes=args.minutes, seed=seed,
                                        lr=args.lr,
                                        holdout_cameras=[HOLDOUT_CAMERA], val_every=0, checkpoint_every=0))
        regressor.train(progress=False)
        reg_model = regressor.ema_model()

        def predict(v, dirs):
            flat = regressor.data.flat[v]
            diff = pipe(flat, dirs, np.zeros(len(dirs)), num_inference_steps=args.steps, seed=seed).images
            return {"diffusion": diff, "regressor": regress(regressor.pipe, reg_model, flat, dirs, np.zeros(len(dirs)))}

        results.append(evaluate(regressor, predict))
        timing.append((info.training["steps"], regressor.step, diffusion_s))
    table = ["| split | method | PSNR (dB) | SSIM |", "| --- | --- | ---: | ---: |"]
    for split in results[0]:
        for method in results[0][split]:
            per_seed = np.array([r[split][method].mean(axis=0) for r in results])  # [seeds, 2]
            mean, sd = per_seed.mean(axis=0), per_seed.std(axis=0)
            table.append(f"| {split} | {method} | {mean[0]:.2f} ± {sd[0]:.2f} | {mean[1]:.3f} ± {sd[1]:.3f} |")
    steps = ", ".join(f"seed {s}: diffusion {d} steps, regressor {r} steps" for s, (d, r, _) in zip(args.seeds, timing))
    command = "python bench/train_relight.py " + shlex.join(sys.argv[1:])
    write_section("train-relight", f"""## Training the tiny olat model (`{command}`)

Machine: {machine()}. Capture set `{args.capture}` (relit synth: face seed 0, 8 views x 4 frames, 134-light
default stage, 128 px, 128 spp), trained at {args.res} px (box-filtered down). Held out: every 10th stage
light (13 lights, scored on every other training view) and camera `{HOLDOUT_CAMERA}` entirely (12 random
lights per frame). Each model gets {args.minutes:g} min of wall time per seed ({steps}), AdamW lr {args.lr:g},
batch 8; the tiny codec is a lossless pixel-unshuffle (x2, no weights, exact inverse). The diffusion
model samples with DDIM, {args.steps} steps, guidance 1 (the plain conditional prediction). Scores are
on subject pixels (alpha > 0.5) of scene-linear images per unit irradiance; PSNR uses the ground
truth's peak. Mean ± sd over seeds {args.seeds}.

{chr(10).join(table)}
""")
    print("\n".join(table))


if __name__ == "__main__":
    main()
