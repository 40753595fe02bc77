"""The first stage of the two-stage design (issue 24, after Lux Post Facto): a general *delighter*
turns a plate as shot into its flat-lit, which every OLAT bundle takes as its input; the relight
strategies (stage, area lights, rig lamps, the OLAT basis) then run on it unchanged.

A delighter is an envmap bundle trained to one target, the flat-lit (``relit train --conditioning
envmap --target-lighting flat``): it is given a uniform white environment of unit radiance, which is
what an OLAT bundle's flat-lit stands for (its stage lights' irradiance adds up to it), so the
delighted image is on the scale the OLAT bundle's ratio correction pins its lights to.

The delighted image is only what the model *sees*: the relit layers are still carried back to the
plate as ratios against the plate as shot (``PreparedPlate.model_input``), so the plate keeps its
own detail at its own resolution.
"""

from __future__ import annotations

import numpy as np

from ..errors import ValidationError
from .frame import PreparedPlate, light_noise

DELIGHT_KEY = 0  # the delighter's one inference draws its noise as a light with this key would


def check_delighter(delighter, bundle, source: str) -> None:
    """Refuse a delighter (BundleInfo, read from folder ``source``) that cannot feed ``bundle``
    (BundleInfo): it must be an envmap bundle trained to the flat-lit, at the bundle's resolution,
    and framed as the bundle frames plates (a general bundle by the face, a subject's by its matte)."""
    from ..io.plates import GENERAL_SUBJECT
    from ..lighting.random_lighting import FLAT_TARGET

    if not delighter.config.conditioning_mode.environment or delighter.target_lighting != FLAT_TARGET:
        what = (f"an envmap bundle relighting to {delighter.target_lighting!r} lighting"
                if delighter.config.conditioning_mode.environment else f"an {delighter.config.conditioning} bundle")
        raise ValidationError(f"{source}: bundle {delighter.id} is not a delighter (it is {what}); give one trained "
                              "with relit train --conditioning envmap --target-lighting flat (a bundle trained so "
                              "before relit.json recorded it needs \"target_lighting\": \"flat\" added there), or "
                              "auto for the shipped one")
    if delighter.config.resolution != bundle.config.resolution:
        raise ValidationError(f"{source}: delighter {delighter.id} works at {delighter.config.resolution} px and "
                              f"bundle {bundle.id} at {bundle.config.resolution} px; the delighted image is what "
                              "the bundle sees, so they must match: give a delighter trained at the bundle's size")
    if (delighter.subject == GENERAL_SUBJECT) != (bundle.subject == GENERAL_SUBJECT):
        kind = {True: "a general bundle (plates framed by the face)", False: "a subject's bundle (framed by the matte)"}
        raise ValidationError(f"{source}: delighter {delighter.id} is {kind[delighter.subject == GENERAL_SUBJECT]} "
                              f"but bundle {bundle.id} is {kind[bundle.subject == GENERAL_SUBJECT]}: the plate is "
                              "framed once, for both, so they must be of one kind; with the shipped delighter use "
                              "a general OLAT bundle (--bundle auto picks it)")


def uniform_environment(resolution: int) -> np.ndarray:  # [m, m, 3] encoded
    """The flat-lit's lighting as an envmap bundle is given it: unit radiance everywhere."""
    from ..model.envmap import encode_environment

    encoded, _ = encode_environment(np.ones((resolution // 2, resolution, 3), np.float32), resolution)
    return encoded


def delight(pipe, plate: PreparedPlate, seed: int, steps: int) -> tuple[np.ndarray, int]:  # [m, m, 3], evals
    """The flat-lit of ``plate`` as its model sees it (its framed square, scene-linear), and the UNet
    evaluations it cost: one pass of the delighter ``pipe`` under a uniform white environment of
    unit radiance, at ``steps`` sampler steps (its recipe's). The shipped delighter samples its mean
    pass alone (0 steps: deterministic, no grain to carry between frames); a delighter that samples
    draws the same initial noise every frame (``--noise flow`` moves only the lights' noise)."""
    m = plate.model_input.shape[0]
    noise = light_noise([DELIGHT_KEY], seed, pipe.latent_shape())
    out = pipe(plate.model_input, environment=uniform_environment(m)[None], noise=noise,
               num_inference_steps=steps, seed=seed, normals=plate.normals)
    return np.asarray(out.images[0], np.float32), out.evaluations
