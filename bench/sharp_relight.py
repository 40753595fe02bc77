"""Relit at the plate's detail (issue 25): subject-specific bundles scored at the capture's own
resolution against its Cycles renders, through the product's path (frame the plate, predict at the
bundle's resolution, carry the ratio back to the plate: ``core.io.framing``).

Rows: each bundle (a 64-px whole-frame one and patch-trained ones at the capture's resolution),
the same-size deterministic regressor's run, flat-lit x best constant, the nearest training light.
Columns: held-out lights and training lights (PSNR / SSIM / HDR-FLIP), shading edges on held-out
lights (gradient energy against Cycles' and the gradient-magnitude error), an HDRI through the stage
strategy (raw and ratio-corrected) and the white environment (raw: the truth is the input), UNet
evaluations per light and CPU seconds per 2K frame for a three-lamp rig and an HDRI.

    python bench/sharp_relight.py --capture CAP --bundles B64 B256 --regressor RUN --out sheet.png \\
        --section sharp-relight
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402
from core.data.capture import CaptureSet  # noqa: E402
from core.lighting.camera import world_to_camera_directions  # noqa: E402
from core.lighting.hdri import load_environment, project_to_layout, resolve_hdri  # noqa: E402
from core.model.consistency import ratio_correct  # noqa: E402
from core.model.metrics import best_scale, flip, psnr, ssim  # noqa: E402

HDRI = ("forest", (0.0, 0.0, 30.0))
EDGE_ERODE = 3          # px the subject mask is eroded by for the edge measures (the silhouette is not shading)
PLATE_2K = 2048         # the plate size the cost columns relight


def score(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> list[float]:
    return [psnr(pred, truth, mask), ssim(pred, truth, mask), flip(pred, truth, mask)]


def _gradient(img: np.ndarray) -> np.ndarray:  # [H, W, 3] -> [H, W] gradient magnitude of the luminance
    import cv2

    lum = (img @ np.array([0.2126, 0.7152, 0.0722], np.float32)).astype(np.float32)
    return np.hypot(cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3))


def edges(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> list[float]:
    """[mean |grad pred|, mean |grad truth|, mean ||grad pred| - |grad truth||] of the luminance inside the
    eroded subject; averaged over lights, :func:`edge_scores` makes them relative to Cycles'."""
    import cv2

    inner = cv2.erode(mask.astype(np.uint8), np.ones((2 * EDGE_ERODE + 1,) * 2, np.uint8)).astype(bool)
    gp, gt = _gradient(pred)[inner], _gradient(truth)[inner]
    return [float(gp.mean()), float(gt.mean()), float(np.abs(gp - gt).mean())]


def edge_scores(row: list[float]) -> list[float]:
    """[gradient energy / Cycles', gradient-magnitude error / Cycles' mean gradient] from a per-light row's
    edge means: 1 and 0 for shading as crisp as Cycles' and where it is; a blur gives energy below 1."""
    gp, gt, err = row[3:6]
    return [gp / max(gt, 1e-20), err / max(gt, 1e-20)]


