"""Memory over a long sequence: `relit relight` streams frames, so resident memory must stay flat.

A 1000-frame job at 32 px, 1 DDIM step, three lights, with an untrained tiny bundle made here
(weights do not change the memory a frame needs); resident memory sampled after every frame.

    python bench/relight_memory.py --frames 1000
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402
from core.io.exr import write_rgba  # noqa: E402
from core.jobs import RelightJob  # noqa: E402
from core.lighting.rig import Light, LightRig  # noqa: E402

RES = 32


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def tiny_bundle(folder: Path) -> Path:
    import torch
    from diffusers import DDPMScheduler

    from core.lighting.layout import builtin_layout
    from core.model.bundle import BundleInfo, save_bundle
    from core.model.codec import UnshuffleCodec
    from core.model.config import preset
    from core.model.network import RelightModel
    from core.model.pipeline import RelightPipeline
    from core.model.tone import ToneCurve

    torch.manual_seed(0)
    cfg = preset("tiny", resolution=RES)
    pipe = RelightPipeline(RelightModel(cfg).eval(), DDPMScheduler(num_train_timesteps=1000),
                           UnshuffleCodec(2), ToneCurve(), 1.0, 1.0)
    layout = builtin_layout("rings16")
    info = BundleInfo(id="memory-bench", config=cfg, tone=pipe.tone, exposure_image=1.0, exposure_target=1.0,
                      layout=layout, stage_irradiance=None, subject=None, training={}, licence="")
    return save_bundle(folder, pipe, info)


def plates(folder: Path, frames: range) -> str:
    """Random-textured discs (premultiplied, alpha = the disc) as flat.####.exr; returns the pattern."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:RES, 0:RES]
    alpha = (((yy - RES / 2) ** 2 + (xx - RES / 2) ** 2) < (0.4 * RES) ** 2).astype(np.float32)
    for f in frames:
        write_rgba(folder / f"flat.{f:04d}.exr", rng.random((RES, RES, 3)).astype(np.float32) * alpha[..., None],
                   alpha)
    return str(folder / "flat.####.exr")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--out", default="out/bench_memory")
    args = ap.parse_args()
    from core.relight_job import run_relight

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    bundle = tiny_bundle(out / "bundle")
    pattern = plates(out / "plates", range(1, args.frames + 1))
    rig = LightRig([Light("key", "area", (0.3, 0.4, 0.866), 0.1, (1, 1, 1), 2.0),
                    Light("fill", "area", (-0.7, 0.0, 0.714), 0.5, (1, 1, 1), 0.5),
                    Light("rim", "area", (0.6, 0.2, -0.77), 0.0, (1, 1, 1), 1.0)])
    job = RelightJob(bundle=str(bundle), input=pattern, output=str(out / "relit"),
                     rig=rig.to_json(), steps=1)
    samples: dict[int, float] = {}
    start = time.perf_counter()

    def sample(event) -> None:
        if event.stage == "frames":
            samples[event.done] = rss_mib()

    run_relight(job, sample)
    seconds = time.perf_counter() - start
    n = args.frames
    marks = [m for m in (1, 10, 100, 500, 1000, n) if m <= n]
    marks = sorted(set(marks))
    tail = np.array([samples[i] for i in range(max(2, n // 10), n + 1)])
    slope = np.polyfit(np.arange(len(tail)), tail, 1)[0] * 1000 if len(tail) > 2 else 0.0
    rows = ["| after frame | resident memory (MiB) |", "| ---: | ---: |"] + \
           [f"| {m} | {samples[m]:.1f} |" for m in marks]
    command = "python bench/relight_memory.py " + shlex.join(sys.argv[1:])
    write_section("relight-memory", f"""## Memory over a long sequence (`{command}`)

Machine: {machine()}. {n} frames at {RES} px, 1 DDIM step, 3 lights, an untrained tiny bundle (memory does
not depend on the weights); resident set size of the process after each frame is written.

{chr(10).join(rows)}

Growth fitted over frames {max(2, n // 10)}-{n}: {slope:.2f} MiB per 1000 frames. Whole run {seconds:.0f} s
({1000 * seconds / n:.0f} ms per frame, mostly EXR reading/writing and process overhead at this size).
""")
    print("\n".join(rows), f"\nslope {slope:.2f} MiB/1000 frames, {seconds:.0f} s")


if __name__ == "__main__":
    main()
