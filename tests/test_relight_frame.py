"""Relighting one frame: rig lights as batched inferences, layers, groups, the environment."""

import math

import numpy as np
import pytest

from core.io.exr import write_rgba
from core.io.passes import read_passes, write_passes
from core.lighting.camera import camera_to_world_directions, front_camera_c2w, world_to_camera_directions
from core.lighting.hdri import project_to_layout
from core.lighting.layout import builtin_layout
from core.lighting.rig import Environment, Light, LightRig
from core.model.bundle import BundleInfo
from core.relight.frame import (RelightSettings, consistency_error, light_keys, light_noise, pass_metadata,
                                plan_lighting, relight_frame)
from tests.conftest import env_from_function
from tests.test_model import RES, flat_image, tiny_pipe

SETTINGS = RelightSettings(steps=2, seed=4, guidance_image=1.0, guidance_light=1.5)


def plate():
    """A plate with no dim pixels (all above RATIO_TRUST x the ratio floor): at the model's size the relit
    layers are then exactly the model's output."""
    return flat_image() + np.float32(0.1)


def _info(pipe, layout=None):
    irr = None if layout is None else np.repeat(layout.solid_angles[:, None], 3, 1).tolist()
    return BundleInfo(id="t", config=pipe.model.config, tone=pipe.tone, exposure_image=pipe.exposure_image,
                      exposure_target=pipe.exposure_target, layout=layout, stage_irradiance=irr, subject="s",
                      training={}, licence="")


def _rig(*names):
    lights = {"key": Light("key", "area", (0.3, 0.4, 0.75 ** 0.5), 0.2, (1.0, 0.8, 0.6), 2.0),
              "fill": Light("fill", "point", (-0.7, 0.0, 0.714), 0.0, (0.5, 0.5, 1.0), 0.5, group="soft"),
              "bounce": Light("bounce", "point", (0.0, -0.9, 0.436), 0.5, (1.0, 1.0, 1.0), 0.25, group="soft")}
    return LightRig([lights[n] for n in names])


def test_layers_sum_to_the_beauty_and_groups_merge(tmp_path):
    pipe = tiny_pipe()
    alpha = np.ones((RES, RES), np.float32)
    alpha[:, :4] = 0
    premultiplied = plate() * alpha[..., None]
    passes, evaluations = relight_frame(pipe, _info(pipe), premultiplied, alpha, _rig("key", "fill", "bounce"),
                                        SETTINGS)
    assert sorted(passes.layers) == ["key", "soft"] and evaluations == 3 * 3 * 2
    np.testing.assert_array_equal(passes.beauty(), passes.layers["key"] + passes.layers["soft"])
    assert np.all(passes.layers["key"][:, :4] == 0)  # composited through the matte
    np.testing.assert_array_equal(passes.alpha, alpha)
    path = write_passes(tmp_path / "f.exr", passes, pass_metadata(_rig("key"), _info(pipe), SETTINGS, "h", "lin_rec709"))
    layers, beauty, _ = read_passes(path)
    half = sum(layers.values())
    np.testing.assert_allclose(beauty, half, atol=2e-3 * max(1.0, float(np.abs(half).max())))


def test_two_light_rig_equals_the_sum_of_single_light_runs():
    pipe = tiny_pipe()
    alpha = np.ones((RES, RES), np.float32)
    both, _ = relight_frame(pipe, _info(pipe), plate(), alpha, _rig("key", "fill"), SETTINGS)
    key, _ = relight_frame(pipe, _info(pipe), plate(), alpha, _rig("key"), SETTINGS)
    fill, _ = relight_frame(pipe, _info(pipe), plate(), alpha, _rig("fill"), SETTINGS)
    np.testing.assert_allclose(both.beauty(), key.beauty() + fill.beauty(), atol=1e-4)


