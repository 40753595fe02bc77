"""Synthetic people: how dense a stage their OLATs need (composition error against Cycles rendering
the HDRI directly), the cost of one identity, and a contact sheet of identities.

    python bench/people.py            # writes docs/benchmarks.md (section people) and docs/people_contact_sheet.png
"""

from __future__ import annotations

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
from core.lighting.rig import Environment  # noqa: E402
from core.synthetic.cameras import portrait_cameras  # noqa: E402
from core.synthetic.hdris import builtin_hdri  # noqa: E402
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
        truth = {name: scene.render_environment(Environment(str(builtin_hdri(name)), rot, 1.0), builtin_hdri(name))
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
                w = project_to_layout(load_environment(builtin_hdri(name)), layout, rot).weights
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


def main() -> None:
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
