"""A volumetric performance from capture to relit passes (issue 30), through the product's own
commands, each stage resumable (rerun the same command to finish it):

    relit reconstruct CAPTURE --frames A-B --keyframes K --holdout-cameras cam05 -o WORK/recon
    relit render-views WORK/recon --camera cam05 -o WORK/views
    relit relight --input WORK/views/flat.####.exr --hdri forest --rotation 30 [--temporal 0.5] -o WORK/relit...

The relit camera is one the reconstruction never saw. Scored against Cycles' own frames of that
camera: the flat-lit render's PSNR, and the warping error of every sequence along Cycles' true
motion (the relit sequences blended and not, the flat renders, Cycles' frames themselves); beside it
the same relight of Cycles' true plates, so the chain's loss is the reconstruction's alone.

    python bench/volumetric_chain.py --capture ~/relit-work/perf240 --frames 1-120 --work ~/relit-work/chain
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

from bench.gaussians_sequence import HOLDOUT  # noqa: E402
from bench.report import machine, write_section  # noqa: E402


def _relit(*args: str) -> tuple[float, str]:
    """Run one ``relit`` command (the installed CLI): (its wall time in seconds, its stdout)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "core.cli", *args], check=True, cwd=ROOT, stdout=subprocess.PIPE,
                          text=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", type=Path, required=True)
    ap.add_argument("--frames", default="1-120")
    ap.add_argument("--work", type=Path, required=True, help="where the chain writes (kept: reruns resume)")
    ap.add_argument("--keyframes", default="8")
    ap.add_argument("--reconstruct", nargs=argparse.REMAINDER, default=[],
                    help="more relit reconstruct flags (last on the line), e.g. --kframe-iterations 3600")
    ap.add_argument("--hdri", default="forest")
    ap.add_argument("--rotation", default="30")
    ap.add_argument("--temporal", default="0.5")
    args = ap.parse_args()
    from core.data.capture import CaptureSet
    from core.io.passes import read_passes
    from core.io.plates import read_plate
    from core.io.sequence import parse_frame_range
    from core.model.metrics import psnr
    from core.temporal.metrics import warping_error

    capture = CaptureSet(args.capture)
    frames = parse_frame_range(args.frames)
    work = args.work
    lighting = ["--hdri", args.hdri, "--rotation", args.rotation]
    seconds, folders = {}, {}
    seconds["reconstruct"], _ = _relit("reconstruct", str(args.capture), "--frames", args.frames, "--keyframes",
                                       args.keyframes, "--holdout-cameras", HOLDOUT, "--quiet", "-o",
                                       str(work / "recon"), *args.reconstruct)
    seconds["render-views"], _ = _relit("render-views", str(work / "recon"), "--camera", HOLDOUT, "--quiet", "-o",
                                        str(work / "views"))
    truth_pattern = str(capture.root / capture.manifest.flat_images.replace("{frame:04d}", "####")
                        .format(camera=HOLDOUT))
    runs = {"relit": ["--input", str(work / "views" / "flat.####.exr")],
            "relit + blend": ["--input", str(work / "views" / "flat.####.exr"), "--temporal", args.temporal],
            "truth relit": ["--input", truth_pattern],
            "truth relit + blend": ["--input", truth_pattern, "--temporal", args.temporal]}
    for name, extra in runs.items():
        seconds[name], said = _relit("relight", *extra, "--frames", args.frames, *lighting, "--quiet", "-o",
                                     str(work / name.replace(" + ", "_").replace(" ", "_")))
        folders[name] = Path(said.split(": ", 1)[0])  # the version this job wrote or resumed ("OUT/vNNN: ...")

    def relit_sequence(name: str) -> list[np.ndarray]:
        found = {int(p.name.split(".")[-2]): p for p in folders[name].glob("*.exr")}
        return [read_passes(found[f])[1] for f in frames]

    plates = [capture.flat(HOLDOUT, f) for f in frames]
    alphas = [p.alpha for p in plates]
    masks = [a > 0.5 for a in alphas]
    motion = [capture.motion(HOLDOUT, f)[0] for f in frames]
    views = [read_plate(work / "views" / f"flat.{f:04d}.exr").rgb for f in frames]
    flat_psnr = float(np.mean([psnr(v, p.rgb, m) for v, p, m in zip(views, plates, masks)]))
    seqs = {name: relit_sequence(name) for name in runs}
    rows = [("Cycles flat-lit frames (the truth)", "—", warping_error([p.rgb for p in plates], motion, alphas)),
            ("reconstruction rendered flat-lit (render-views)", f"{flat_psnr:.2f}",
             warping_error(views, motion, alphas))]
    for name in ("relit", "relit + blend"):
        truth = seqs[f"truth {name}"]
        score = float(np.mean([psnr(s, t, m) for s, t, m in zip(seqs[name], truth, masks)]))
        rows.append((f"chain: {name}", f"{score:.2f} (vs the truth relit{' + blend' if 'blend' in name else ''})",
                     warping_error(seqs[name], motion, alphas)))
    for name in ("truth relit", "truth relit + blend"):
        rows.append((f"Cycles' plates {name.removeprefix('truth ')}", "—", warping_error(seqs[name], motion, alphas)))
    table = ["| sequence | PSNR on the subject (dB) | warping error (true motion) |", "| --- | --- | ---: |"]
    table += [f"| {label} | {p} | {100 * w:.2f} % |" for label, p, w in rows]
    cost = ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items())
    command = "python bench/volumetric_chain.py " + shlex.join(sys.argv[1:])
    write_section("volumetric-chain", f"""## A volumetric performance from capture to relit passes (`{command}`)

Machine: {machine()}. Capture `{args.capture}` frames {args.frames}; camera `{HOLDOUT}` held out of the
reconstruction and relit under `{args.hdri}` turned {args.rotation} degrees, by the bundle `relit relight`
chooses for the plate. The chain (each command resumes where it stopped):

```
relit reconstruct {args.capture} --frames {args.frames} --keyframes {args.keyframes} --holdout-cameras {HOLDOUT} \
{' '.join(args.reconstruct)} -o WORK/recon
relit render-views WORK/recon --camera {HOLDOUT} -o WORK/views
relit relight --input WORK/views/flat.####.exr --hdri {args.hdri} --rotation {args.rotation} [--temporal \
{args.temporal}] -o WORK/relit
```

{chr(10).join(table)}

Wall time of each stage on this run (a stage already done counts its check only): {cost}.
""")
    print("\n".join(table))


if __name__ == "__main__":
    main()
