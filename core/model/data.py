"""Training pairs from capture sets: flat-lit -> a light's image per unit irradiance (olat), or a
portrait under one random lighting -> the same view under another, given as an environment
(envmap, SynthLight's pairs: both composed exactly from the view's OLATs by linearity).

Everything is loaded once at the model's resolution and sampled in memory. Each view is framed
exactly as ``relit relight`` frames a plate (core.io.framing: the square box around the matte
with its margin, resized to the model), so the model sees the subject at the same scale and
framing in training and at inference. Area lights of size beta are made, as in DifFRelight,
from OLATs weighted by a spherical Gaussian of that size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..data.capture import CaptureSet
from ..errors import ValidationError
from ..io.colour import LUMINANCE
from ..io.framing import subject_framing, to_model
from ..io.plates import GENERAL_SUBJECT
from ..lighting.area import sg_cell_weights
from ..lighting.camera import world_to_camera_directions
from ..lighting.latlong import pixel_directions
from ..lighting.random_lighting import LightingMix, mean_radiance, random_lighting

log = logging.getLogger(__name__)


@dataclass
class View:
    camera: str          # camera name
    frame: int           # frame number
    expression: str      # expression label
    c2w: np.ndarray      # [4, 4]
    identity: str = ""   # subject of the capture set the view comes from


PATCH_ANYWHERE = 0.2  # share of training crops centred anywhere in the frame (inference tiles cover background too)


def crop_patches(rng: np.random.Generator, batch: dict[str, np.ndarray], patch: int, align: int,
                 ) -> dict[str, np.ndarray]:
    """Each sample's ``patch``-pixel square crop of its images (flat, target, alpha and normals alike), centred on a
    random subject pixel (anywhere for a PATCH_ANYWHERE share of them, or when it has none) and kept
    inside the frame; its corner on a multiple of ``align`` (the codec's downsampling, so the crop's
    latent is a crop of the frame's latent). ``crop``: [B, 2] each crop's top-left (row, column) in pixels."""
    size = batch["flat"].shape[1]
    out = {k: v for k, v in batch.items()}
    out["crop"] = np.zeros((len(batch["flat"]), 2), np.int64)
    keys = ("flat", "target", "alpha") + (("normals",) if "normals" in batch else ())
    for key in keys:
        out[key] = np.empty((len(batch[key]), patch, patch) + batch[key].shape[3:], batch[key].dtype)
    for b in range(len(batch["flat"])):
        ys, xs = np.nonzero(batch["alpha"][b] > 0.5)
        if len(ys) and rng.random() >= PATCH_ANYWHERE:
            k = rng.integers(len(ys))
            cy, cx = ys[k], xs[k]
        else:
            cy, cx = rng.integers(size, size=2)
        y0, x0 = (int(np.clip(c - patch // 2, 0, size - patch)) // align * align for c in (cy, cx))
        for key in keys:
            out[key][b] = batch[key][b, y0:y0 + patch, x0:x0 + patch]
        out["crop"][b] = (y0, x0)
    return out


NORMAL_VERSIONS = 4  # face normals kept per view: exact landmarks jittered as MediaPipe errs, in this many draws
                     # (version 0 is what validation and benchmarks use)


def shifted(rng: np.random.Generator, batch: dict[str, np.ndarray],  # flat, target [B,H,W,3], alpha [B,H,W], ...
            most: int) -> dict[str, np.ndarray]:
    """Each sample's images moved by its own draw of up to ``most`` pixels in x and y, zero-filled (what
    leaves the frame is lost): a camera whose principal point moved sees the same rays, so a light's
    direction in the camera frame is the same. Direction and size entries are kept as they are."""
    images = [k for k in ("flat", "target", "alpha", "normals") if k in batch]
    out = {k: (np.zeros_like(v) if k in images else v) for k, v in batch.items()}
    h, w = batch["flat"].shape[1:3]
    for b, (dy, dx) in enumerate(rng.integers(-most, most + 1, size=(len(batch["flat"]), 2))):
        dst = np.s_[b, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
        src = np.s_[b, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
        for k in images:
            out[k][dst] = batch[k][src]
    return out


def _view_normals(capture: CaptureSet, camera: str, frame: int, rgb: np.ndarray, framing, index: int,
                  ) -> np.ndarray:  # [NORMAL_VERSIONS, model, model, 3] float16
    """A view's face normals at the model's framing: from the landmarks the capture set records, jittered
    as MediaPipe's error on a plate (core.portrait.face_geometry.jittered_landmarks); from MediaPipe on the
    flat-lit image where none are recorded (a real capture), as on a plate; zero where neither gives a face."""
    from ..portrait.face_geometry import framed_normals, jittered_landmarks, plate_normals

    exact = capture.landmarks(camera, frame)
    if exact is not None:
        rng = np.random.default_rng([index, 17])
        return np.stack([framed_normals(jittered_landmarks(rng, exact), framing)
                         for _ in range(NORMAL_VERSIONS)]).astype(np.float16)
    found = plate_normals(rgb, framing, capture.manifest.colour_space)
    one = np.zeros((framing.model, framing.model, 3), np.float32) if found is None else found
    return np.repeat(one[None], NORMAL_VERSIONS, axis=0).astype(np.float16)


DISTINCT_TRIES = 64  # target lightings drawn for a distinct pair before the mix is called degenerate


def held_out_lights(layout,                      # the stage (a StageLayout)
                    every: int,                  # every N-th light held out, from N // 2 (0: none)
                    lights: tuple[str, ...] = (),  # or these lights, by name (L005) or index (5)
                    ) -> np.ndarray:             # [K] sorted light indices
    """The stage lights a run holds out: ``lights`` when given, else every ``every``-th."""
    if not lights:
        return np.arange(every // 2, len(layout), every) if every else np.array([], int)
    index = []
    for key in lights:
        if key in layout.names:
            index.append(layout.names.index(key))
        elif key.isdigit() and int(key) < len(layout):
            index.append(int(key))
        else:
            raise ValidationError(f"--holdout-lights {key!r}: not a light of stage {layout.name} (names "
                                  f"{layout.names[0]}..{layout.names[-1]} or indices 0..{len(layout) - 1})")
    return np.array(sorted(set(index)), int)


@dataclass
class Split:
    train_views: list[int]   # indices into TrainingData.views
    val_views: list[int]     # held-out views (camera or expression)
    train_lights: np.ndarray  # stage light indices seen in training
    val_lights: np.ndarray    # held-out stage lights


class TrainingData:
    """Flat-lit images, OLATs per unit irradiance and mattes of every view of one or more capture
    sets (people, for the portrait model) on one stage layout, at ``resolution``."""

    def __init__(self, captures: CaptureSet | list[CaptureSet], resolution: int, normals: bool = False):
        """``normals``: also the face mesh's normals of every view (:attr:`normals`), for a normals model."""
        captures = [captures] if isinstance(captures, CaptureSet) else list(captures)
        first = captures[0].manifest
        self.layout = first.layout
        self.irradiance = first.irradiance.astype(np.float32)     # [N, 3] (OLATs are stored per unit)
        self.views: list[View] = []
        self.producers = [c.manifest.extra for c in captures]  # each capture set's provenance (licence, generator)
        flats, olats, alphas, geometry = [], [], [], []
        for capture in captures:
            m = capture.manifest
            if min(m.cameras[0].width, m.cameras[0].height) < resolution:
                raise ValidationError(f"{capture.root}: images are {m.cameras[0].width}x{m.cameras[0].height}; "
                                      f"training at {resolution} needs images at least that large")
            if (m.layout.names != self.layout.names or m.layout.floor_z != self.layout.floor_z
                    or not np.allclose(m.layout.directions, self.layout.directions)
                    or not np.allclose(m.layout.solid_angles, self.layout.solid_angles)):
                raise ValidationError(f"{capture.root}: its stage ({len(m.layout)} lights) differs from "
                                      f"{captures[0].root}'s; train on capture sets of one stage layout")
            irradiance = m.irradiance.astype(np.float32)
            for cam, f in capture.views():
                ol, alpha = capture.olats(cam.name, f.frame)
                flat = capture.flat(cam.name, f.frame)
                framing = subject_framing(alpha, resolution, source=f"{capture.root}: {cam.name} frame {f.frame}")
                n, h, w, _ = ol.shape
                per_unit = (ol / irradiance[:, None, None, :]).transpose(1, 2, 0, 3).reshape(h, w, n * 3)
                olats.append(to_model(per_unit, framing).reshape(resolution, resolution, n, 3)
                             .transpose(2, 0, 1, 3).astype(np.float16))
                flats.append(to_model(flat.rgb, framing))
                alphas.append(to_model(alpha[..., None], framing)[..., 0])
                if normals:
                    geometry.append(_view_normals(capture, cam.name, f.frame, flat.rgb, framing, len(self.views)))
                self.views.append(View(cam.name, f.frame, f.expression, cam.c2w, m.subject))
        named = [(v.identity, v.camera, v.frame) for v in self.views]
        if len(set(named)) < len(named):
            twice = sorted({n for n in named if named.count(n) > 1})
            raise ValidationError(f"{twice[0][0]}'s camera {twice[0][1]} frame {twice[0][2]} is in more than one of "
                                  "the capture sets given: sets of one person need cameras of their own names "
                                  "(relit synth --camera-seed S --first-view K)")
        self.subjects = sorted({v.identity for v in self.views})
        # one subject: a subject-specific bundle; several: the general portrait model
        self.subject = self.subjects[0] if len(self.subjects) == 1 else GENERAL_SUBJECT
        self.provenance = first.extra if len(captures) == 1 else {  # how the capture sets were made
            "captures": [str(c.root) for c in captures], "identities": self.subjects, "producer": first.extra}
        self.flat = np.stack(flats).astype(np.float32)     # [V, H, W, 3]
        self.olat = np.stack(olats)                        # [V, N, H, W, 3] float16, per unit irradiance
        self.alpha = np.stack(alphas).astype(np.float32)   # [V, H, W]
        # [V, NORMAL_VERSIONS, H, W, 3] float16 face normals (zero off the face), or None
        self.normals = np.stack(geometry) if normals else None
        if normals and (missing := int((~self.normals[:, 0].any(axis=(1, 2, 3))).sum())):
            log.warning("no face landmarks on %d of %d views (neither recorded nor found): their normals are zero",
                        missing, len(self.views))
        self.resolution = resolution
        self.image_size = int(first.cameras[0].width)  # the capture's image width (plates of this size frame alike)

    def split(self, holdout_light_every: int = 10, holdout_cameras: tuple[str, ...] = (),
              holdout_expressions: tuple[str, ...] = (), holdout_identities: tuple[str, ...] = (),
              holdout_lights: tuple[str, ...] = ()) -> Split:
        """Held-out views (cameras, expressions, identities) and stage lights: ``holdout_lights`` by name
        or index when given, else every ``holdout_light_every``-th."""
        val_lights = held_out_lights(self.layout, holdout_light_every, holdout_lights)
        train_lights = np.setdiff1d(np.arange(len(self.layout)), val_lights)
        unknown = sorted(set(holdout_identities) - set(self.subjects))
        if unknown:
            raise ValidationError(f"--holdout-identities {unknown}: not among the capture sets' subjects "
                                  f"({len(self.subjects)}: {self.subjects[:4]}...)")
        for flag, given, known in (("--holdout-cameras", holdout_cameras, {v.camera for v in self.views}),
                                   ("--holdout-expressions", holdout_expressions, {v.expression for v in self.views})):
            unknown = sorted(set(given) - known)  # a mistyped name would hold out nothing and validate on nothing
            if unknown:
                raise ValidationError(f"{flag} {unknown}: not among the capture sets' "
                                      f"{flag.removeprefix('--holdout-')} ({', '.join(sorted(known))})")
        held = [i for i, v in enumerate(self.views) if v.camera in holdout_cameras
                or v.expression in holdout_expressions or v.identity in holdout_identities]
        train = [i for i in range(len(self.views)) if i not in held]
        if not train:
            raise ValidationError("every view is held out; hold out fewer cameras, expressions or identities")
        return Split(train, held, train_lights, val_lights)

    def view_normals(self, view: int) -> np.ndarray | None:  # [H, W, 3] float32, or None
        """The face normals validation and benchmarks give the model for ``view`` (its first version);
        None without normals."""
        return None if self.normals is None else self.normals[view, 0].astype(np.float32)

    def camera_directions(self, view: int) -> np.ndarray:  # [N, 3] stage directions in that camera's frame
        return world_to_camera_directions(self.layout.directions, self.views[view].c2w)

    def exposures(self, split: Split) -> tuple[float, float]:
        """Exposures mapping the 99th percentile of subject pixels to 1 (flat-lit, unit-irradiance OLAT)."""
        mask = self.alpha[split.train_views] > 0.5
        flat = self.flat[split.train_views][mask]
        olat = self.olat[split.train_views][:, split.train_lights].transpose(0, 2, 3, 1, 4)[mask]
        return 1.0 / float(np.percentile(flat, 99)), 1.0 / float(np.percentile(olat.astype(np.float32), 99))

    def portrait_exposure(self, views: list[int], environments: list[np.ndarray], samples: int = 64) -> float:
        """One exposure for both sides of a portrait pair (both are lit by unit mean radiance): it
        maps the 99th percentile of subject pixels over ``samples`` random lightings (a fixed draw,
        so a resumed or repeated run gets the same) to 1, leaving the tone curve's headroom above it
        for highlights. The OLAT exposure (:meth:`exposures`) would put that percentile 3.4x higher
        and clip the brightest lit skin (measured on people at 64 px: 8.5 against white 8)."""
        batch = self.sample_portrait(np.random.default_rng(0), samples, views, environments)
        mask = batch["alpha"] > 0.5
        pixels = np.concatenate([batch["flat"][mask], batch["target"][mask]])
        return 1.0 / float(np.percentile(pixels, 99))

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
        return self._with_normals(rng, v, {"flat": flat, "target": target, "direction": dirs, "beta": beta,
                                           "alpha": self.alpha[v]})

    def _with_normals(self, rng: np.random.Generator, v: np.ndarray, batch: dict) -> dict:
        """``batch`` with its views' face normals, one random version each (a normals model's data)."""
        if self.normals is not None:
            batch["normals"] = self.normals[v, rng.integers(NORMAL_VERSIONS, size=len(v))].astype(np.float32)
        return batch

    def compose(self, view: int, latlong: np.ndarray) -> np.ndarray:  # [H, W, 3]
        """The view lit by a world lat-long map: its OLATs weighted by the map's projection on the stage."""
        from ..lighting.hdri import project_to_layout

        weights = project_to_layout(latlong, self.layout, (0.0, 0.0, 0.0)).weights
        return np.einsum("nc,nhwc->hwc", weights, self.olat[view].astype(np.float32))

    def _drawn(self, rng: np.random.Generator, environments: list[np.ndarray], towards: np.ndarray,
               mix: LightingMix) -> np.ndarray:
        """A random lighting of unit mean radiance the stage can reproduce: nothing below its floor."""
        latlong, _ = random_lighting(rng, environments, towards=towards, mix=mix)
        if self.layout.floor_z is not None:
            below = pixel_directions(*latlong.shape[:2])[..., 2] < self.layout.floor_z
            latlong[below] = 0.0
            latlong /= max(mean_radiance(latlong), 1e-12)
        return latlong

    def sample_portrait(self, rng: np.random.Generator, batch: int, views: list[int],
                        environments: list[np.ndarray], mix: LightingMix = LightingMix(),
                        source_mix: LightingMix | None = None, distinct: bool = False,
                        saturation: float = 0.0) -> dict[str, np.ndarray]:
        """A SynthLight batch: ``flat`` is the view under a random source lighting (an HDRI, lamps, the
        flat-lit, or both), ``target`` the view under a random target lighting, both of unit mean
        radiance, and ``environment`` that target encoded in the camera frame. ``source_mix`` draws
        the source lightings (default: ``mix``, as the targets). Both images are the
        view's OLATs weighted by the lighting's projection on the stage (:meth:`compose`).
        ``distinct``: no pair's target lighting is its source's (see :meth:`portrait_lightings`).
        ``saturation``: each pair's subject is given a more saturated colour, the same on both sides
        (:meth:`subject_gain`, its strength drawn in [0, ``saturation``] after every lighting)."""
        v = rng.choice(views, size=batch)
        source, target = np.zeros_like(self.flat[v]), np.zeros_like(self.flat[v])
        env = np.zeros((batch, self.resolution, self.resolution, 3), np.float32)
        for b in range(batch):
            lit, goal = self.portrait_lightings(rng, v[b], environments, mix, source_mix, distinct)
            source[b], target[b], env[b] = self.portrait_pair(v[b], lit, goal)
        if saturation:
            for b, strength in enumerate(rng.uniform(0.0, saturation, size=batch)):
                gain = self.subject_gain(v[b], strength)
                source[b] *= gain
                target[b] *= gain
        return self._with_normals(rng, v, {"flat": source, "target": target, "environment": env,
                                           "alpha": self.alpha[v]})

    def subject_gain(self, view: int, strength: float) -> np.ndarray:  # [3]
        """A colour gain that saturates ``view``'s subject along its own hue: its flat-lit mean colour
        over its grey, raised to ``strength``, at unit luminance. Multiplying a render by it is the
        render of an albedo multiplied by it, exactly for diffuse reflection whatever the lighting
        (specular highlights take the tint too, where they should stay the light's colour): the
        synthetic people's skin is paler than photographed faces' (docs/portrait.md section 18)."""
        subject = self.alpha[view] > 0.5
        mean = self.flat[view][subject].mean(axis=0).astype(np.float64)
        gain = (mean / max(mean.mean(), 1e-12)) ** strength
        return (gain / (gain @ LUMINANCE)).astype(np.float32)

    def portrait_lightings(self, rng: np.random.Generator, view: int, environments: list[np.ndarray],
                           mix: LightingMix = LightingMix(), source_mix: LightingMix | None = None,
                           distinct: bool = False) -> tuple[np.ndarray, np.ndarray]:  # 2 x [h, 2h, 3]
        """A pair's random source and target lightings (world lat-longs of unit mean radiance), lamps
        favouring the side ``view``'s camera sees.

        ``distinct``: the target is drawn again while it is the source itself (both flat-lit, one
        pair in a hundred), and after half the tries the source is (a mix of flat-lit targets only,
        a delighter's). Training keeps such pairs (give the input back); scoring must not: the
        input times a constant is then exact, and a PSNR of ~200 dB in 5 of 192 pairs lifted that
        baseline's mean by 4.6 dB (measured; docs/portrait.md section 9)."""
        towards = self.views[view].c2w[:3, 2]  # from the subject towards the camera
        source = self._drawn(rng, environments, towards, source_mix or mix)
        goal = self._drawn(rng, environments, towards, mix)
        for k in range(DISTINCT_TRIES if distinct else 0):
            if not np.array_equal(goal, source):
                break
            if k < DISTINCT_TRIES // 2:
                goal = self._drawn(rng, environments, towards, mix)
            else:
                source = self._drawn(rng, environments, towards, source_mix or mix)
        else:
            if distinct:
                raise ValidationError(f"{DISTINCT_TRIES} target lightings in a row were the source's: the lighting "
                                      f"mix ({mix}) draws a single lighting; give it another kind")
        return source, goal

    def portrait_pair(self, view: int, source: np.ndarray, goal: np.ndarray,
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # [H, W, 3] input, target, encoded map
        """``view`` lit by the world lat-long ``source`` (the input) and by ``goal`` (the target), and
        ``goal`` encoded in that camera's frame as the model is given it."""
        from ..lighting.resample import camera_frame_latlong
        from .envmap import encode_environment

        # the encoded map's own scale is only its resampled copy's: the target is per unit of the
        # lighting's true mean radiance (1), as inference multiplies by the lighting's true mean
        frame = camera_frame_latlong(goal, (0.0, 0.0, 0.0), self.views[view].c2w, self.resolution // 2)
        env, _ = encode_environment(frame, self.resolution)
        return self.compose(view, source), self.compose(view, goal), env
