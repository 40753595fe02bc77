"""The CPU tiled rasteriser against the all-pairs reference: time (forward and backward) side by
side in one run at 10 k Gaussians, 128x128, and their agreement. On a CUDA machine it also
compares the pure-torch path with gsplat's CUDA rasterization (max error, render FPS).

    python bench/gaussians_raster.py --gaussians 10000 --size 128
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import machine, write_section  # noqa: E402
from core.gaussians.raster import dense_rasterize, rasterize_torch  # noqa: E402


def scene(n: int, size: int, device: str = "cpu"):
    g = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=g) * torch.tensor([0.5, 0.5, 0.3]) + torch.tensor([0.0, 0.0, 3.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.randn(n, 3, generator=g) * 0.3 - 3.5)
    opacities = torch.rand(n, generator=g) * 0.9 + 0.05
    colors = torch.rand(n, 3, generator=g)
    Ks = torch.tensor([[[1.2 * size, 0, size / 2], [0, 1.2 * size, size / 2], [0, 0, 1]]])
    tensors = [t.to(device) for t in (means, quats, scales, opacities, colors, torch.eye(4)[None], Ks)]
    return tensors, size


def timed(fn, tensors, size, repeats: int) -> tuple[float, float, torch.Tensor]:
    """(forward s, forward+backward s, image) median over repeats."""
    fwd, both = [], []
    for _ in range(repeats):
        leaves = [t.clone().requires_grad_(i < 5) for i, t in enumerate(tensors)]
        t0 = time.perf_counter()
        out = fn(*leaves, size, size)
        t1 = time.perf_counter()
        out[0].sum().backward()
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        both.append(t2 - t0)
    return sorted(fwd)[len(fwd) // 2], sorted(both)[len(both) // 2], out[0].detach()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gaussians", type=int, default=10000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tensors, size = scene(args.gaussians, args.size)
    tiled = timed(lambda *a: rasterize_torch(*a), tensors, size, args.repeats)
    dense = timed(lambda *a: dense_rasterize(*a), tensors, size, 1)
    err = float((tiled[2] - dense[2]).abs().max())
    rows = ["| rasteriser | forward | forward + backward |", "| --- | ---: | ---: |",
            f"| pure-torch tiled (16x16 tiles) | {tiled[0]:.2f} s | {tiled[1]:.2f} s |",
            f"| all-pairs reference | {dense[0]:.2f} s | {dense[1]:.2f} s |"]
    gpu = "No GPU in this run: the gsplat CUDA comparison and render FPS are for a lent GPU machine."
    if torch.cuda.is_available():
        from gsplat import rasterization

        cuda, _ = scene(args.gaussians, args.size, "cuda")
        ref = rasterization(*cuda[:5], cuda[5], cuda[6], size, size)[0]
        ours = rasterize_torch(*[t.cpu() for t in cuda], size, size)[0]
        gerr = float((ref.cpu() - ours).abs().max())
        big, _ = scene(args.gaussians, 1080, "cuda")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            rasterization(*big[:5], big[5], big[6], 1920, 1080)
        torch.cuda.synchronize()
        fps = 20 / (time.perf_counter() - t0)
        gpu = (f"GPU ({torch.cuda.get_device_name()}): max |pure torch - gsplat CUDA| = {gerr:.2e}; gsplat renders "
               f"{args.gaussians} Gaussians at 1920x1080 at {fps:.0f} FPS.")
    command = "python bench/gaussians_raster.py " + shlex.join(sys.argv[1:])
    write_section("gaussians-raster", f"""## Gaussian rasterisation on CPU (`{command}`)

Machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads. {args.gaussians} random
Gaussians, {size}x{size}, one camera; medians of {args.repeats} runs (the reference once). Side by side in
one run: the tiled path is **{dense[0] / tiled[0]:.1f}x** faster than the all-pairs reference forward and
**{dense[1] / tiled[1]:.1f}x** forward + backward; max difference between their images {err:.1e}.

{chr(10).join(rows)}

{gpu}
""")
    print("\n".join(rows), err)


if __name__ == "__main__":
    main()
