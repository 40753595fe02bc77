"""Synthetic people: how dense a stage their OLATs need (composition error against Cycles rendering
the HDRI directly), the cost of one identity, and a contact sheet of identities.

    python bench/people.py            # writes docs/benchmarks.md (section people) and docs/people_contact_sheet.png
    python bench/people.py --noise    # section people-noise: OLAT batch and samples against a reference render
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402
from core.io.preview import contact_sheet  # noqa: E402
from core.lighting.hdri import load_environment, project_to_layout  # noqa: E402
from core.lighting.layout import builtin_layout  # noqa: E402
from core.lighting.random_lighting import lamp_map  # noqa: E402
from core.lighting.rig import Environment  # noqa: E402
from core.synthetic.cameras import portrait_cameras  # noqa: E402
from core.lighting.hdri import resolve_hdri  # noqa: E402
from core.synthetic.person import person_subject  # noqa: E402
from core.synthetic.scene import RenderSettings, StageScene  # noqa: E402

COMMAND = "python bench/people.py"
RES, SPP = 96, 128
LAYOUTS = ("rings32", "rings64", "default")
HDRIS = {"forest": (0.0, 0.0, math.radians(30)), "sunset": (0.0, 0.0, math.radians(200)),
         "studio": (0.0, 0.0, math.radians(90))}
SEEDS = (0, 1, 2)


def _scene(seed: int, layout, res: int = RES, spp: int = SPP, view: int = 1):
    irr = np.repeat(layout.solid_angles[:, None], 3, 1)
    scene = StageScene(person_subject(seed), {1: {}}, layout, irr, RenderSettings(res, spp, 8, seed=seed))
    scene.set_view(portrait_cameras(3, res, seed)[view], 1)
    return scene, irr


def density_table() -> tuple[str, dict]:
    cells: dict[tuple, tuple[float, float]] = {}
    seconds: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    sample = {}
    for seed in SEEDS:
        scene, _ = _scene(seed, builtin_layout("rings16"))
        truth = {name: scene.render_environment(Environment(str(resolve_hdri(name)), rot, 1.0), resolve_hdri(name))
                 for name, rot in HDRIS.items()}
        scene.close()
        for lname in LAYOUTS:
            layout = builtin_layout(lname)
            scene, irr = _scene(seed, layout)
            t = time.perf_counter()
            olats, _ = scene.render_olats()
            seconds[lname].append(time.perf_counter() - t)
            scene.close()
            for name, rot in HDRIS.items():
                gt, alpha = truth[name]
                w = project_to_layout(load_environment(resolve_hdri(name)), layout, rot).weights
                pred = np.einsum("nhwc,nc->hwc", olats, w / irr)
                m = alpha > 0.999
                psnr = 10 * math.log10(gt[m].max() ** 2 / np.mean((pred - gt)[m] ** 2))
                cells[seed, name, lname] = (psnr, np.abs(pred - gt)[m].sum() / np.abs(gt[m]).sum())
                if lname == "default":
                    sample[seed, name] = (gt, pred)
    rows = ["| layout | lights | OLAT renders per view (s) | PSNR vs Cycles' HDRI render, mean (min) | rel. L1 |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for lname in LAYOUTS:
        psnr = [cells[k][0] for k in cells if k[2] == lname]
        l1 = [cells[k][1] for k in cells if k[2] == lname]
        rows.append(f"| {lname} | {len(builtin_layout(lname))} | {np.mean(seconds[lname]):.1f} | "
                    f"{np.mean(psnr):.1f} dB ({np.min(psnr):.1f}) | {np.mean(l1):.3f} |")
    return "\n".join(rows), sample


def sheet(sample: dict, count: int = 8) -> Path:
    tiles = []
    for seed in range(count):
        scene, _ = _scene(seed, builtin_layout("rings16"), spp=64, view=seed % 3)
        flat, _, _ = scene.render_flat()
        p = scene.subject
        tiles.append((f"{p.name}: {p.look.hair_style}, type {p.look.fitzpatrick}", flat, 0.0))
        scene.close()
    for (seed, name), (gt, pred) in list(sample.items())[:4]:
        tiles += [(f"person-{seed:04d} {name}: Cycles", gt, 0.0), ("its OLAT sum (134 lights)", pred, 0.0)]
    out = ROOT / "docs" / "people_contact_sheet.png"
    contact_sheet(out, tiles, columns=4, title="relit synth --identities: flat-lit people; HDRI vs OLAT sum", scale=2)
    return out


NOISE_RES = 64
NOISE_GRID = ((34, 64), (34, 256), (8, 64), (8, 256))  # (stage lights per render, samples)
NOISE_REFERENCE = (34, 2048)
LAMPS = ((-0.7, 0.3, 0.65), (0.6, 0.5, 0.6), (0.0, -0.2, 1.0), (0.3, 0.9, -0.3))  # camera-frame-ish directions


def _compose_psnr(olats: np.ndarray, truth: np.ndarray, weights: np.ndarray, mask: np.ndarray) -> float:
    pred, gt = np.einsum("nhwc,nc->hwc", olats, weights), np.einsum("nhwc,nc->hwc", truth, weights)
    return 10 * math.log10(gt[mask].max() ** 2 / max(np.mean((pred - gt)[mask] ** 2), 1e-20))


def noise_table(seeds=(0, 1)) -> str:
    """Composition error of small lamps (10 degrees: a handful of OLATs, where each OLAT's own noise
    shows) and of an HDRI (all OLATs, where it averages out), for OLATs rendered with each (batch,
    samples) against the same person's OLATs rendered with many samples; seconds per view."""
    layout = builtin_layout("default")
    rows = ["| stage lights per render | samples | OLATs per view (s) | lamps 10 deg: PSNR, mean (min) | forest HDRI: PSNR |",
            "| ---: | ---: | ---: | ---: | ---: |"]
    cells: dict[tuple, list] = {}
    for seed in seeds:
        renders = {}
        for batch, spp in NOISE_GRID + (NOISE_REFERENCE,):
            scene = StageScene(person_subject(seed), {1: {}}, layout, np.repeat(layout.solid_angles[:, None], 3, 1),
                               RenderSettings(NOISE_RES, spp, batch, threads=1, seed=seed + 17 * spp + batch))
            scene.set_view(portrait_cameras(3, NOISE_RES, seed)[1], 1)
            t = time.perf_counter()
            olats, alpha = scene.render_olats()
            renders[batch, spp] = (olats, alpha, time.perf_counter() - t)
            scene.close()
        truth, alpha, _ = renders[NOISE_REFERENCE]
        mask = alpha > 0.999
        cam = portrait_cameras(3, NOISE_RES, seed)[1].c2w[:3, :3]
        lamp_weights = []
        for d in LAMPS:
            world = cam @ (np.array(d) / np.linalg.norm(d))
            lamp_weights.append(project_to_layout(lamp_map(32, world, math.radians(10), np.ones(3)), layout,
                                                  (0.0, 0.0, 0.0)).weights)
        forest = project_to_layout(load_environment(resolve_hdri("forest")), layout, HDRIS["forest"]).weights
        for key in NOISE_GRID:
            olats, _, seconds = renders[key]
            cells.setdefault(key, []).append(([_compose_psnr(olats, truth, w, mask) for w in lamp_weights],
                                              _compose_psnr(olats, truth, forest, mask), seconds))
    for (batch, spp), runs in cells.items():
        lamps = [p for r in runs for p in r[0]]
        rows.append(f"| {batch} | {spp} | {np.mean([r[2] for r in runs]):.1f} | {np.mean(lamps):.1f} dB "
                    f"({np.min(lamps):.1f}) | {np.mean([r[1] for r in runs]):.1f} dB |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", action="store_true", help="the OLAT batch/samples grid (section people-noise)")
    if parser.parse_args().noise:
        body = (f"## OLAT noise of synthetic people (`{COMMAND} --noise`)\n\n"
                f"Identities 0 and 1, one view, {NOISE_RES}x{NOISE_RES}, the 134-light `default` stage, one Cycles "
                f"thread, on {machine()}. Each setting's OLATs are composed into four 10-degree lamps and the forest "
                f"HDRI and compared with the same compositions of a reference rendered at "
                f"{NOISE_REFERENCE[1]} samples ({NOISE_REFERENCE[0]} lights per render). A render of b lights gives "
                "each light about 1/b of the light samples, so a lamp (a handful of OLATs) shows each OLAT's own "
                "noise, which an HDRI (all of them) averages away.\n\n" + noise_table() + "\n")
        write_section("people-noise", body)
        return
    table, sample = density_table()
    out = sheet(sample)
    body = (f"## Synthetic people (`{COMMAND}`)\n\n"
            f"Identities {list(SEEDS)} (`core.synthetic.person`), one head-and-shoulders view each, {RES}x{RES}, "
            f"{SPP} samples, on {machine()}. Each HDRI ({', '.join(HDRIS)}) is rendered by Cycles directly and "
            "composed from the identity's OLATs weighted by its projection on the stage (`project_to_layout`); "
            "the error is what the stage's discretisation and the OLATs' noise cost a training pair.\n\n"
            f"{table}\n\nContact sheet: `{out.relative_to(ROOT)}`.\n")
    write_section("people", body)


if __name__ == "__main__":
    main()
