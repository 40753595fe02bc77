"""Light -> cross-attention token: DifFRelight's degree-3 SH of the camera-frame direction.

The encoding a model was trained with is recorded in its bundle
(``LightEncoding.to_json``) so inference encodes lights the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .area import cap_band_factors, radius_from_beta, sg_band_factors
from .sh import band_expand, real_sh, sh_count

BETA_ENCODINGS = ("scale", "cap", "sg")


@dataclass(frozen=True)
class LightEncoding:
    degree: int = 3             # SH degree; DifFRelight uses 3 (16 numbers)
    width: int = 16             # token width the SH vector is zero-padded to (cross-attention dim)
    beta_encoding: str = "scale"  # "scale": direction scaled by 1-beta; "cap"/"sg": exact zonal bands
    stage_radius: float = 0.18  # angular radius (rad) of one stage OLAT, where beta = 0

    def __post_init__(self) -> None:
        if self.beta_encoding not in BETA_ENCODINGS:
            raise ValueError(f"beta_encoding must be one of {BETA_ENCODINGS}, got {self.beta_encoding!r}")
        if self.width < sh_count(self.degree):
            raise ValueError(f"token width {self.width} is smaller than the {sh_count(self.degree)} SH coefficients")

    def band_factors(self, beta: np.ndarray) -> np.ndarray:  # [N] -> [N, degree+1]
        """Per-band attenuation of each light's SH for its size beta."""
        beta = np.clip(np.asarray(beta, dtype=np.float64).reshape(-1), 0.0, 1.0)
        if self.beta_encoding == "scale":
            return (1.0 - beta)[:, None] ** np.arange(self.degree + 1)[None, :]
        fn = cap_band_factors if self.beta_encoding == "cap" else sg_band_factors
        return np.stack([fn(float(radius_from_beta(b, self.stage_radius)), self.degree) for b in beta])

    def encode(self,
               directions: np.ndarray,  # [N, 3] camera-frame unit directions towards the lights
               beta: np.ndarray,        # [N] sizes in [0, 1]
               ) -> np.ndarray:         # [N, width] float32
        """SH tokens of lights, zero-padded to ``width``."""
        d = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
        norms = np.linalg.norm(d, axis=-1)
        if np.any(norms < 1e-8):
            raise ValueError("a light direction is the zero vector; give the direction towards the light")
        d = d / norms[:, None]
        sh = real_sh(d, self.degree) * band_expand(self.band_factors(beta), self.degree)
        out = np.zeros((d.shape[0], self.width), dtype=np.float32)
        out[:, : sh.shape[1]] = sh
        return out

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "LightEncoding":
        return cls(**data)