class Subject:
    """The capture at its own resolution, one view at a time, with the splits of a bundle's training."""

    def __init__(self, capture: Path, training_config: dict):
        from core.model.data import TrainingData

        self.capture = CaptureSet(capture)
        m = self.capture.manifest
        self.layout, self.irradiance = m.layout, m.irradiance.astype(np.float32)
        data = TrainingData(self.capture, 16)  # views and splits only
        c = training_config
        self.views = data.views
        self.split = data.split(c.get("holdout_light_every", 10), tuple(c.get("holdout_cameras", ())),
                                tuple(c.get("holdout_expressions", ())), (), tuple(c.get("holdout_lights", ())))
        self._cache: dict = {}

    def view(self, v: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # flat [H,W,3], unit OLATs [N,H,W,3], alpha
        if v not in self._cache:
            self._cache = {}
            view = self.views[v]
            olats, alpha = self.capture.olats(view.camera, view.frame)
            flat = self.capture.flat(view.camera, view.frame).rgb
            self._cache[v] = (flat.astype(np.float32), (olats / self.irradiance[:, None, None, :]).astype(np.float32),
                              alpha.astype(np.float32))
        return self._cache[v]

    def directions(self, v: int) -> np.ndarray:  # [N, 3] camera frame
        return world_to_camera_directions(self.layout.directions, self.views[v].c2w)


class Model:
    """A bundle (or a regressor's run) relighting plates as ``relit relight`` does."""

    def __init__(self, name: str, pipe, steps: int, info=None):
        self.name, self.pipe, self.steps = name, pipe, steps
        self.info = info      # the bundle's (None for a regressor's run: no cost columns)
        self.evaluations = 0  # per light, measured on the first call

    def __call__(self, flat: np.ndarray, alpha: np.ndarray, dirs: np.ndarray, seed: int,
                 correct: np.ndarray | None = None) -> np.ndarray:  # [L, H, W, 3] at the plate's resolution
        from core.io.framing import to_plate
        from core.relight.frame import prepare_plate

        config = self.pipe.model.config
        prepared = prepare_plate(flat, alpha, config.resolution, normals=config.normals)
        shape = (len(dirs),) + self.pipe.latent_shape()
        noise = np.random.default_rng([seed, len(dirs)]).standard_normal(shape).astype(np.float32)
        out = self.pipe(prepared.model_input, dirs, np.zeros(len(dirs)), num_inference_steps=self.steps,
                        noise=noise, batch_size=16, normals=prepared.normals)
        self.evaluations = out.evaluations // max(len(dirs), 1)
        images = out.images
        if correct is not None:  # the stage strategy's ratio correction, at model resolution as relight does it
            images = ratio_correct(images, correct, prepared.model_input)
        return to_plate(images, prepared.model_input, prepared.source, prepared.framing, prepared.eps)


def load_models(bundles: list[Path], regressor: Path | None,
                overlaps: list[float]) -> tuple[list[Model], dict]:
    from core.model.bundle import load_bundle, read_info

    models, config = [], {}
    ids = [read_info(b).id for b in bundles]
    for b in bundles:
        pipe, info = load_bundle(b)
        res, patch = info.config.resolution, info.config.patch
        name = info.id if ids.count(info.id) == 1 else f"{b.parent.name if b.name == 'bundle' else b.name}: {info.id}"
        label = f"{name} ({res} px" + (f", {patch}-px patches)" if patch else ", whole frames)")
        models.append(Model(label, pipe, int(info.recipe["steps"]), info))
        for overlap in overlaps if patch else []:  # other tile overlaps than the shipped one
            other, _ = load_bundle(b)
            other.tile_overlap = overlap
            models.append(Model(f"{name} ({res} px, {patch}-px patches, tile overlap {overlap:g})", other,
                                int(info.recipe["steps"]), info))
        if patch:  # the same weights read fully convolutionally: one pass over the whole frame
            whole, _ = load_bundle(b)
            whole.whole_frame = True
            models.append(Model(f"{name} ({res} px, the same weights in one whole-frame pass)", whole,
                                int(info.recipe["steps"]), info))
        config = config or info.training.get("config", {})
    if regressor is not None:
        sys.path.insert(0, str(ROOT / "bench"))
        from portrait import _trainer

        trainer = _trainer(regressor)
        models.append(Model(f"regressor {regressor.name} (step {trainer.step})",
                            trainer.pipeline(trainer.ema_model()), 1))
    return models, config


def oracle_name(resolution: int) -> str:
    """The table's row of a perfect model at ``resolution``."""
    return f"oracle at {resolution} px (Cycles framed to it, carried back by the ratio path)"


def oracle(flat: np.ndarray, alpha: np.ndarray, olats: np.ndarray,  # [H, W, 3], [H, W], [L, H, W, 3]
           resolution: int) -> np.ndarray:  # [L, H, W, 3]
    """A perfect model at ``resolution``: Cycles' own OLATs framed to it as relight frames the plate,
    carried back to the plate by the same ratio path. What any model at that resolution can reach."""
    from core.io.framing import to_model, to_plate
    from core.relight.frame import prepare_plate

    prepared = prepare_plate(flat, alpha, resolution)
    small = np.stack([to_model(o, prepared.framing) for o in olats])
    return to_plate(small, prepared.model_input, prepared.source, prepared.framing, prepared.eps)


def per_light(subject: Subject, models: list[Model], items: list[tuple[int, np.ndarray]],
              oracles: tuple[int, ...] = ()) -> dict:  # resolutions of perfect models to score too
    """Scores and edge measures of each model and the baselines on (view, light indices) items."""
    split = subject.split
    train_dirs = subject.layout.directions[split.train_lights]
    rows: dict = {m.name: [] for m in models}
    rows.update({"flat-lit x best constant": [], "nearest training light": []})
    rows.update({oracle_name(r): [] for r in oracles})
    for v, lights in items:
        flat, olats, alpha = subject.view(v)
        mask = alpha > 0.5
        dirs = subject.directions(v)[lights]
        for m in models:
            preds = m(flat, alpha, dirs, seed=v)
            rows[m.name] += [score(p, olats[i], mask) + edges(p, olats[i], mask) for p, i in zip(preds, lights)]
        for r in oracles:
            preds = oracle(flat, alpha, olats[lights], r)
            rows[oracle_name(r)] += [score(p, olats[i], mask) + edges(p, olats[i], mask) for p, i in zip(preds, lights)]
        for i in lights:
            truth = olats[i]
            s = flat * best_scale(flat, truth, mask)
            rows["flat-lit x best constant"].append(score(s, truth, mask) + edges(s, truth, mask))
            nearest = split.train_lights[int(np.argmax(train_dirs @ subject.layout.directions[i]))]
            if nearest != i:
                near = olats[nearest]
                rows["nearest training light"].append(score(near, truth, mask) + edges(near, truth, mask))
    return {k: np.mean(v, 0).tolist() for k, v in rows.items() if v}


def environment(subject: Subject, models: list[Model]) -> dict:
    """The HDRI by the stage strategy (raw, ratio-corrected) and the white environment on the first
    held-out view (or training view), truth composed exactly from its OLATs."""
    views = subject.split.val_views or subject.split.train_views
    v = views[0]
    flat, olats, alpha = subject.view(v)
    mask = alpha > 0.5
    name, deg = HDRI
    w = project_to_layout(load_environment(resolve_hdri(name)), subject.layout,
                          tuple(math.radians(x) for x in deg)).weights
    truth = np.einsum("nhwc,nc->hwc", olats, w)
    out = {"flat-lit x best constant": {"HDRI stage": score(flat * best_scale(flat, truth, mask), truth, mask)}}
    for m in models:
        stage = m(flat, alpha, subject.directions(v), seed=100 + v)
        fixed = m(flat, alpha, subject.directions(v), seed=100 + v, correct=subject.irradiance)
        out[m.name] = {"HDRI stage": score(np.einsum("nhwc,nc->hwc", stage, w), truth, mask),
                       "HDRI stage + ratio": score(np.einsum("nhwc,nc->hwc", fixed, w), truth, mask),
                       "white environment": score(np.einsum("nhwc,nc->hwc", stage, subject.irradiance), flat, mask)}
    return out


def cost(subject: Subject, model: Model) -> dict:
    """CPU seconds to relight a 2K plate (the capture's view upsampled) under a three-lamp rig and an HDRI
    (stage strategy), through ``relit relight``'s frame function; and UNet evaluations of each."""
    import cv2

    from core.relight.frame import RelightSettings, relight_frame
    from core.lighting.rig import Environment, Light, LightRig

    v = subject.split.train_views[0]
    flat, _, alpha = subject.view(v)
    plate = cv2.resize(flat, (PLATE_2K, PLATE_2K), interpolation=cv2.INTER_LINEAR)
    matte = cv2.resize(alpha, (PLATE_2K, PLATE_2K), interpolation=cv2.INTER_LINEAR)
    settings = RelightSettings(steps=model.steps, consistency="ratio")
    lamps = [Light(n, "area", d, 0.0, (1.0, 1.0, 1.0), 1.0)
             for n, d in (("key", (-0.55, 0.45, 0.70)), ("fill", (0.6, 0.1, 0.8)), ("rim", (0.75, 0.25, -0.6)))]
    out = {}
    hdri = Environment(str(resolve_hdri(HDRI[0])), tuple(math.radians(x) for x in HDRI[1]), 1.0)
    for label, rig in (("rig", LightRig(lamps, None, subject.views[v].c2w.tolist())),
                       ("HDRI", LightRig([], hdri, subject.views[v].c2w.tolist()))):
        relight_frame(model.pipe, model.info, plate, matte, rig, settings, strategy="stage")  # warm: imports, caches
        start = time.process_time()
        _, evaluations = relight_frame(model.pipe, model.info, plate, matte, rig, settings, strategy="stage")
        out[label] = (time.process_time() - start, evaluations)
    return out


def sheet(subject: Subject, models: list[Model], path: Path) -> None:
    """Flat-lit, Cycles and each model for the held-out light lighting most from the side, whole and
    the nose region at 3x."""
    from core.io.preview import contact_sheet
    from core.portrait.matte import display_rgb8, face_boxes

    v = subject.split.train_views[0]
    flat, olats, alpha = subject.view(v)
    dirs = subject.directions(v)
    i = int(subject.split.val_lights[np.argmax(np.abs(dirs[subject.split.val_lights, 0]) + 0.5
                                               * dirs[subject.split.val_lights, 2])])
    images = [("flat-lit", flat), (f"Cycles {subject.layout.names[i]}", olats[i])]
    images += [(_label(m.name), m(flat, alpha, dirs[[i]], seed=v)[0]) for m in models]
    ys, xs = np.nonzero(alpha > 0.5)
    cy, cx, half = int(ys.mean()), int(xs.mean()), max(8, (ys.max() - ys.min()) // 6)
    faces = face_boxes(display_rgb8(flat), 0.5)
    if faces:  # the zoom on the nose: the middle of the face MediaPipe finds (a person's centroid is the chest)
        x0, y0, x1, y1 = faces[0]
        cy, cx, half = (y0 + y1) // 2, (x0 + x1) // 2, max(8, (y1 - y0) // 3)
        cy, cx = min(max(cy, half), flat.shape[0] - half), min(max(cx, half), flat.shape[1] - half)
    crop = lambda a: np.repeat(np.repeat(a[cy - half:cy + half, cx - half:cx + half], 3, 0), 3, 1)  # noqa: E731
    size = flat.shape[0]
    tiles = [(label, img, 0.0) for label, img in images]
    tiles += [(f"{label} (nose, 3x)", _fit(crop(img), size), 0.0) for label, img in images]
    contact_sheet(path, tiles, columns=len(images), title=f"held-out light {subject.layout.names[i]}, view {v}")


def _label(name: str) -> str:
    """A sheet label that tells bundles (their run's folder, when their ids are the same) and a bundle's
    readings (they share the bundle's id) apart."""
    if name.startswith("regressor") or " (" not in name:
        return name[:34]
    head, _, reading = name.partition(" (")
    run = head.split(": ")[0] + ", " if ": " in head else ""
    return (run + reading[:-1])[:34]


def _fit(img: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, size, 3), np.float32)
    h, w = min(size, img.shape[0]), min(size, img.shape[1])
    out[:h, :w] = img[:h, :w]
    return out


def fmt(row: list[float] | None, k: int = 3) -> str:
    if row is None:
        return "—"
    return f"{row[0]:.2f} / {row[1]:.3f} / {row[2]:.3f}" if k == 3 else f"{row[0]:.2f} / {row[1]:.2f}"


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--capture", type=Path, required=True, help="the subject's capture set at full resolution")
    ap.add_argument("--bundles", type=Path, nargs="+", required=True, help="subject-specific bundles to compare")
    ap.add_argument("--regressor", type=Path, help="the same-size deterministic regressor's run folder")
    ap.add_argument("--every", type=int, default=4, help="score held-out lights on every k-th training view")
    ap.add_argument("--out", type=Path, help="the contact sheet's PNG")
    ap.add_argument("--section", default="sharp-relight")
    ap.add_argument("--no-cost", action="store_true", help="skip the 2K cost columns")
    ap.add_argument("--oracles", type=int, nargs="*", default=[],
                    help="also score a perfect model at these resolutions (Cycles framed to it, ratio carried back)")
    ap.add_argument("--overlaps", type=float, nargs="*", default=[],
                    help="patch bundles also relit with these tile overlaps (fractions of a tile) besides their own")
    args = ap.parse_args()
    torch.set_num_threads(1)
    models, config = load_models(args.bundles, args.regressor, args.overlaps)
    subject = Subject(args.capture, config)
    split = subject.split
    rng = np.random.default_rng(7)
    held = per_light(subject, models, [(v, split.val_lights) for v in split.train_views[::args.every]],
                     tuple(args.oracles))
    trained = per_light(subject, models, [(v, rng.choice(split.train_lights, 8, replace=False))
                                          for v in split.train_views[1::args.every * 2]], tuple(args.oracles))
    env = environment(subject, models)
    costs = {} if args.no_cost else {m.name: cost(subject, m) for m in models if m.info is not None}
    if args.out:
        sheet(subject, models, args.out)
    names = ([m.name for m in models] + ["flat-lit x best constant", "nearest training light"]
             + [oracle_name(r) for r in args.oracles])
    res = subject.capture.manifest.cameras[0].width
    head = ("| method | held-out lights | shading edges: energy / error | training lights | HDRI stage | "
            "HDRI stage + ratio | white environment (raw) | UNet evals / light | 2K rig: s / evals | "
            "2K HDRI: s / evals |")
    rows = [head, "| --- |" + " ---: |" * 9]
    evals = {m.name: m.evaluations for m in models}
    for n in names:
        e = env.get(n, {})
        c = costs.get(n, {})
        rows.append(f"| {n} | {fmt(held.get(n))} | {fmt(edge_scores(held[n]), 2) if n in held else '—'} | "
                    f"{fmt(trained.get(n))} | {fmt(e.get('HDRI stage'))} | {fmt(e.get('HDRI stage + ratio'))} | "
                    f"{fmt(e.get('white environment'))} | {evals.get(n, '—')} | "
                    + (f"{c['rig'][0]:.1f} / {c['rig'][1]} | {c['HDRI'][0]:.1f} / {c['HDRI'][1]} |" if c
                       else "— | — |"))
    command = "python bench/sharp_relight.py " + shlex.join(sys.argv[1:])
    write_section(args.section, f"""## Relit at the plate's detail (`{command}`)

Machine: {machine()}, one torch thread. Capture `{args.capture}` ({res} px, {len(subject.views)} views,
{len(subject.layout)} stage lights); held-out lights {len(split.val_lights)} on every {args.every}th training view,
training lights 8 per view on every {2 * args.every}th; HDRI {HDRI[0]} turned {HDRI[1]} deg on view
{(split.val_views or split.train_views)[0]}, truth composed from its OLATs. Every model relights the
{res}-px plate as `relit relight` does (framed to its resolution, ratio carried back); scores on subject
pixels at {res} px. Cells: PSNR (dB) / SSIM / HDR-FLIP; shading edges: the gradient energy of the
luminance against Cycles' (1 = as crisp; a blur is below 1) / the mean gradient-magnitude error relative to
Cycles' mean gradient, inside the subject eroded by {EDGE_ERODE} px. Cost: CPU seconds (one thread) and
UNet evaluations of one {PLATE_2K}x{PLATE_2K} frame, stage strategy for the HDRI.

{chr(10).join(rows)}
""")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
