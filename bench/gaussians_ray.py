"""Segments on Ray against one process (issue 30): the same reconstruction, made by ``relit
reconstruct`` in one process and with ``--ray`` (a local cluster, two workers), side by side in one
run. The K-frame model trains in the driver either way; the segments of a wave are independent
(with neighbour anchors, the default, the even segments train first, then the odd ones), so two
workers train a wave's segments two at a time. Each run is timed whole, cluster start included, and
the two reconstructions are compared model by model (``train_segment`` is the in-process training
of that segment, so they should agree to rounding).

    python bench/gaussians_ray.py --capture ~/relit-work/perf240 --frames 1-60 --keyframes 5 \\
        --work ~/relit-work/gs-ray
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gaussians_sequence import HOLDOUT  # noqa: E402
from bench.report import machine, write_section  # noqa: E402


def _timed(args: list[str]) -> float:
    """Wall seconds of one ``relit`` command (the installed CLI, this interpreter)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core.cli", *args], check=True, cwd=ROOT)
    return time.perf_counter() - start


def _largest_difference(a: Path, b: Path) -> tuple[int, float]:
    """(models compared, the largest absolute difference of any parameter) between two reconstruction
    folders."""
    from safetensors.torch import load_file

    models = sorted(p.name for p in a.glob("*.safetensors"))
    if models != sorted(p.name for p in b.glob("*.safetensors")):
        raise SystemExit(f"{a} and {b} hold different models")
    worst = 0.0
    for name in models:
        ta, tb = load_file(a / name), load_file(b / name)
        worst = max([worst] + [float((ta[k] - tb[k]).abs().max()) for k in ta])
    return len(models), worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--capture", type=Path, required=True, help="a multi-view flat-lit sequence (relit synth)")
    ap.add_argument("--frames", default="1-60")
    ap.add_argument("--keyframes", type=int, default=5, help="K (K - 1 segments, in two waves)")
    ap.add_argument("--kframe-iterations", type=int, default=600)
    ap.add_argument("--segment-iterations", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (emptied first)")
    ap.add_argument("--section", default="gaussians-ray")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    common = [str(args.capture), "--frames", args.frames, "--keyframes", str(args.keyframes), "--kframe-iterations",
              str(args.kframe_iterations), "--segment-iterations", str(args.segment_iterations), "--warmup",
              str(args.warmup), "--holdout-cameras", HOLDOUT, "--quiet"]
    local = _timed(["reconstruct", *common, "-o", str(args.work / "local")])
    ray = _timed(["reconstruct", *common, "--ray", "--workers", str(args.workers), "-o", str(args.work / "ray")])
    models, worst = _largest_difference(args.work / "local", args.work / "ray")
    segments = args.keyframes - 1
    iterations = args.kframe_iterations + segments * args.segment_iterations
    command = "python bench/gaussians_ray.py " + shlex.join(sys.argv[1:])
    body = f"""## Dynamic 3DGS: segments on Ray against one process (`{command}`)

Machine: {machine()}, nothing else running. The same `relit reconstruct` (frames {args.frames} of
`{args.capture}`, K = {args.keyframes}: the K-frame model ({args.kframe_iterations} iterations) and
{segments} segments of {args.segment_iterations}, in two waves of independent segments; camera
`{HOLDOUT}` held out), once in one process (torch's default threads) and once with `--ray --workers
{args.workers}` (a local cluster started by the command, one CPU and one thread per task; the
K-frame model trains in the driver). Wall time of the whole command.

| run | wall time | speed-up over one process |
| --- | ---: | ---: |
| one process | {local:.1f} s | 1.00 |
| Ray, {args.workers} workers | {ray:.1f} s | {local / ray:.2f} |

{iterations} iterations in all. The two runs' {models} models differ by at most {worst:.2g} in any
parameter (the same training, task by task).
"""
    write_section(args.section, body)
    print(body)


if __name__ == "__main__":
    main()
