"""Self-consistency (no ground truth): the predictions for every stage direction, weighted by the
stage irradiance, must add back up to the input. On the demo's held-out view and on a real photo.

    python bench/consistency.py --bundle bundle/default --demo out/demo
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
from core.data.capture import CaptureSet  # noqa: E402
from core.io.colour import convert  # noqa: E402
from core.io.plates import fit_square  # noqa: E402
from core.model.bundle import load_bundle  # noqa: E402
from core.relight.frame import RelightSettings, consistency_error  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", default="bundle/default")
    ap.add_argument("--demo", default="out/demo", help="a finished `relit demo` folder")
    ap.add_argument("--steps", type=int, help="sampler steps (default: the bundle's recipe)")
    args = ap.parse_args()
    pipe, info = load_bundle(args.bundle)
    settings = RelightSettings(steps=int(info.recipe["steps"]) if args.steps is None else args.steps)
    rows = ["| input | matte | error |", "| --- | --- | ---: |"]
    demo = CaptureSet(Path(args.demo) / "subject")
    cam = demo.manifest.cameras[0]
    plate = demo.flat(cam.name, demo.manifest.frames[0].frame)
    # framed as relit relight frames it
    from core.io.framing import Framing, to_model
    from core.portrait.face_geometry import plate_landmarks
    from core.relight.frame import face_normals_of, prepare_plate

    prepared = prepare_plate(plate.rgb, plate.alpha, info.config.resolution, normals=info.config.normals)
    plate_rgb, plate_alpha = prepared.model_input, to_model(prepared.matte[..., None], prepared.framing)[..., 0]
    err, _ = consistency_error(pipe, info, plate_rgb, plate_alpha, settings, c2w=cam.c2w,
                               normals=prepared.normals)
    rows.append(f"| demo held-out view ({info.subject}, frontal camera, synthetic) | rendered alpha | {100 * err:.1f} % |")
    err_front, _ = consistency_error(pipe, info, plate_rgb, plate_alpha, settings,
                                     normals=prepared.normals)
    rows.append(f"| same, stage directions taken in the default front frame | rendered alpha | {100 * err_front:.1f} % |")
    from skimage import data as skdata

    photo = convert(skdata.astronaut().astype(np.float32) / 255.0, "srgb_tx", "lin_rec709")
    rgb, alpha = fit_square(photo, np.ones(photo.shape[:2], np.float32), info.config.resolution)
    res = info.config.resolution
    whole = Framing(0, 0, res, res, res, res)
    geometry = face_normals_of(plate_landmarks(rgb, whole), whole) if info.config.normals else None
    err_photo, _ = consistency_error(pipe, info, rgb, alpha, settings, normals=geometry)
    rows.append(f"| `skimage.data.astronaut()` (real photo, another person, whole frame) | none (all pixels) | "
                f"{100 * err_photo:.1f} % |")
    command = "python bench/consistency.py " + shlex.join(sys.argv[1:])
    write_section("consistency", f"""## Self-consistency (`{command}`)

Machine: {machine()}. Bundle `{info.id}` ({len(info.layout)} stage directions, {settings.steps} sampler steps of its {info.recipe["objective"]["name"]} objective, guidance 1; the raw predictions, before any ratio correction).
Error: mean absolute difference between the input and the sum of the predicted stage OLATs weighted by the
stage irradiance the bundle records, relative to the input's mean, over matte pixels. It needs no ground truth.
For reference, the rendered OLATs themselves sum to the flat-lit render within the render noise (< 1 % at
1024 spp, `tests/test_relight_frame.py`).

{chr(10).join(rows)}
""")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
