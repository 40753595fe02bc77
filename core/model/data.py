"""Training pairs from a capture set: flat-lit -> a light's image per unit irradiance.

Everything is loaded once at the model's resolution and sampled in memory. Each view is framed
exactly as ``relit relight`` frames a plate (core.io.framing: the square box around the matte
with its margin, resized to the model), so the model sees the subject at the same scale and
framing in training and at inference. Area lights of size beta are made, as in DifFRelight,
from OLATs weighted by a spherical Gaussian of that size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.capture import CaptureSet
from ..errors import ValidationError
from ..io.framing import subject_framing, to_model
from ..lighting.area import sg_cell_weights
from ..lighting.camera import world_to_camera_directions


def box_downsample(img: np.ndarray,  # [..., H, W, C]
                   factor: int) -> np.ndarray:
    if factor == 1:
        return img
    *lead, h, w, c = img.shape
    return img.reshape(*lead, h // factor, factor, w // factor, factor, c).mean(axis=(-4, -2))


@dataclass
class View:
    camera: str          # camera name
    frame: int           # frame number
    expression: str      # expression label
    c2w: np.ndarray      # [4, 4]


@dataclass
class Split:
    train_views: list[int]   # indices into TrainingData.views
    val_views: list[int]     # held-out views (camera or expression)
    train_lights: np.ndarray  # stage light indices seen in training
    val_lights: np.ndarray    # held-out stage lights


class TrainingData:
    """Flat-lit images, OLATs per unit irradiance and mattes of every view, at ``resolution``."""

    def __init__(self, capture: CaptureSet, resolution: int):
        m = capture.manifest
        if min(m.cameras[0].width, m.cameras[0].height) < resolution:
            raise ValidationError(f"{capture.root}: images are {m.cameras[0].width}x{m.cameras[0].height}; "
                                  f"training at {resolution} needs images at least that large")
        self.layout = m.layout
        self.subject = m.subject
        self.provenance = m.extra  # how the capture set was made (relit synth records its config)
        self.irradiance = m.irradiance.astype(np.float32)          # [N, 3]
        self.views: list[View] = []
        flats, olats, alphas = [], [], []
        for cam, f in capture.views():
            ol, alpha = capture.olats(cam.name, f.frame)
            flat = capture.flat(cam.name, f.frame)
            framing = subject_framing(alpha, resolution, source=f"{capture.root}: {cam.name} frame {f.frame}")
            n, h, w, _ = ol.shape
            per_unit = (ol / self.irradiance[:, None, None, :]).transpose(1, 2, 0, 3).reshape(h, w, n * 3)
            olats.append(to_model(per_unit, framing).reshape(resolution, resolution, n, 3)
                         .transpose(2, 0, 1, 3).astype(np.float16))
            flats.append(to_model(flat.rgb, framing))
            alphas.append(to_model(alpha[..., None], framing)[..., 0])
            self.views.append(View(cam.name, f.frame, f.expression, cam.c2w))
        self.flat = np.stack(flats).astype(np.float32)     # [V, H, W, 3]
        self.olat = np.stack(olats)                        # [V, N, H, W, 3] float16, per unit irradiance
        self.alpha = np.stack(alphas).astype(np.float32)   # [V, H, W]
        self.resolution = resolution
        self.image_size = int(m.cameras[0].width)  # the capture's image width (plates of this size frame alike)

    def split(self, holdout_light_every: int = 10, holdout_cameras: tuple[str, ...] = (),
              holdout_expressions: tuple[str, ...] = ()) -> Split:
        n = len(self.layout)
        val_lights = np.arange(holdout_light_every // 2, n, holdout_light_every) if holdout_light_every else np.array([], int)
        train_lights = np.setdiff1d(np.arange(n), val_lights)
        held = [i for i, v in enumerate(self.views) if v.camera in holdout_cameras or v.expression in holdout_expressions]
        train = [i for i in range(len(self.views)) if i not in held]
        if not train:
            raise ValidationError("every view is held out; hold out fewer cameras or expressions")
        return Split(train, held, train_lights, val_lights)

    def camera_directions(self, view: int) -> np.ndarray:  # [N, 3] stage directions in that camera's frame
        return world_to_camera_directions(self.layout.directions, self.views[view].c2w)

    def exposures(self, split: Split) -> tuple[float, float]:
        """Exposures mapping the 99th percentile of subject pixels to 1 (flat-lit, unit-irradiance OLAT)."""
        mask = self.alpha[split.train_views] > 0.5
        flat = self.flat[split.train_views][mask]
        olat = self.olat[split.train_views][:, split.train_lights].transpose(0, 2, 3, 1, 4)[mask]
        return 1.0 / float(np.percentile(flat, 99)), 1.0 / float(np.percentile(olat.astype(np.float32), 99))

    def sample(self, rng: np.random.Generator, batch: int, views: list[int], lights: np.ndarray,
               area_prob: float, stage_radius: float) -> dict[str, np.ndarray]:
        """A batch: flat [B,H,W,3], target [B,H,W,3] per unit irradiance, direction [B,3] camera frame, beta [B]."""
        v = rng.choice(views, size=batch)
        flat, target = self.flat[v], np.zeros_like(self.flat[v])
        dirs, beta = np.zeros((batch, 3)), np.zeros(batch)
        for b in range(batch):
            cam_dirs = self.camera_directions(v[b])
            if rng.random() < area_prob:
                # an area light: spherical Gaussian of size beta around a random training-light direction
                beta[b] = rng.uniform(0.05, 1.0)
                centre = self.layout.directions[rng.choice(lights)]
                w = sg_cell_weights(centre, beta[b], self.layout.directions[lights],
                                    self.layout.solid_angles[lights], stage_radius)
                target[b] = np.einsum("n,nhwc->hwc", w, self.olat[v[b], lights].astype(np.float32))
                dirs[b] = world_to_camera_directions(centre, self.views[v[b]].c2w)
            else:
                i = rng.choice(lights)
                target[b] = self.olat[v[b], i]
                dirs[b] = cam_dirs[i]
        return {"flat": flat, "target": target, "direction": dirs, "beta": beta, "alpha": self.alpha[v]}

    def sample_environment(self, rng: np.random.Generator, batch: int, views: list[int],
                           environments: list[np.ndarray]) -> dict[str, np.ndarray]:
        """An envmap batch: flat, the view under a randomly turned environment per unit of its mean
        radiance (the OLATs weighted by its projection), and the encoded camera-frame environment."""
        from ..lighting.hdri import project_to_layout
        from .envmap import camera_frame_latlong, encode_environment

        v = rng.choice(views, size=batch)
        target = np.zeros_like(self.flat[v])
        env = np.zeros((batch, self.resolution, self.resolution, 3), np.float32)
        for b in range(batch):
            pixels = environments[rng.integers(len(environments))]
            rotation = (rng.normal(0, 0.15), rng.normal(0, 0.15), rng.uniform(0, 2 * np.pi))
            env[b], scale = encode_environment(
                camera_frame_latlong(pixels, rotation, self.views[v[b]].c2w, self.resolution // 2), self.resolution)
            w = project_to_layout(pixels, self.layout, rotation).weights / scale
            target[b] = np.einsum("nc,nhwc->hwc", w, self.olat[v[b]].astype(np.float32))
        return {"flat": self.flat[v], "target": target, "environment": env, "alpha": self.alpha[v]}
