"""Relight one frame: every light of a rig is one inference in a batch; its colour and
intensity scale the predicted unit-irradiance image in float32; lights (or light groups)
become layers and the beauty is their float32 sum."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

import numpy as np

from ..errors import RelitError, ValidationError
from ..io.passes import PassMetadata, RelitPasses
from ..lighting.camera import front_camera_c2w, world_to_camera_directions
from ..lighting.hdri import load_environment, project_to_layout
from ..lighting.rig import LightRig

log = logging.getLogger(__name__)

ENV_LAYER = "environment"


@dataclass
class RelightSettings:
    steps: int = 30              # denoising steps
    guidance_image: float = 1.0  # lambda_I
    guidance_light: float = 1.0  # lambda_L
    seed: int = 0                # initial noise seed (shared by every light of the frame)
    sampler: str = "ddim"        # "ddim" or "dpmpp"
    batch_size: int = 16         # lights per UNet batch


def _stage_lights(info, rig: LightRig) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame stage directions [N, 3] and their HDRI weights [N, 3] for the rig's environment."""
    env = rig.environment
    if info.layout is None:
        raise ValidationError("the bundle records no stage layout; the 'stage' HDRI strategy needs an olat bundle")
    if rig.camera_c2w is None:
        raise ValidationError("rig.camera_c2w is missing: an environment needs the camera it is seen from")
    proj = project_to_layout(load_environment(env.path), info.layout, env.rotation, env.intensity)
    if proj.dropped_fraction > 0:
        log.warning("the stage has no lights below its floor: %.1f%% of the environment's energy is dropped",
                    100 * proj.dropped_fraction)
    return world_to_camera_directions(info.layout.directions, np.asarray(rig.camera_c2w)), proj.weights


def relight_frame(pipe, info, plate: np.ndarray, alpha: np.ndarray, rig: LightRig,
                  settings: RelightSettings, progress=None) -> tuple[RelitPasses, int]:
    """Relit passes of one plate ([H, W, 3] flat-lit at the model resolution, matte [H, W]) and the
    number of UNet evaluations spent."""
    if info.config.conditioning == "envmap":
        return _relight_envmap(pipe, info, plate, alpha, rig, settings, progress)
    dirs, sizes, scale, layer_of = [], [], [], []
    for light in rig.lights:
        dirs.append(light.direction)
        sizes.append(light.size)
        scale.append(np.asarray(light.rgb) * light.intensity)
        layer_of.append(light.group or light.name)
    if rig.environment is not None:
        stage_dirs, weights = _stage_lights(info, rig)
        dirs += list(stage_dirs)
        sizes += [0.0] * len(stage_dirs)
        scale += list(weights)
        layer_of += [ENV_LAYER] * len(stage_dirs)
    out = pipe(plate, np.asarray(dirs), np.asarray(sizes), num_inference_steps=settings.steps,
               guidance_image=settings.guidance_image, guidance_light=settings.guidance_light,
               seed=settings.seed, sampler=settings.sampler, batch_size=settings.batch_size,
               callback_on_step_end=progress)
    layers: dict[str, np.ndarray] = {}
    matte = alpha.astype(np.float32)[..., None]
    for img, s, name in zip(out.images, scale, layer_of):
        contribution = (img * np.asarray(s, dtype=np.float32)[None, None, :]) * matte
        layers[name] = layers.get(name, 0) + contribution.astype(np.float32)
    return RelitPasses(layers, alpha.astype(np.float32)), out.evaluations


def _relight_envmap(pipe, info, plate, alpha, rig: LightRig, settings: RelightSettings, progress):
    """SynthLight: one pass with the environment (camera frame, tone-mapped) on channels."""
    from ..model.envmap import camera_frame_latlong, encode_environment

    if rig.lights:
        raise RelitError(f"an envmap bundle ({info.id}) relights environments only; the rig has "
                         f"{len(rig.lights)} light(s): use an olat bundle for lights")
    env = rig.environment
    if env is None or rig.camera_c2w is None:
        raise ValidationError("an envmap bundle needs the rig's environment and camera_c2w")
    res = info.config.resolution
    latlong = camera_frame_latlong(load_environment(env.path), env.rotation, np.asarray(rig.camera_c2w), res // 2)
    encoded, scale = encode_environment(latlong * env.intensity, res)
    out = pipe(plate, environment=encoded[None], num_inference_steps=settings.steps,
               guidance_image=settings.guidance_image, guidance_light=settings.guidance_light, seed=settings.seed,
               sampler=settings.sampler, callback_on_step_end=progress)
    image = out.images[0] * np.float32(scale) * alpha.astype(np.float32)[..., None]
    return RelitPasses({ENV_LAYER: image.astype(np.float32)}, alpha.astype(np.float32)), out.evaluations


def input_hash(plate: np.ndarray, rig: LightRig, bundle_sha256: str, settings: RelightSettings) -> str:
    """Everything a frame's result depends on; a resumed job skips frames whose stored hash matches."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(plate, dtype=np.float32).tobytes())
    h.update(rig.dumps().encode())
    h.update(bundle_sha256.encode())
    h.update(json.dumps(settings.__dict__, sort_keys=True).encode())
    return h.hexdigest()


def pass_metadata(rig: LightRig, info, settings: RelightSettings, digest: str, colour_space: str) -> PassMetadata:
    return PassMetadata(rig=rig.to_json(), bundle_id=info.id, bundle_sha256=info.sha256, sampler=settings.sampler,
                        steps=settings.steps, guidance={"image": settings.guidance_image,
                                                        "lighting": settings.guidance_light},
                        seed=settings.seed, input_hash=digest, colour_space=colour_space)


def consistency_error(pipe, info, plate: np.ndarray, alpha: np.ndarray, settings: RelightSettings,
                      c2w: np.ndarray | None = None) -> tuple[float, np.ndarray]:
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
               seed=settings.seed, sampler=settings.sampler, batch_size=settings.batch_size)
    total = np.einsum("nhwc,nc->hwc", out.images, np.asarray(info.stage_irradiance, dtype=np.float32))
    mask = alpha > 0.5
    err = float(np.abs(total - plate)[mask].mean() / max(plate[mask].mean(), 1e-12))
    return err, total
