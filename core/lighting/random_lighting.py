"""Random lightings for training the portrait model, as world lat-long maps.

Every lighting is a lat-long radiance map, so the image a model is conditioned on and the OLAT
weights that compose the training image (``project_to_layout``) come from one description. Kinds:

- ``hdri``: an environment turned about the vertical (and a little about the others), optionally
  tinted;
- ``lamps``: 1-3 area lights (discs of 4-40 degrees radius), each with its own colour and
  strength, over an optional dim ambient;
- ``flat``: a uniform white environment (the flat-lit image);
- ``mixed``: an environment plus a lamp.

The maps are normalised to unit mean radiance (a uniform white environment of radiance 1 has mean
1): the portrait convention is that a plate's own light counts as unit mean radiance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .latlong import pixel_directions, pixel_solid_angles
from .resample import sample_latlong
from .rotation import lookup_directions

KINDS = ("hdri", "lamps", "flat", "mixed")


@dataclass(frozen=True)
class LightingMix:
    """How often each kind is drawn (relative weights, in the order of KINDS)."""

    hdri: float = 0.45
    lamps: float = 0.30
    flat: float = 0.10
    mixed: float = 0.15
    tint: float = 1.0  # scale of the chance that an HDRI (30 %) or a lamp (40 %) is tinted; 0: never

    def probabilities(self) -> np.ndarray:  # [4]
        p = np.array([self.hdri, self.lamps, self.flat, self.mixed], dtype=np.float64)
        return p / p.sum()


# the target lightings an envmap model is trained to relight to (TrainConfig.target_lighting): any
# drawn lighting (SynthLight), or only the flat-lit (a delighter: the first stage of the two-stage design)
FLAT_TARGET = "flat"  # a delighter's target lighting (core.relight.delight)
TARGET_LIGHTINGS: dict[str, LightingMix] = {"any": LightingMix(),
                                            FLAT_TARGET: LightingMix(hdri=0.0, lamps=0.0, flat=1.0, mixed=0.0)}


def mean_radiance(latlong: np.ndarray) -> float:  # mean over the sphere and the channels
    omega = pixel_solid_angles(*latlong.shape[:2])[..., None]
    return float((latlong * omega).sum() / (3.0 * omega.sum()))


def _tint(rng: np.random.Generator, strength: float) -> np.ndarray:  # [3], max 1
    c = 1.0 - strength * rng.random(3)
    return c / c.max()


def _turned(pixels: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    """``pixels`` resampled at ``height`` rows under a random rotation (full yaw, small tilt)."""
    rotation = (rng.normal(0.0, 0.15), rng.normal(0.0, 0.15), rng.uniform(0.0, 2.0 * math.pi))
    dirs = pixel_directions(height, 2 * height)
    return sample_latlong(pixels, lookup_directions(dirs, rotation)).astype(np.float32)


def _random_direction(rng: np.random.Generator, towards: np.ndarray | None) -> np.ndarray:  # [3]
    """Uniform on the sphere; with ``towards`` (a unit vector), mostly within 100 degrees of it."""
    while True:
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        if towards is None or d @ towards > math.cos(math.radians(100.0)) or rng.random() < 0.15:
            return d


def lamp_map(height: int, centre: np.ndarray, radius: float, rgb: np.ndarray) -> np.ndarray:  # [h, 2h, 3]
    """A disc of angular ``radius`` (rad) around unit ``centre``, of radiance ``rgb``, on black; a disc
    smaller than a texel still keeps its energy (it lands on the nearest texel)."""
    dirs = pixel_directions(height, 2 * height)
    inside = dirs @ centre >= math.cos(radius)
    out = np.zeros((height, 2 * height, 3), np.float32)
    omega = pixel_solid_angles(height, 2 * height)
    disc = 2.0 * math.pi * (1.0 - math.cos(radius))
    if not inside.any():
        inside = np.zeros_like(inside)
        inside.flat[np.argmax((dirs @ centre).ravel())] = True
    scale = disc / omega[inside].sum()  # the painted texels carry exactly the disc's energy
    out[inside] = rgb * scale
    return out


def random_lighting(rng: np.random.Generator,
                    environments: list[np.ndarray],   # [H, W, 3] lat-longs to draw HDRIs from
                    height: int = 32,                 # rows of the returned map
                    towards: np.ndarray | None = None,  # [3] world direction lamps favour (the camera)
                    mix: LightingMix = LightingMix(),
                    ) -> tuple[np.ndarray, str]:      # ([height, 2 height, 3] unit mean radiance, kind)
    kind = KINDS[int(rng.choice(len(KINDS), p=mix.probabilities()))]
    out = np.zeros((height, 2 * height, 3), np.float32)
    if kind in ("hdri", "mixed"):
        env = _turned(environments[int(rng.integers(len(environments)))], rng, height)
        tint = _tint(rng, 0.5) if rng.random() < 0.3 * mix.tint else np.ones(3)
        out += env / max(mean_radiance(env), 1e-12) * tint
    if kind == "flat":
        out += 1.0
    if kind in ("lamps", "mixed"):
        count = 1 if kind == "mixed" else int(rng.integers(1, 4))
        if kind == "lamps" and rng.random() < 0.5:
            out += rng.uniform(0.01, 0.15)  # a dim ambient fill
        for k in range(count):
            radius = math.radians(rng.uniform(4.0, 40.0))
            rgb = _tint(rng, 0.6) if rng.random() < 0.4 * mix.tint else np.ones(3)
            strength = rng.uniform(0.3, 1.0) if k else 1.0
            lamp = lamp_map(height, _random_direction(rng, towards), radius, rgb)
            out += lamp / max(mean_radiance(lamp), 1e-12) * strength * (0.7 if kind == "mixed" else 1.0)
    return out / mean_radiance(out), kind
