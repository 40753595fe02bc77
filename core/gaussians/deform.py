"""The deformation field: a HexPlane (multi-resolution space-time feature planes) feeding small MLP
heads for position, rotation and scale offsets. The heads' last layers start at zero, so a new
field is exactly the identity (a test locks this)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

PLANES = list(combinations(range(4), 2))  # (x,y) (x,z) (x,t) (y,z) (y,t) (z,t): 3 spatial + 3 space-time


@dataclass(frozen=True)
class DeformConfig:
    resolutions: tuple[int, ...] = (16, 32)  # spatial plane resolutions (one HexPlane per entry)
    time_resolution: int = 8                 # cells along time in the space-time planes
    features: int = 16                       # channels per plane
    hidden: int = 64                         # MLP width
    layers: int = 1                          # hidden layers of the shared trunk


class HexPlane(nn.Module):
    """Six feature planes per resolution; a point's feature is the product of its six bilinear
    samples (space-time planes start at 1, so a new field has no time dependence)."""

    def __init__(self, cfg: DeformConfig):
        super().__init__()
        self.cfg = cfg
        grids = []
        for res in cfg.resolutions:
            for a, b in PLANES:
                size = [res if d < 3 else cfg.time_resolution for d in (b, a)]  # rows along b, columns along a
                init = torch.ones(1, cfg.features, *size) if 3 in (a, b) else \
                    torch.empty(1, cfg.features, *size).uniform_(0.1, 0.5)
                grids.append(nn.Parameter(init))
        self.grids = nn.ParameterList(grids)

    @property
    def out_features(self) -> int:
        return self.cfg.features * len(self.cfg.resolutions)

    def forward(self, xyzt: torch.Tensor) -> torch.Tensor:  # [N, 4] in [-1, 1] -> [N, out_features]
        feats, i = [], 0
        for _ in self.cfg.resolutions:
            prod = None
            for a, b in PLANES:
                coords = xyzt[:, [a, b]].view(1, -1, 1, 2)  # grid_sample's (x, y) = (column, row)
                sample = F.grid_sample(self.grids[i], coords, align_corners=True, padding_mode="border")
                sample = sample.view(self.cfg.features, -1).t()
                prod = sample if prod is None else prod * sample
                i += 1
            feats.append(prod)
        return torch.cat(feats, dim=-1)


class Deformation(nn.Module):
    """(means, quats, log scales, t) -> the same at time t; identity when new."""

    def __init__(self, cfg: DeformConfig, bounds: torch.Tensor):  # bounds [2, 3]: scene box min, max
        super().__init__()
        self.field = HexPlane(cfg)
        self.register_buffer("bounds", bounds.float())
        layers, width = [], self.field.out_features
        for _ in range(cfg.layers):
            layers += [nn.Linear(width, cfg.hidden), nn.ReLU()]
            width = cfg.hidden
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({"means": nn.Linear(width, 3), "quats": nn.Linear(width, 4),
                                    "scales": nn.Linear(width, 3)})
        for head in self.heads.values():
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, t: float):
        """``t`` in [0, 1] over the span the field covers; returns deformed (means, quats, log scales)."""
        lo, hi = self.bounds
        xyz = (2 * (means - lo) / (hi - lo) - 1).clamp(-1, 1)
        time = torch.full_like(xyz[:, :1], 2 * float(t) - 1)
        h = self.trunk(self.field(torch.cat([xyz, time], dim=-1)))
        return (means + self.heads["means"](h), quats + self.heads["quats"](h), scales + self.heads["scales"](h))
