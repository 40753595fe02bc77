"""Relight one frame: every light of a rig is one inference in a batch; its colour and
intensity scale the predicted unit-irradiance image in float32; lights (or light groups)
become layers and the beauty is their float32 sum.

An environment is relit one of three ways (``strategy``):

- ``stage``: projected onto the bundle's stage layout, one inference per lit direction, summed
  with the projection's weights (DifFRelight's reference method);
- ``area``: median-cut into K area lights (direction, size beta, RGB energy), K inferences;
- ``envmap``: one pass of an env-map bundle (SynthLight); with such a bundle each lamp of a rig is
  its own environment (a disc of the lamp's size, colour and irradiance on black) for one pass.

The OLAT basis (every stage direction's unit-irradiance prediction) can be written as well;
when the environment uses ``stage`` it is computed once and serves both.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..errors import ValidationError
from ..io.passes import PassMetadata, RelitPasses
from ..io.naming import sanitise_name
from ..lighting.area import beta_from_radius
from ..lighting.camera import front_camera_c2w, world_to_camera_directions
from ..lighting.cluster import cluster_environment
from ..lighting.hdri import load_environment, project_to_layout
from ..lighting.latlong import pixel_solid_angles
from ..lighting.rig import ENVIRONMENT_LAYER, LightRig
from ..io.framing import Framing, face_framing, ratio_eps, subject_framing, to_model, to_plate
from ..io.matting import premultiplied
from ..model.consistency import ratio_correct
from .cache import LightCache
from .strategies import AREA, ENVMAP, STAGE, STRATEGIES, hdri_strategy

log = logging.getLogger(__name__)

MIN_PLATE = 16  # pixels: a plate smaller on a side holds no subject to relight


@dataclass
class RelightSettings:
    steps: int = 30              # denoising steps
    guidance_image: float = 1.0  # lambda_I
    guidance_light: float = 1.0  # lambda_L
    seed: int = 0                # initial noise seed (each light draws its own noise from it: light_noise)
    sampler: str | None = None   # the objective's sampler (None: its default; ddim for diffusion bundles)
    batch_size: int = 16         # lights per UNet batch
    samples: int = 1             # samples averaged per light (less sampling grain, samples x the cost)
    consistency: str = "none"    # stage predictions: "ratio" pins their weighted sum to the input (consistency.py)


@dataclass
class LightingPlan:
    """What one frame costs and how its layers are made from the inferences.

    A layer is a weighted sum of inferences: ``sum_i scale_i * image_i`` with ``scale_i`` the
    light's RGB irradiance (W/m² per channel) and ``image_i`` the prediction per unit irradiance.
    """
    directions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # [N, 3] camera frame
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0))           # [N] beta
    layers: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (idx [M], rgb [M, 3])
    basis: list[dict] | None = None      # OLAT-basis layers {layer, index, direction, world_direction, size, solid_angle}
    stage: dict | None = None            # the stage layout JSON (basis files carry it)
    camera_c2w: list | None = None       # the camera the basis directions are seen from (basis files carry it)
    environment: np.ndarray | None = None  # [K, m, m, 3] encoded camera-frame environments, one per pass
                                         # (envmap bundles: the HDRI, and each lamp as its own environment)
    environment_scale: np.ndarray = field(default_factory=lambda: np.ones(0))  # [K] mean radiance each
                                         # encoded environment stands for
    correction: tuple[np.ndarray, np.ndarray] | None = None  # (inference idx [N], irradiance [N, 3]) of the
                                         # whole stage, ratio-corrected together (consistency.py)

    @property
    def inferences(self) -> int:
        return len(self.environment) if self.environment is not None else len(self.directions)

    def _add(self, directions: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        start = len(self.directions)
        self.directions = np.concatenate([self.directions, np.asarray(directions, np.float64).reshape(-1, 3)])
        self.sizes = np.concatenate([self.sizes, np.asarray(sizes, np.float64).reshape(-1)])
        return np.arange(start, len(self.directions))

    def _feed(self, layer: str, idx: np.ndarray, rgb: np.ndarray) -> None:
        old_idx, old_rgb = self.layers.get(layer, (np.zeros(0, int), np.zeros((0, 3))))
        self.layers[layer] = (np.concatenate([old_idx, idx]), np.concatenate([old_rgb, np.asarray(rgb).reshape(-1, 3)]))


def _camera(rig: LightRig | None, camera_c2w=None) -> np.ndarray:
    """The camera the stage directions are seen from: the rig's (a job has already put the plate's
    camera there: RelightJob.light_rig), else ``camera_c2w`` (basis-only jobs have no rig), else the front view."""
    if rig is not None and rig.camera_c2w is not None:
        return np.asarray(rig.camera_c2w, dtype=np.float64)
    if camera_c2w is not None:
        return np.asarray(camera_c2w, dtype=np.float64)
    log.info("no camera_c2w in the rig: stage directions are taken from the front view (the stage's "
             "up is the camera's up)")
    return front_camera_c2w()


def plan_lighting(info, rig: LightRig | None, strategy: str = "auto", clusters: int = 8, missing: str = "drop",
                  basis: bool = False, environment: np.ndarray | None = None,
                  camera_c2w=None, light_chunk: tuple[int, int] | None = None,
                  consistency: str = "none") -> LightingPlan:
    """The inferences and layer weights for ``rig`` on bundle ``info``.

    ``environment`` is the rig's environment already loaded ([H, W, 3]); it is read from disk
    when not given. ``auto`` is ``stage`` for an olat bundle and ``envmap`` for an envmap bundle.
    ``camera_c2w`` (Blender 4x4) is the plate's camera when the rig has none (basis-only jobs).
    ``light_chunk`` = (start, end) keeps the stage directions with layout index in [start, end) (a
    farm unit's share of a frame); the rig's own lights and area lights go with the chunk at 0.
    ``consistency`` "ratio": the stage inferences (environment and basis) cover every stage light and
    are corrected together so that they add up to the input (core.model.consistency).
    """
    conditioning = info.config.conditioning
    chosen = hdri_strategy(strategy, conditioning)
    env = rig.environment if rig is not None else None
    if chosen.conditioning != conditioning and (env is not None or conditioning == ENVMAP.conditioning):
        fits = [s.name for s in STRATEGIES.values() if s.conditioning == conditioning]
        raise ValidationError(f"--hdri-strategy {chosen.name} needs an {chosen.conditioning} bundle; {info.id} is an "
                              f"{conditioning} bundle (use {' or '.join(fits)})")
    if conditioning == ENVMAP.conditioning:
        return _plan_envmap(info, rig, environment, basis, camera_c2w)
    plan = LightingPlan()
    first_chunk = light_chunk is None or light_chunk[0] == 0
    for light in (rig.lights if rig is not None and first_chunk else []):
        idx = plan._add(light.direction, light.size)
        plan._feed(light.group or light.name, idx, np.asarray(light.rgb) * light.intensity)
    need_stage = basis or (env is not None and chosen is STAGE)
    if need_stage and info.layout is None:
        raise ValidationError(f"bundle {info.id} records no stage layout; the stage strategy and the OLAT "
                              "basis need one (use --hdri-strategy area)")
    layout = info.layout
    c2w = _camera(rig, camera_c2w) if (need_stage or env is not None) else None
    pixels = None
    if env is not None:
        pixels = environment if environment is not None else load_environment(env.path)
    if need_stage:
        cam_dirs = world_to_camera_directions(layout.directions, c2w)
        weights = None
        if env is not None and chosen is STAGE:
            proj = project_to_layout(pixels, layout, env.rotation, env.intensity, missing)
            _report_dropped(proj.dropped_fraction, layout.name)
            weights = proj.weights
        correct = consistency == "ratio" and info.stage_irradiance is not None
        if correct and light_chunk is not None:
            raise ValidationError(f"bundle {info.id} corrects its stage predictions together (recipe consistency "
                                  "'ratio'), so a frame's stage lights cannot be split into light chunks; "
                                  "drop --light-chunk or relight with --consistency none")
        lit = np.arange(len(layout)) if basis or correct else np.flatnonzero(weights.max(axis=1) > 0)
        if light_chunk is not None:
            lit = lit[(lit >= light_chunk[0]) & (lit < light_chunk[1])]
        idx = plan._add(cam_dirs[lit], np.zeros(len(lit)))
        if correct:  # pinned to the share of the input the stage accounts for (consistency.py)
            irradiance = np.asarray(info.stage_irradiance, np.float64) / np.asarray(info.stage_coverage)
            plan.correction = (idx, irradiance[lit])
        if weights is not None:
            plan._feed(ENVIRONMENT_LAYER, idx, weights[lit])
        if basis:
            plan.stage = layout.to_json()
            plan.camera_c2w = c2w.tolist()
            plan.basis = [{"layer": f"stage_{sanitise_name(layout.names[i])}", "index": int(j),
                           "direction": cam_dirs[i].tolist(), "world_direction": layout.directions[i].tolist(),
                           "size": 0.0, "solid_angle": float(layout.solid_angles[i])} for i, j in zip(lit, idx)]
    if env is not None and chosen is AREA and first_chunk:
        found = cluster_environment(pixels, clusters, env.rotation, env.intensity, layout, missing)
        if layout is not None:
            _report_dropped(found.dropped_fraction, layout.name)
        theta0 = info.config.stage_radius
        dirs = world_to_camera_directions(np.stack([a.direction for a in found.lights]), c2w)
        beta = beta_from_radius(np.array([a.radius for a in found.lights]), theta0)
        idx = plan._add(dirs, beta)
        plan._feed(ENVIRONMENT_LAYER, idx, np.stack([a.energy for a in found.lights]))
    return plan


def _report_dropped(fraction: float, stage: str) -> None:
    if fraction > 0:
        log.warning("stage %s has no lights below its floor: %.1f%% of the environment's energy is dropped "
                    "(--missing nearest keeps it)", stage, 100 * fraction)


def _plan_envmap(info, rig: LightRig | None, environment, basis: bool, camera_c2w=None) -> LightingPlan:
    """SynthLight: one pass per environment (camera frame, tone-mapped, on channels): the rig's HDRI
    is one pass, and each lamp is one more, lit by an environment holding only that lamp (a disc of
    its size, colour and irradiance on black). By linearity the passes add up to the whole rig."""
    from ..lighting.area import radius_from_beta
    from ..lighting.random_lighting import lamp_map
    from ..lighting.resample import camera_frame_latlong
    from ..model.envmap import encode_environment

    if rig is None or (rig.environment is None and not rig.lights):
        raise ValidationError(f"an envmap bundle ({info.id}) relights environments and lamps: give --hdri or a rig")
    if basis:
        raise ValidationError(f"the OLAT basis needs an olat bundle; {info.id} is an envmap bundle")
    res = info.config.resolution
    # (layer, camera-frame lat-long radiance, the lighting's true mean radiance over the sphere): the model
    # predicts per unit of the true mean (as it trained), which the small resampled map only approximates
    # (a sun between its samples is missed or over-counted)
    passes: list[tuple[str, np.ndarray, float]] = []
    for light in rig.lights:
        radius = float(radius_from_beta(light.size, info.config.stage_radius))
        disc = 2.0 * np.pi * (1.0 - np.cos(radius))
        radiance = np.asarray(light.rgb, np.float64) * light.intensity / disc  # irradiance = radiance x disc
        direction = np.asarray(light.direction, np.float64)
        passes.append((light.group or light.name, lamp_map(res // 2, direction / np.linalg.norm(direction),
                                                           radius, radiance),
                       float(np.mean(light.rgb)) * light.intensity / (4.0 * np.pi)))
    if rig.environment is not None:
        env = rig.environment
        pixels = environment if environment is not None else load_environment(env.path)
        omega = pixel_solid_angles(*pixels.shape[:2])[..., None]
        mean = float(np.mean((pixels * omega).sum(axis=(0, 1)) / omega.sum())) * env.intensity
        passes.append((ENVIRONMENT_LAYER, camera_frame_latlong(pixels, env.rotation, _camera(rig, camera_c2w), res // 2)
                       * env.intensity, mean))
    lit = [(layer, latlong, mean) for layer, latlong, mean in passes if latlong.max() > 0 and mean > 0]
    encoded = [encode_environment(latlong, res)[0] for _, latlong, _ in lit]  # a dark lamp costs no pass
    m = info.config.resolution
    plan = LightingPlan(environment=np.stack(encoded) if encoded else np.zeros((0, m, m, 3)),
                        environment_scale=np.array([mean for _, _, mean in lit]))
    for layer, _, _ in passes:
        plan._feed(layer, np.zeros(0, int), np.zeros((0, 3)))  # every layer exists, dark ones stay black
    for i, (layer, _, _) in enumerate(lit):
        plan._feed(layer, np.array([i]), np.ones((1, 3)))
    return plan


def light_keys(plan: LightingPlan, samples: int = 1) -> list[int]:
    """A stable id per inference (its direction and size; then per extra sample), so a light draws
    the same initial noise whatever else is in the rig, the batch or the farm unit. With ``samples``
    S the list is S blocks of the plan's inferences, sample 0 first (the single-sample keys)."""
    import hashlib

    base = []
    if plan.environment is not None:  # an environment pass: keyed by its normalised map (not its intensity)
        for env in plan.environment:
            base.append(int.from_bytes(hashlib.sha1(np.round(env, 4).tobytes()).digest()[:8], "little") >> 1)
    for d, b in zip(plan.directions, plan.sizes) if plan.environment is None else []:
        raw = np.round(np.append(np.asarray(d, dtype=np.float64), b), 6).tobytes()
        base.append(int.from_bytes(hashlib.sha1(raw).digest()[:8], "little") >> 1)
    keys = list(base)
    for sample in range(1, samples):
        keys += [int.from_bytes(hashlib.sha1(f"{k}/{sample}".encode()).digest()[:8], "little") >> 1 for k in base]
    return keys


def light_noise(keys: list[int], seed: int, shape: tuple[int, int, int]) -> np.ndarray:  # [L, C, h, w]
    """Independent initial noise per light. Shared noise makes every light's sampling grain the
    same pattern, which then adds up coherently in an HDRI's weighted sum of 100+ lights
    (measured: 6-7 dB worse than independent noise on the stage strategy). The last few draws are
    kept (read-only) for a warm worker's next job."""
    key = (tuple(keys), seed, tuple(shape))
    if key in _NOISE:
        _NOISE.move_to_end(key)
        return _NOISE[key]
    noise = np.stack([np.random.default_rng([seed, k]).standard_normal(shape).astype(np.float32)
                      for k in keys]) if keys else np.zeros((0,) + tuple(shape), np.float32)
    noise.flags.writeable = False
    _NOISE[key] = noise
    while len(_NOISE) > _NOISE_KEPT:
        _NOISE.popitem(last=False)
    return noise


_NOISE: OrderedDict = OrderedDict()  # the last light_noise draws, by (light keys, seed, latent shape)
_NOISE_KEPT = 4


@dataclass
class PreparedPlate:
    """A plate ready for the model: premultiplied, framed, at the model's resolution."""
    source: np.ndarray       # [H, W, 3] premultiplied scene-linear plate (full resolution)
    matte: np.ndarray        # [H, W] its matte, the output alpha
    framing: Framing         # where the model's square lies on the plate
    model_input: np.ndarray  # [m, m, 3] the plate at the model's resolution: what results are ratios against
    eps: float               # ratio floor used to carry results back
    seen: np.ndarray | None = None  # [m, m, 3] what the model sees when it is not model_input: the plate's
                                    # flat-lit made by a delighter (core.relight.delight); None: model_input
    normals: np.ndarray | None = None  # [m, m, 3] the face mesh's normals for a normals model (zero off the
                                       # face; core.portrait.face_geometry.plate_normals); None: not asked for


NO_FACE_NORMALS = "no face found for the model's face normals; relit without geometry"


def face_normals_of(landmarks: np.ndarray | None,  # [468, 3] on the plate (plate_landmarks), None: no face
                    framing: Framing,                # the model's square on it
                    ) -> np.ndarray:                 # [m, m, 3] float32
    """A normals model's geometry input: the face mesh's normals in the model's square, or zeros (as
    off a face) where no face was found."""
    from ..portrait.face_geometry import framed_normals

    if landmarks is None:
        return np.zeros((framing.model, framing.model, 3), np.float32)
    return framed_normals(landmarks, framing)


def prepare_plate(rgb: np.ndarray,       # [H, W, 3] scene-linear
                  matte: np.ndarray,     # [H, W] in [0, 1]
                  resolution: int,       # the model's
                  premultiply: bool = False,  # True when the matte is separate (plate not premultiplied)
                  margin: float = 0.1,
                  source: str = "plate",
                  face: tuple[int, int, int, int] | None = None,  # a portrait bundle's plate: its face box
                  normals: bool = False,  # also the face mesh's normals (a normals model: ModelConfig.normals)
                  space: str = "lin_rec709",  # the plate's working space (how the face finder sees it)
                  ) -> PreparedPlate:
    """Premultiply, frame and resize a plate for the model: by the face where ``face`` is given
    (placed as a portrait bundle's training people were, core.io.framing.face_framing), else by
    the matte's box. A plate on which MediaPipe finds no face gets zero normals (as off a face) and a
    warning: the model then relights it without geometry."""
    if min(matte.shape) < MIN_PLATE:
        raise ValidationError(f"{source}: the plate is {matte.shape[1]}x{matte.shape[0]} pixels; relit needs at least "
                              f"{MIN_PLATE}x{MIN_PLATE} to see a subject")
    matte = np.clip(matte.astype(np.float32), 0.0, 1.0)
    # a separate matte premultiplies the subject's own colour at its edge, not the background's (core.io.matting)
    plate = premultiplied(rgb, matte, source) if premultiply else rgb.astype(np.float32)
    framing = subject_framing(matte, resolution, margin, source)  # also refuses an empty matte
    if face is not None:
        by_face = face_framing(face, *matte.shape, resolution)
        if to_model(matte[..., None], by_face).max() >= 0.5:
            framing = by_face
        else:  # the shot's face square holds none of this frame's subject (it moved away): its ratio would
            # divide the model's black by the floor
            log.warning("%s: the shot's face square holds none of the subject on this frame; framed by the "
                        "matte instead", source)
    model_input = to_model(plate, framing)
    geometry = None
    if normals:
        from ..portrait.face_geometry import plate_landmarks

        landmarks = plate_landmarks(plate, framing, space)
        if landmarks is None:
            log.warning("%s: %s", source, NO_FACE_NORMALS)
        geometry = face_normals_of(landmarks, framing)
    return PreparedPlate(plate, matte, framing, model_input, ratio_eps(model_input, to_model(matte[..., None],
                                                                                             framing)[..., 0]),
                         normals=geometry)


@dataclass
class FrameResult:
    passes: RelitPasses | None        # the rig's layers (None for a basis-only job)
    basis: RelitPasses | None         # the OLAT basis (unit irradiance per stage direction)
    evaluations: int                  # UNet evaluations spent (every guidance branch counts)


def relight_prepared(pipe, plan: LightingPlan, plate: PreparedPlate, settings: RelightSettings,
                     noise: np.ndarray | None = None, on_batch=None, on_step=None,
                     cache: LightCache | None = None, frame_key: str = "") -> FrameResult:
    """Run the plan's inferences on a prepared plate and carry the layers back to its resolution.

    ``noise``: [S L, C, h, w] initial noise per sample and inference; default: :func:`light_noise`
    of the seed. The S samples of each light are averaged. ``cache``: inferences found there under
    ``frame_key`` (:func:`core.relight.cache.frame_key`) cost no UNet call; the others are stored.
    What follows the model is the same computation either way, so the passes are the same bytes."""
    samples = settings.samples
    view = plate.model_input if plate.seen is None else plate.seen  # what the model relights
    count = len(plan.environment) if plan.environment is not None else len(plan.directions)
    if noise is None and count:
        noise = light_noise(light_keys(plan, samples), settings.seed, pipe.latent_shape())
    common = dict(num_inference_steps=settings.steps, guidance_image=settings.guidance_image,
                  guidance_light=settings.guidance_light, seed=settings.seed, sampler=settings.sampler,
                  batch_size=settings.batch_size, callback_on_batch_end=on_batch, callback_on_step_end=on_step)
    m = plate.model_input.shape[0]
    raw = np.zeros((samples, count, m, m, 3), np.float32)  # every sample of every inference, as predicted
    todo, keys, evaluations = np.arange(count), [], 0
    if cache is not None and count:
        conditions = (plan.environment if plan.environment is not None
                      else np.concatenate([plan.directions, plan.sizes[:, None]], axis=1))
        per_light = noise.reshape((samples, count) + noise.shape[1:])
        keys = [cache.key(frame_key, conditions[j], per_light[:, j]) for j in range(count)]
        found = [cache.get(key) for key in keys]
        for j, image in enumerate(found):
            if image is not None and image.shape == raw[:, j].shape:
                raw[:, j] = image
        todo = np.array([j for j, image in enumerate(found) if image is None or image.shape != raw[:, j].shape],
                        dtype=int)
    if len(todo):
        picked = noise.reshape((samples, count) + noise.shape[1:])[:, todo].reshape((-1,) + noise.shape[1:])
        if plan.environment is not None:
            out = pipe(view, environment=np.tile(plan.environment[todo], (samples, 1, 1, 1)),
                       noise=picked, normals=plate.normals, **common)
        else:
            out = pipe(view, np.tile(plan.directions[todo], (samples, 1)),
                       np.tile(plan.sizes[todo], samples), noise=picked, normals=plate.normals, **common)
        raw = raw.astype(out.images.dtype, copy=False)  # a stand-in model may predict in float64
        raw[:, todo] = out.images.reshape((samples, len(todo), m, m, 3))
        evaluations = out.evaluations
        if cache is not None:
            for j in todo:
                cache.put(keys[j], raw[:, j])
            cache.evict()
    images = raw.reshape((samples * count, m, m, 3))
    if plan.environment is not None:
        scale = np.tile(plan.environment_scale, samples).astype(np.float32)[:, None, None, None]
        images = images * scale
    if samples > 1 and len(images):
        images = images.reshape((samples, -1) + images.shape[1:]).mean(axis=0)
    if plan.correction is not None:
        idx, irradiance = plan.correction
        images[idx] = ratio_correct(images[idx], irradiance, view)
    passes = None
    if plan.layers:
        small = np.stack([np.einsum("mhwc,mc->hwc", images[idx], rgb.astype(np.float32)) if len(idx)
                          else np.zeros(images.shape[1:], np.float32) for idx, rgb in plan.layers.values()])
        full = to_plate(small.astype(np.float32), plate.model_input, plate.source, plate.framing, plate.eps)
        passes = RelitPasses(dict(zip(plan.layers, full)), plate.matte)
    basis = None
    if plan.basis is not None:
        idx = np.array([b["index"] for b in plan.basis])
        full = to_plate(images[idx], plate.model_input, plate.source, plate.framing, plate.eps)
        basis = RelitPasses({b["layer"]: img for b, img in zip(plan.basis, full)}, plate.matte)
    return FrameResult(passes, basis, evaluations)


def relight_frame(pipe, info, plate: np.ndarray, alpha: np.ndarray, rig: LightRig, settings: RelightSettings,
                  strategy: str = "auto", clusters: int = 8) -> tuple[RelitPasses, int]:
    """Relit passes of one premultiplied plate ([H, W, 3], matte [H, W]) and the UNet evaluations spent."""
    plan = plan_lighting(info, rig, strategy, clusters, consistency=settings.consistency)
    prepared = prepare_plate(plate, alpha, info.config.resolution, normals=info.config.normals)
    result = relight_prepared(pipe, plan, prepared, settings)
    return result.passes, result.evaluations


def pass_metadata(rig: LightRig | None, info, settings: RelightSettings, digest: str, colour_space: str,
                  plan: LightingPlan | None = None, basis: bool = False) -> PassMetadata:
    """Header metadata of a relit file (``basis``: of its OLAT-basis file)."""
    meta = PassMetadata(rig=rig.to_json() if rig is not None else {}, bundle_id=info.id,
                        bundle_sha256=info.sha256, objective=info.recipe["objective"]["name"],
                        sampler=settings.sampler or "", steps=settings.steps, consistency=settings.consistency,
                        guidance={"image": settings.guidance_image, "lighting": settings.guidance_light},
                        seed=settings.seed, samples=settings.samples, input_hash=digest, colour_space=colour_space)
    if basis and plan is not None:
        meta.basis = [{k: v for k, v in b.items() if k != "index"} for b in plan.basis]
        meta.stage = plan.stage
        meta.camera_c2w = plan.camera_c2w
    return meta


def consistency_error(pipe, info, plate: np.ndarray, alpha: np.ndarray, settings: RelightSettings,
                      c2w: np.ndarray | None = None,
                      normals: np.ndarray | None = None,  # [m, m, 3] the plate's face normals (a normals model)
                      ) -> tuple[float, np.ndarray]:
    """Relative mean absolute error between the plate and the sum of its predicted stage OLATs.

    Light transport is linear and flat-lit is every stage light at its recorded irradiance, so the
    predictions for all stage directions, weighted by that irradiance, must add back up to the input.
    Needs no ground truth, so it works on real plates. Stage directions are taken in the frame of
    ``c2w`` (default: Blender's front view, the stage's up being the camera's up, as in training).
    """
    if info.layout is None or info.stage_irradiance is None:
        raise ValidationError("the bundle records no stage layout and irradiance; it cannot be checked this way")
    dirs = world_to_camera_directions(info.layout.directions, front_camera_c2w() if c2w is None else np.asarray(c2w))
    out = pipe(plate, dirs, np.zeros(len(dirs)), num_inference_steps=settings.steps,
               guidance_image=settings.guidance_image, guidance_light=settings.guidance_light,
               seed=settings.seed, sampler=settings.sampler, batch_size=settings.batch_size, normals=normals)
    irradiance = np.asarray(info.stage_irradiance, np.float32) / np.asarray(info.stage_coverage, np.float32)
    total = np.einsum("nhwc,nc->hwc", out.images, irradiance)
    mask = alpha > 0.5
    err = float(np.abs(total - plate)[mask].mean() / max(plate[mask].mean(), 1e-12))
    return err, total
