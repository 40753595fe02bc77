"""A set of 3D Gaussians as trainable parameters (gsplat's naming, so its strategies can manage them)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

SH_C0 = 0.28209479177387814  # degree-0 real SH constant: colour = SH_C0 * sh0 + 0.5


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / SH_C0


def init_params(points: np.ndarray,   # [N, 3] world positions
                rgb: np.ndarray,      # [N, 3] colours in [0, 1]
                scale: float,         # initial isotropic scale (m)
                opacity: float = 0.3,
                sh_degree: int = 1,
                ) -> nn.ParameterDict:
    """Parameters of N Gaussians: means, quats, log scales, opacity logits, SH (sh0 + higher bands)."""
    n = len(points)
    k = (sh_degree + 1) ** 2
    return nn.ParameterDict({
        "means": nn.Parameter(torch.as_tensor(points, dtype=torch.float32)),
        "quats": nn.Parameter(torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1)),
        "scales": nn.Parameter(torch.full((n, 3), math.log(scale))),
        "opacities": nn.Parameter(torch.full((n,), math.log(opacity / (1 - opacity)))),
        "sh0": nn.Parameter(rgb_to_sh0(torch.as_tensor(rgb, dtype=torch.float32))[:, None, :]),
        "shN": nn.Parameter(torch.zeros(n, k - 1, 3)),
    })


def activated(params: nn.ParameterDict | dict) -> dict[str, torch.Tensor]:
    """What the rasteriser takes: unit quaternions, scales, opacities in (0, 1), SH coefficients."""
    return {"means": params["means"], "quats": torch.nn.functional.normalize(params["quats"], dim=-1),
            "scales": torch.exp(params["scales"]), "opacities": torch.sigmoid(params["opacities"]),
            "colors": torch.cat([params["sh0"], params["shN"]], dim=1)}

