"""What a separate matte costs on a large plate, side by side in one run: the premultiplication with the
subject's edge colour (core.io.matting) against the plate times the matte, and the colour guided filter of
the automatic matte against the grey one (core.portrait.matte). Peak memory is numpy's (tracemalloc), in
planes of the plate's size (one float32 channel); time is CPU time of one thread.

    python bench/matte_cost.py [--size 3840x2160]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402


def _measure(fn) -> tuple[float, int]:  # (CPU seconds, peak bytes numpy allocated beyond the inputs)
    tracemalloc.start()
    start = time.process_time()
    fn()
    seconds = time.process_time() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    import cv2

    from core.io.matting import premultiplied
    from core.portrait.matte import MatteSettings, guided_filter, guided_filter_colour

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="3840x2160")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    w, h = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(0)
    plate = rng.random((h, w, 3), dtype=np.float32)           # a textured plate
    plate[h // 10:h // 10 + 40, w // 2:w // 2 + 200] = 300.0  # and a practical above the subject
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    matte = np.clip((0.3 * h - np.hypot(x - w / 2, y - h / 2)) / 20.0 + 0.5, 0.0, 1.0)  # a soft 20-px edge
    guide = np.ascontiguousarray(plate.clip(0.0, 1.0))
    radius = max(1, round(MatteSettings().guide_radius * max(h, w)))
    eps = MatteSettings().guide_eps
    plane = h * w * 4
    rows = [
        ("plate x matte (the naive premultiplication)", lambda: plate * matte[..., None]),
        ("premultiplied with the subject's edge colour (core.io.matting)", lambda: premultiplied(plate, matte)),
        ("guided filter, grey guide", lambda: guided_filter(guide.mean(axis=2), matte, radius, eps)),
        ("guided filter, colour guide (the automatic matte's)",
         lambda: guided_filter_colour(guide, matte, radius, 3 * eps)),
    ]
    lines = [f"A {w}x{h} plate; {machine()}, OpenCV and numpy on one thread; the same inputs for every row, one run. "
             "Peak: numpy's allocations during the call (tracemalloc), in float32 planes of the plate's size, the "
             "inputs not counted.", "",
             "| operation | CPU time | peak memory (planes) |", "| --- | ---: | ---: |"]
    for name, fn in rows:
        seconds, peak = _measure(fn)
        lines.append(f"| {name} | {seconds:.2f} s | {peak / plane:.1f} |")
    table = "\n".join(lines)
    write_section("matte-cost", f"## What a separate matte costs (`python bench/matte_cost.py --size {args.size}`)\n\n"
                  f"{table}\n")
    print(table)


if __name__ == "__main__":
    main()