def test_environment_is_a_weighted_sum_of_stage_inferences(tmp_path):
    pipe = tiny_pipe()
    layout = builtin_layout("rings32")
    env = env_from_function(32, lambda d: np.exp(6 * (d @ np.array([0.0, -0.6, 0.8]) - 1))[..., None] * np.ones(3))
    path = tmp_path / "env.exr"
    write_rgba(path, env, np.ones(env.shape[:2], np.float32))
    c2w = front_camera_c2w(2.0)
    rot = (0.0, 0.0, math.radians(40))
    rig = LightRig([], Environment(str(path), rot, 1.5), c2w.tolist())
    alpha = np.ones((RES, RES), np.float32)
    passes, evaluations = relight_frame(pipe, _info(pipe, layout), plate(), alpha, rig, SETTINGS)
    assert evaluations == len(layout) * 3 * 2
    dirs = world_to_camera_directions(layout.directions, c2w)
    noise = light_noise(light_keys(plan_lighting(_info(pipe, layout), rig)), 4, pipe.latent_shape())
    unit = pipe(plate(), dirs, num_inference_steps=2, noise=noise, guidance_light=1.5).images
    w = project_to_layout(env.astype(np.float16).astype(np.float32), layout, rot, 1.5).weights
    np.testing.assert_allclose(passes.layers["environment"], np.einsum("nhwc,nc->hwc", unit, w), rtol=1e-4, atol=1e-5)


def test_self_consistency_of_ground_truth_olats_is_their_linearity(capture):
    """A perfect model (the rendered OLATs themselves) sums back to the plate within the render noise."""
    m = capture.manifest
    cam, frame = m.cameras[0], m.frames[0].frame
    olats, alpha = capture.olats(cam.name, frame)
    flat = capture.flat(cam.name, frame)
    unit = olats / m.irradiance[:, None, None, :]
    layout = m.layout

    class Oracle:
        def __call__(self, plate, dirs, sizes, **kw):
            world = camera_to_world_directions(dirs, cam.c2w)
            idx = layout.nearest(world)
            assert np.all(np.sum(layout.directions[idx] * world, 1) > 0.9999)
            return type("Out", (), {"images": unit[idx]})()

    info = BundleInfo(id="oracle", config=None, tone=None, exposure_image=1, exposure_target=1, layout=layout,
                      stage_irradiance=m.irradiance.tolist(), subject=m.subject, training={}, licence="")
    err, total = consistency_error(Oracle(), info, flat.rgb, flat.alpha, SETTINGS, c2w=cam.c2w)
    assert err < 0.01
    with pytest.raises(Exception, match="stage layout"):
        consistency_error(Oracle(), _info(tiny_pipe()), flat.rgb, flat.alpha, SETTINGS)


def test_envmap_bundle_relights_an_environment(tmp_path):
    pipe = tiny_pipe("envmap")
    env = env_from_function(16, lambda d: (1.0 + d[..., :1]) * np.ones(3))
    path = tmp_path / "env.exr"
    write_rgba(path, env, np.ones(env.shape[:2], np.float32))
    rig = LightRig([], Environment(str(path), (0.0, 0.0, 0.3), 2.0), front_camera_c2w().tolist())
    alpha = np.ones((RES, RES), np.float32)
    passes, evaluations = relight_frame(pipe, _info(pipe), plate(), alpha, rig, SETTINGS)
    assert list(passes.layers) == ["environment"] and evaluations == 3 * 2
    # the result is predicted per unit of the map's mean radiance: doubling the intensity doubles it
    rig.environment.intensity = 4.0
    doubled, _ = relight_frame(pipe, _info(pipe), plate(), alpha, rig, SETTINGS)
    np.testing.assert_allclose(doubled.layers["environment"], 2 * passes.layers["environment"], rtol=1e-4, atol=1e-6)


