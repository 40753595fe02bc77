"""Boil on a panning plate (issue 27): a still plate panned 2 px per frame, relit with and without
`--temporal`, through `relit relight`, with a subject-specific bundle on its subject and with the
portrait bundle on a synthetic person. The true motion is the pan itself (a whole-pixel shift), so
Cycles' own warping error on this sequence is 0: every bit of it is the relighting's boil.

    python bench/temporal_pan.py --plate SUBJECT_FLAT.exr --person PERSON_FLAT.exr --out out/bench_pan
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402
from core.io.exr import write_rgba  # noqa: E402
from core.io.passes import read_passes  # noqa: E402
from core.io.plates import SUBJECT_ATTRIBUTE, read_plate  # noqa: E402
from core.jobs import TEMPORAL_WEIGHT, RelightJob  # noqa: E402
from core.lighting.hdri import resolve_hdri  # noqa: E402
from core.lighting.rig import Environment, Light, LightRig  # noqa: E402
from core.relight_job import run_relight  # noqa: E402
from core.temporal.metrics import warping_error  # noqa: E402

FRAMES = 12
PANS = (2.0, 1.5)  # pixels per frame: a whole-pixel pan, and one the plate is resampled for


def pan_plates(plate_path: str, folder: Path, pan: float) -> tuple[str, list[np.ndarray]]:
    """The plate padded and seen through a window moving ``pan`` px right per frame (bilinear, exact for
    a whole-pixel pan): name.####.exr and the per-frame mattes."""
    from core.io.exr import read_info
    from core.temporal.flow import warp

    plate = read_plate(plate_path)
    subject = read_info(plate_path).parts[0].attributes.get(SUBJECT_ATTRIBUTE)
    h, w = plate.alpha.shape
    pad = int(np.ceil(max(PANS) * FRAMES))
    big = np.zeros((h, w + 2 * pad, 4), np.float32)
    big[:, pad:pad + w] = np.concatenate([plate.rgb, plate.alpha[..., None]], -1)
    mattes = []
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(FRAMES):
        shift = np.tile(np.array([pad / 2 + pan * f, 0.0], np.float32), big.shape[:2] + (1,))
        frame = warp(big, shift)[:, :w]
        write_rgba(folder / f"flat.{f + 1:04d}.exr", frame[..., :3], frame[..., 3],
                   {SUBJECT_ATTRIBUTE: subject} if subject else None)
        mattes.append(frame[..., 3])
    return str(folder / "flat.####.exr"), mattes


def boil(bundle: str, plate: str, out: Path, rig: LightRig, pan: float) -> list[tuple[str, float, float]]:
    pattern, mattes = pan_plates(plate, out / "plates", pan)
    h, w = mattes[0].shape
    motion = [np.zeros((h, w, 2), np.float32)] + [np.tile(np.array([pan, 0], np.float32), (h, w, 1))] * (FRAMES - 1)
    plates = [read_plate(pattern.replace("####", f"{f + 1:04d}")).rgb for f in range(FRAMES)]
    rows = []
    for temporal in (0.0, TEMPORAL_WEIGHT):
        job = RelightJob(bundle=bundle, input=pattern, output=str(out / f"t{temporal}"), rig=rig.to_json(),
                         temporal=temporal, seed=0)
        report = run_relight(job)
        beauty = [read_passes(f.path)[1] for f in report.frames]
        ratio = [b / np.maximum(p, 1e-3) * (m[..., None] > 0.5) for b, p, m in zip(beauty, plates, mattes)]
        rows.append((f"--temporal {temporal}" if temporal else "no blending", warping_error(beauty, motion, mattes),
                     warping_error(ratio, motion, mattes)))
    rows.append(("the plate itself", warping_error(plates, motion, mattes), 0.0))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plate", required=True, help="a flat-lit plate of the subject-specific bundle's subject")
    ap.add_argument("--bundle", default="bundle/default")
    ap.add_argument("--person", required=True, help="a synthetic person's plate (never trained on) for the "
                                                    "portrait bundle")
    ap.add_argument("--portrait", default="bundle/portrait")
    ap.add_argument("--out", default="out/bench_pan")
    args = ap.parse_args()
    rig = LightRig([Light("key", "area", (0.6, 0.3, 0.74), 0.2, (1.0, 0.85, 0.7), 2.0)],
                   Environment(str(resolve_hdri("sunset")), (0.0, 0.0, 0.5), 0.5))
    out = Path(args.out)
    table = ["| bundle | pan (px / frame) | relit | warping error of the beauty (true motion) | of the relit / "
             "plate ratio |", "| --- | ---: | --- | ---: | ---: |"]
    for bundle, plate, name in ((args.bundle, args.plate, "subject"), (args.portrait, args.person, "person")):
        for pan in PANS:
            for label, beauty, ratio in boil(bundle, plate, out / f"{name}_{pan}", rig, pan):
                table.append(f"| `{bundle}` | {pan:g} | {label} | {100 * beauty:.2f} % | {100 * ratio:.2f} % |")
    command = "python bench/temporal_pan.py " + shlex.join(sys.argv[1:])
    write_section("temporal-pan", f"""## Boil on a panning plate, blended and not (`{command}`)

Machine: {machine()}. Plates: `{args.plate}` (the subject-specific bundle's subject) and `{args.person}`
(a synthetic person never trained on), padded and panned {' and '.join(f'{p:g}' for p in PANS)} px per frame
over {FRAMES} frames (bilinear; the true motion is the pan, and a whole-pixel pan is an exact shift, whose
warping error Cycles' and the plate's is 0),
relit with a key and a half-strength `sunset` HDRI through `relit relight` (each bundle's recipe and
HDRI strategy), without and with `--temporal {TEMPORAL_WEIGHT}`. Warping error as in the temporal section:
mean |I_f(p) - I_(f-1)(p + motion)| over subject pixels seen in both frames, relative to the mean;
the same for the relit / plate ratio (what a pan should leave still).

{chr(10).join(table)}
""")
    print("\n".join(table))


if __name__ == "__main__":
    main()
