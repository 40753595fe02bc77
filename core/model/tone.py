"""Exposure and tone curve with headroom (DESIGN.md, "Guidance and tone").

The codec and UNet see display-like values in [-1, 1]; relit's data is
scene-linear and an OLAT is about 1/N as bright as flat-lit. Images are
multiplied by an exposure, then mapped by a logarithmic curve that is
invertible over [0, white] (and linearly continued below 0, where noise can
push a prediction), so highlights up to ``white`` survive instead of clipping.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class ToneCurve:
    white: float = 8.0        # scene-linear value (after exposure) that maps to +1
    strength: float = 16.0    # curvature a of log1p(a x): larger keeps more shadow precision

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Exposed linear -> [-1, 1] (values above ``white`` exceed 1, still invertibly)."""
        norm = math.log1p(self.strength * self.white)
        pos = torch.log1p(self.strength * x.clamp(min=0)) / norm
        neg = self.strength * x.clamp(max=0) / norm
        return 2.0 * (pos + neg) - 1.0

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        norm = math.log1p(self.strength * self.white)
        t = (y + 1.0) / 2.0
        pos = torch.expm1(t.clamp(min=0) * norm) / self.strength
        neg = t.clamp(max=0) * norm / self.strength
        return pos + neg

    def to_json(self) -> dict:
        return asdict(self)