def test_an_envmap_pass_is_scaled_by_the_hdris_true_mean_whatever_its_rotation(tmp_path):
    """The portrait model predicts per unit of the lighting's mean radiance: a small sun between the
    samples of the model's small camera-frame map must not change the pass's scale as the HDRI
    turns (a slowly turning HDRI would flicker). The scale is the source map's solid-angle mean."""
    from core.lighting.latlong import pixel_solid_angles

    info = _info(tiny_pipe("envmap"))
    env = np.full((128, 256, 3), 0.5, np.float32)
    env[40, 77] = 4e4  # a sun of one texel: about a third of the energy
    path = tmp_path / "sun.exr"
    write_rgba(path, env, np.ones(env.shape[:2], np.float32))
    omega = pixel_solid_angles(128, 256)[..., None]
    true_mean = float(np.mean((env * omega).sum(axis=(0, 1)) / omega.sum()))
    scales = []
    for turn in (0.0, 0.3, 0.6, 0.9, 1.2):
        rig = LightRig([], Environment(str(path), (0.0, 0.0, turn), 1.5), front_camera_c2w().tolist())
        scales.append(plan_lighting(info, rig, environment=env).environment_scale[0])
    np.testing.assert_allclose(scales, 1.5 * true_mean, rtol=1e-6)


