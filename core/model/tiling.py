"""Patch-trained models on whole frames: overlapping tiles, blended.

A model trained on ``patch``-pixel crops of its frames (``ModelConfig.patch``) sees the subject at
the frame's full resolution for the cost of a patch-sized step. At inference every network
evaluation runs on overlapping tiles of the patch's size and the tiles' outputs are blended
(MultiDiffusion, Bar-Tal et al. 2023): each tile is exactly the input the network was trained on
(its group norms and attention see a patch, as in training), so the tiled frame is the network's
own patch predictions, and the blend only joins them.

Blend weights are separable. Along a side that a neighbouring tile overlaps, a tile's weight is 0
over the outer quarter of the overlap and rises linearly to 1 at its middle, so the neighbour has
the seam to itself where this tile's view is cut, and every pixel has a positive total weight;
a side on the frame's edge keeps weight 1 to the edge.
"""

from __future__ import annotations

from typing import Callable

import torch

TILE_OVERLAP = 0.5  # share of a tile its neighbour overlaps (stride: half a tile)

TileFn = Callable[[slice, slice], torch.Tensor]  # (rows, cols) of the latent -> [B, C, tile, tile] output there


def tile_offsets(size: int, tile: int, stride: int) -> list[int]:
    """Starts of tiles covering ``size`` latent pixels: every ``stride``, the last flush with the end."""
    if tile >= size:
        return [0]
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def tile_count(size: int, tile: int, stride: int) -> int:
    """Tiles over a square of ``size`` latent pixels."""
    return len(tile_offsets(size, tile, stride)) ** 2


def axis_weights(size: int, tile: int, starts: list[int]) -> torch.Tensor:  # [T, size]
    """Each tile's 1-D blend weight over the axis (zero outside the tile)."""
    out = torch.zeros(len(starts), size)
    idx = torch.arange(tile, dtype=torch.float32)
    for k, s in enumerate(starts):
        w = torch.ones(tile)
        if k > 0:  # the previous tile overlaps this one's first pixels
            w = torch.minimum(w, _ramp(idx, starts[k - 1] + tile - s))
        if k < len(starts) - 1:
            w = torch.minimum(w, _ramp(tile - 1 - idx, s + tile - starts[k + 1]))
        out[k, s:s + tile] = w
    return out


def _ramp(distance: torch.Tensor, overlap: int) -> torch.Tensor:
    """0 within overlap/4 of the cut edge, 1 from overlap/2 on, linear between; no fade where the
    overlap is under 2 pixels (both tiles then count fully there, and no pixel is left at weight 0)."""
    if overlap < 2:
        return torch.ones_like(distance)
    quarter = overlap / 4.0
    return ((distance + 0.5 - quarter) / quarter).clamp(0.0, 1.0)


def frame_position(size: int,  # the frame's side in latent pixels
                   rows: slice = slice(None), cols: slice = slice(None),  # a tile of it
                   ) -> torch.Tensor:  # [2, tile rows, tile cols]
    """Each latent pixel's place in the frame, (row, column) in [-1, 1] at pixel centres: the position
    channels of a patch model (ModelConfig.position), the same for a training crop and a tile."""
    c = (torch.arange(size, dtype=torch.float32) + 0.5) * (2.0 / size) - 1.0
    return torch.stack(torch.meshgrid(c[rows], c[cols], indexing="ij"))


def tiled(fn: TileFn, shape: tuple[int, ...],  # [B, C, h, w] of the output
          tile: int, stride: int) -> torch.Tensor:  # [B, C, h, w]
    """``fn`` evaluated on every tile and blended into a frame of ``shape``."""
    h, w = shape[-2:]
    rows, cols = tile_offsets(h, tile, stride), tile_offsets(w, tile, stride)
    wy, wx = axis_weights(h, min(tile, h), rows), axis_weights(w, min(tile, w), cols)
    out, total = None, torch.zeros(h, w)
    for i, y in enumerate(rows):
        for j, x in enumerate(cols):
            ys, xs = slice(y, y + min(tile, h)), slice(x, x + min(tile, w))
            part = fn(ys, xs)
            if out is None:
                out = torch.zeros(shape, dtype=part.dtype, device=part.device)
            weight = (wy[i, ys, None] * wx[j, None, xs]).to(part)
            out[..., ys, xs] += weight * part
            total[ys, xs] += weight.cpu().float()
    return out / total.to(out)