def test_envmap_bundle_relights_each_lamp_as_its_own_environment(tmp_path):
    """A rig on a portrait (envmap) bundle: each lamp is one pass lit by an environment holding only
    that lamp, the HDRI one more; layers follow light groups and sum to the beauty; a lamp's pass
    scales with its intensity and carries its irradiance (a disc of its size on black)."""
    pipe = tiny_pipe("envmap")
    info = _info(pipe)
    env = env_from_function(16, lambda d: (1.0 + d[..., :1]) * np.ones(3))
    path = tmp_path / "env.exr"
    write_rgba(path, env, np.ones(env.shape[:2], np.float32))
    rig = _rig("key", "fill", "bounce")  # fill and bounce share the group "soft"
    rig.environment = Environment(str(path), (0.0, 0.0, 0.3), 2.0)
    plan = plan_lighting(info, rig)
    assert plan.inferences == 4 and list(plan.layers) == ["key", "soft", "environment"]
    # the key's pass: an environment whose energy is the key's irradiance (mean radiance = energy / 4 pi)
    key = rig.lights[0]
    assert plan.environment_scale[0] == pytest.approx(key.intensity * np.mean(key.rgb) / (4 * np.pi), rel=1e-5)
    # ... and the lamp sits where the key is in the camera-frame map the model sees
    from core.lighting.latlong import pixel_directions, pixel_solid_angles

    seen = ((plan.environment[0].mean(axis=-1) + 1) / 2) ** 2.2  # undo the encoding's gamma
    h, w = seen.shape
    centroid = ((seen * pixel_solid_angles(h, w))[..., None] * pixel_directions(h, w)).sum(axis=(0, 1))
    cosine = centroid @ np.array(key.direction) / np.linalg.norm(centroid) / np.linalg.norm(key.direction)
    assert np.degrees(np.arccos(min(1.0, cosine))) < 8
    alpha = np.ones((RES, RES), np.float32)
    passes, evaluations = relight_frame(pipe, info, plate(), alpha, rig, SETTINGS)
    assert evaluations == 4 * 3 * SETTINGS.steps  # 4 passes x 3 guidance branches x steps
    np.testing.assert_allclose(sum(passes.layers.values()), passes.beauty(), rtol=1e-6)
    key.intensity *= 3.0
    brighter, _ = relight_frame(pipe, info, plate(), alpha, rig, SETTINGS)
    np.testing.assert_allclose(brighter.layers["key"], 3 * passes.layers["key"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(brighter.layers["soft"], passes.layers["soft"], rtol=1e-5, atol=1e-7)
    # a dark lamp costs no pass and leaves its layer black (no error from an empty environment)
    key.intensity = 0.0
    dark = plan_lighting(info, rig)
    assert dark.inferences == 3 and list(dark.layers) == ["key", "soft", "environment"]
    passes, _ = relight_frame(pipe, info, plate(), alpha, rig, SETTINGS)
    assert not passes.layers["key"].any()


def test_each_light_draws_its_own_noise_whatever_shares_its_run():
    """Independent noise per light (so sampling grain does not add up coherently in sums), keyed by
    the light itself: the same light gets the same noise alone, in another rig or in another batch."""
    pipe = tiny_pipe()
    info = _info(pipe)
    keys = light_keys(plan_lighting(info, _rig("key", "fill", "bounce")))
    assert len(set(keys)) == 3
    noise = light_noise(keys, 4, pipe.latent_shape())
    assert abs(float(np.corrcoef(noise[0].ravel(), noise[1].ravel())[0, 1])) < 0.1
    assert keys[1] == light_keys(plan_lighting(info, _rig("fill")))[0]
    alone, _ = relight_frame(pipe, info, plate(), np.ones((RES, RES), np.float32), _rig("fill", "bounce"), SETTINGS)
    small = RelightSettings(**{**SETTINGS.__dict__, "batch_size": 1})
    with_key, _ = relight_frame(pipe, info, plate(), np.ones((RES, RES), np.float32),
                                _rig("key", "fill", "bounce"), small)
    np.testing.assert_allclose(with_key.layers["soft"], alone.layers["soft"], rtol=1e-4, atol=1e-4)


def test_samples_average_independent_draws_per_light():
    pipe = tiny_pipe()
    info = _info(pipe)
    rig = _rig("key")
    plan = plan_lighting(info, rig)
    keys = light_keys(plan, 2)
    assert keys[:1] == light_keys(plan) and len(set(keys)) == 2  # sample 0 is the single-sample draw
    noise = light_noise(keys, SETTINGS.seed, pipe.latent_shape())
    kw = dict(num_inference_steps=2, guidance_light=1.5)
    draws = [pipe(plate(), plan.directions, plan.sizes, noise=noise[i:i + 1], **kw).images[0] for i in range(2)]
    two = RelightSettings(**{**SETTINGS.__dict__, "samples": 2})
    passes, evaluations = relight_frame(pipe, info, plate(), np.ones((RES, RES), np.float32), rig, two)
    assert evaluations == 2 * 3 * 2  # samples x branches x steps
    light = rig.lights[0]
    expected = 0.5 * (draws[0] + draws[1]) * np.asarray(light.rgb, np.float32) * light.intensity
    np.testing.assert_allclose(passes.layers["key"], expected, rtol=1e-4, atol=1e-5)


def test_ratio_consistency_makes_a_white_environment_give_the_input_back(tmp_path):
    """A uniform white world projects onto the stage as the irradiance each stage light delivers (a stage
    records it; here it is that projection), so with the ratio correction the environment layer is the
    plate itself, whatever the (untrained) model predicts."""
    pipe = tiny_pipe()
    layout = builtin_layout("rings32")
    env = np.ones((32, 64, 3), np.float32)
    path = tmp_path / "white.exr"
    write_rgba(path, env, np.ones(env.shape[:2], np.float32))
    rig = LightRig([], Environment(str(path), (0.0, 0.0, 0.0), 1.0), front_camera_c2w(2.0).tolist())
    alpha = np.ones((RES, RES), np.float32)
    info = _info(pipe, layout)
    info.stage_irradiance = project_to_layout(env, layout, (0.0, 0.0, 0.0), 1.0, "drop").weights.tolist()
    settings = RelightSettings(steps=2, seed=4, consistency="ratio")
    passes, evaluations = relight_frame(pipe, info, plate(), alpha, rig, settings)
    assert evaluations == len(layout) * 2
    np.testing.assert_allclose(passes.layers["environment"], plate(), rtol=1e-4, atol=1e-6)
    raw, _ = relight_frame(pipe, info, plate(), alpha, rig, RelightSettings(steps=2, seed=4))
    assert np.abs(raw.layers["environment"] - plate()).mean() > 0.05 * plate().mean()
    # the correction needs every stage light of the frame in one unit
    with pytest.raises(ValueError, match="light chunks"):
        plan_lighting(info, rig, light_chunk=(0, 8), consistency="ratio")


def test_a_partial_stage_is_pinned_to_its_share_of_the_input_not_the_whole():
    """An analytic Lambertian sphere on a stage that lost its upper lights: the flat-lit was lit by
    the whole stage, so the partial stage's OLATs add up to a share of it (its coverage). A perfect
    model's white-environment relight with the ratio correction keeps the partial stage's own sum
    when the bundle records that coverage; pinned to the whole input it came out 1 / coverage too
    bright (the 1.26x the issue measured)."""
    from core.lighting.layout import StageLayout
    from core.model.consistency import partial_stage_message, stage_coverage
    from core.relight.frame import prepare_plate, relight_prepared

    full = builtin_layout("rings32")
    c2w = front_camera_c2w()
    yy, xx = (np.mgrid[0:RES, 0:RES] + 0.5) / RES * 2 - 1
    inside = xx ** 2 + yy ** 2 < 0.9 ** 2
    normals = np.stack([xx, -yy, np.sqrt(np.clip(1 - xx ** 2 - yy ** 2, 0, 1))], -1)  # camera frame
    albedo = np.array([0.6, 0.5, 0.4], np.float32)

    def olats(layout):  # [N, H, W, 3] radiance per unit irradiance
        dirs = world_to_camera_directions(layout.directions, c2w)
        cos = np.clip(np.einsum("hwc,nc->nhw", normals, dirs), 0, None) * inside
        return (cos[..., None] * albedo / math.pi).astype(np.float32)

    keep = full.directions[:, 2] < 0.3
    partial = StageLayout("partial", full.directions[keep], full.solid_angles[keep],
                          tuple(np.array(full.names)[keep]))
    flat = np.einsum("nhwc,n->hwc", olats(full), full.solid_angles).astype(np.float32)
    unit = olats(partial)
    irradiance = np.repeat(partial.solid_angles[:, None], 3, 1)
    coverage = stage_coverage(flat[None], unit[None], irradiance, inside[None])
    assert 0.3 < coverage.mean() < 0.9 and partial_stage_message(coverage, "stage") is not None
    assert partial_stage_message(stage_coverage(flat[None], olats(full)[None], np.repeat(
        full.solid_angles[:, None], 3, 1), inside[None]), "stage") is None

    class Oracle:  # the exact OLAT of each requested stage direction
        def latent_shape(self):
            return (12, RES // 2, RES // 2)

        def __call__(self, plate, dirs, sizes, **kw):
            world = camera_to_world_directions(dirs, c2w)
            images = unit[partial.nearest(world)]
            return type("Out", (), {"images": images.copy(), "evaluations": len(dirs)})()

    white = np.ones((16, 32, 3), np.float32)
    pipe = tiny_pipe()
    prepared = prepare_plate(flat, inside.astype(np.float32), RES)
    means = {}
    for label, cov in (("whole input", [1.0, 1.0, 1.0]), ("coverage", coverage.tolist())):
        info = _info(pipe, partial)
        info.stage_coverage = cov
        rig = LightRig([], Environment("white.exr", (0.0, 0.0, 0.0), 1.0), c2w.tolist())
        plan = plan_lighting(info, rig, "stage", environment=white, consistency="ratio")
        out = relight_prepared(Oracle(), plan, prepared, SETTINGS).passes.layers["environment"]
        means[label] = out[inside].mean(axis=0)
    weights = project_to_layout(white, partial, (0.0, 0.0, 0.0)).weights  # the uncorrected oracle's relight
    truth = np.einsum("nhwc,nc->hwc", unit, weights)[inside].mean(axis=0)
    np.testing.assert_allclose(means["coverage"], truth, rtol=0.03)
    np.testing.assert_allclose(means["whole input"], truth / coverage, rtol=0.03)
