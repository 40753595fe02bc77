"""RelightModel, RelightPipeline and bundles with tiny components built from configs."""

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

from core.errors import RelitIOError
from core.model.bundle import BundleInfo, load_bundle, save_bundle
from core.model.codec import UnshuffleCodec
from core.model.config import preset
from core.model.network import RelightModel, build_unet, load_base_unet
from core.model.noise import pyramid_noise
from core.model.pipeline import RelightPipeline
from core.model.tone import ToneCurve

RES = 32


def tiny_pipe(conditioning="olat", seed=0):
    torch.manual_seed(seed)
    cfg = preset("tiny", resolution=RES, conditioning=conditioning)
    model = RelightModel(cfg).eval()
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    return RelightPipeline(model, sched, UnshuffleCodec(2), ToneCurve(), 1.2, 4.0)


def flat_image(seed=0):
    return np.random.default_rng(seed).random((RES, RES, 3)).astype(np.float32)


DIRS = np.array([[0.0, 0.0, 1.0], [0.6, 0.0, 0.8], [0.0, -1.0, 0.0]])


def test_output_shape_determinism_and_evaluation_count():
    pipe = tiny_pipe()
    a = pipe(flat_image(), DIRS, num_inference_steps=3, guidance_image=1.5, guidance_light=2.0, seed=7)
    b = pipe(flat_image(), DIRS, num_inference_steps=3, guidance_image=1.5, guidance_light=2.0, seed=7)
    c = pipe(flat_image(), DIRS, num_inference_steps=3, guidance_image=1.5, guidance_light=2.0, seed=8)
    assert a.images.shape == (3, RES, RES, 3) and a.images.dtype == np.float32
    np.testing.assert_array_equal(a.images, b.images)
    assert np.abs(a.images - c.images).max() > 1e-4
    assert a.evaluations == 3 * 3 * 3  # lights x branches x steps
    plain = pipe(flat_image(), DIRS, num_inference_steps=3, seed=7)
    assert plain.evaluations == 3 * 1 * 3


def test_unit_guidance_is_the_plain_conditional_prediction():
    pipe = tiny_pipe()
    g = torch.Generator().manual_seed(1)
    latents = torch.randn(3, 12, RES // 2, RES // 2, generator=g)
    img = torch.randn(1, 12, RES // 2, RES // 2, generator=g)
    tokens = pipe.model.light_tokens(torch.randn(3, 32, generator=g))
    t = torch.full((3,), 500)
    with torch.no_grad():
        three = pipe._guided(latents, t, img, tokens, None, False, 1.0, 1.0)  # every branch evaluated
        plain = pipe._guided(latents, t, img, tokens, None, True, 1.0, 1.0)
        direct = pipe.model(latents, torch.full((3,), 500), img.expand(3, -1, -1, -1), tokens)
    torch.testing.assert_close(three, direct, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain, direct)


def test_a_light_does_not_depend_on_its_batch():
    pipe = tiny_pipe()
    together = pipe(flat_image(), DIRS, num_inference_steps=2, seed=3, batch_size=3).images
    alone = pipe(flat_image(), DIRS[1:2], num_inference_steps=2, seed=3).images
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-4, atol=1e-4)  # float32 convs differ per batch size


def test_cancel_between_steps():
    pipe = tiny_pipe()
    seen = []

    def cancel(step, total):
        seen.append(step)
        if step == 1:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        pipe(flat_image(), DIRS, num_inference_steps=5, callback_on_step_end=cancel)
    assert seen == [0, 1]


def test_check_inputs_explains():
    pipe = tiny_pipe()
    with pytest.raises(ValueError, match="model works at 32x32"):
        pipe(np.zeros((16, 16, 3), np.float32), DIRS)
    with pytest.raises(ValueError, match="directions"):
        pipe(flat_image(), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        pipe(np.full((RES, RES, 3), np.nan, np.float32), DIRS)
    with pytest.raises(ValueError, match="environment"):
        tiny_pipe("envmap")(flat_image(), DIRS)


def test_envmap_mode_takes_environment_channels():
    pipe = tiny_pipe("envmap")
    assert pipe.model.unet.config.in_channels == 36
    env = np.random.default_rng(0).random((2, RES, RES, 3)).astype(np.float32) * 2 - 1
    out = pipe(flat_image(), environment=env, num_inference_steps=2, guidance_light=2.0)
    assert out.images.shape == (2, RES, RES, 3) and np.all(np.isfinite(out.images))


def test_the_environment_token_is_the_maps_sh_projection():
    """A map L(d) = 1 + 0.5 x has SH c00 = sqrt(4 pi) and c(1, 1) = 0.5 sqrt(4 pi / 3), the rest 0: the
    token recovers them through the map's encoding (normalisation, gamma, squash to the square)."""
    import math

    from core.errors import ValidationError
    from core.lighting.latlong import pixel_directions
    from core.model.envmap import encode_environment, environment_sh

    d = pixel_directions(64, 128)
    radiance = (1.0 + 0.5 * d[..., :1]) * np.array([1.0, 0.5, 0.25])
    encoded, scale = encode_environment(radiance, RES)
    coeffs = environment_sh(torch.from_numpy(encoded)[None])[0].numpy().reshape(3, 9) * scale
    expected = np.zeros(9)
    expected[0], expected[3] = math.sqrt(4 * math.pi), 0.5 * math.sqrt(4 * math.pi / 3)
    for c, gain in enumerate((1.0, 0.5, 0.25)):
        np.testing.assert_allclose(coeffs[c], gain * expected, atol=0.02 * gain)
    # the token conditions the network: another map, another output; without it, the null token
    torch.manual_seed(0)
    model = RelightModel(preset("tiny", resolution=RES, conditioning="envmap", environment_token=True))
    maps = torch.from_numpy(np.stack([encoded, encoded[:, ::-1].copy()]))
    tokens = model.environment_tokens(maps)
    assert tokens.shape == (2, 1, 32) and not torch.equal(tokens[0], tokens[1])
    torch.testing.assert_close(tokens[0, 0, :27], environment_sh(maps)[0])
    plain = RelightModel(preset("tiny", resolution=RES, conditioning="envmap"))
    torch.testing.assert_close(plain.environment_tokens(maps), plain.null_tokens(2))
    with pytest.raises(ValidationError, match="envmap conditioning only"):
        preset("tiny", environment_token=True)


def test_conv_in_expansion_keeps_the_checkpoint_output(tmp_path):
    # a random reduced-width UNet of the SD architecture, saved locally like a checkpoint folder
    torch.manual_seed(0)
    base = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                                layers_per_block=1, cross_attention_dim=32, attention_head_dim=8,
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    base.save_pretrained(tmp_path / "sd" / "unet", safe_serialization=True)
    cfg = preset("tiny", codec="vae", latent_channels=4, resolution=64, token_width=32,
                 base_checkpoint=str(tmp_path / "sd"))
    expanded = load_base_unet(cfg)
    assert expanded.conv_in.in_channels == 8 and expanded.config.in_channels == 8
    x = torch.randn(2, 4, 8, 8)
    extra = torch.randn(2, 4, 8, 8)
    tokens = torch.randn(2, 1, 32)
    with torch.no_grad():
        before = base(x, torch.tensor([10, 900]), encoder_hidden_states=tokens).sample
        after = expanded(torch.cat([x, extra], 1), torch.tensor([10, 900]), encoder_hidden_states=tokens).sample
    torch.testing.assert_close(after, before, atol=1e-6, rtol=1e-6)
    (tmp_path / "bad" / "unet").mkdir(parents=True)
    with pytest.raises(RelitIOError, match="diffusers layout"):
        load_base_unet(preset("tiny", base_checkpoint=str(tmp_path / "elsewhere")))


def _info(pipe, subject="s"):
    return BundleInfo(id="test", config=pipe.model.config, tone=pipe.tone, exposure_image=pipe.exposure_image,
                      exposure_target=pipe.exposure_target, layout=None, stage_irradiance=None, subject=subject,
                      training={"command": "pytest"}, licence="test")


def test_bundle_round_trip_is_bit_exact(tmp_path):
    pipe = tiny_pipe()
    with torch.no_grad():
        for p in pipe.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    saved = _info(pipe)
    folder = save_bundle(tmp_path / "bundle", pipe, saved)
    loaded, info = load_bundle(folder)
    assert info.sha256 == saved.sha256  # the hash the writer recorded is the one a reader computes
    for (k, a), (_, b) in zip(pipe.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), k
    kwargs = dict(num_inference_steps=3, guidance_image=1.5, guidance_light=2.0, seed=5)
    np.testing.assert_array_equal(pipe(flat_image(), DIRS, **kwargs).images, loaded(flat_image(), DIRS, **kwargs).images)
    assert info.subject == "s" and len(info.sha256) == 64
    assert not list(tmp_path.glob(".*partial*"))
    with pytest.raises(RelitIOError, match="never overwritten"):
        save_bundle(folder, pipe, _info(pipe))


def test_pickled_checkpoints_are_refused(tmp_path):
    pipe = tiny_pipe()
    folder = save_bundle(tmp_path / "bundle", pipe, _info(pipe))
    torch.save({"w": torch.zeros(1)}, folder / "unet" / "diffusion_pytorch_model.bin")
    with pytest.raises(RelitIOError, match="arbitrary code"):
        load_bundle(folder)


def test_tone_curve_is_invertible_with_headroom():
    tone = ToneCurve(white=8.0)
    x = torch.tensor([-0.05, 0.0, 1e-4, 0.01, 0.5, 1.0, 4.0, 8.0])
    y = tone.encode(x)
    assert y[1] == -1.0 and y[-1] == pytest.approx(1.0)
    assert torch.all(torch.diff(y) > 0)
    torch.testing.assert_close(tone.decode(y), x, atol=1e-6, rtol=1e-5)


def test_unshuffle_codec_is_lossless():
    codec = UnshuffleCodec(2)
    x = torch.randn(2, 3, 16, 16)
    assert codec.encode(x).shape == (2, 12, 8, 8)
    assert torch.equal(codec.decode(codec.encode(x)), x)


def test_pyramid_noise_has_unit_variance_and_low_frequency_power():
    g = torch.Generator().manual_seed(0)
    n = pyramid_noise((64, 4, 32, 32), g, discount=0.8)
    assert n.std().item() == pytest.approx(1.0, abs=0.02)
    white = torch.randn(64, 4, 32, 32, generator=g)
    coarse = lambda z: torch.nn.functional.avg_pool2d(z, 8).var().item()
    assert coarse(n) > 5 * coarse(white)  # white noise averages away, pyramid noise does not
    assert build_unet(preset("tiny", resolution=RES)).config.in_channels == 24


def test_dpm_solver_and_ddim_agree_in_the_limit_of_steps():
    """Both samplers integrate the same model: with many steps their results converge to each other."""
    pipe = tiny_pipe()
    kwargs = dict(seed=2, guidance_image=1.0, guidance_light=1.0)
    ddim = pipe(flat_image(), DIRS[:1], num_inference_steps=20, sampler="ddim", **kwargs).images
    dpm = pipe(flat_image(), DIRS[:1], num_inference_steps=20, sampler="dpmpp", **kwargs).images
    few = pipe(flat_image(), DIRS[:1], num_inference_steps=2, sampler="dpmpp", **kwargs).images
    assert np.all(np.isfinite(dpm))
    assert np.abs(ddim - dpm).mean() < np.abs(ddim - few).mean()
    with pytest.raises(ValueError, match="sampler"):
        pipe(flat_image(), DIRS[:1], num_inference_steps=2, sampler="euler")


def _refine_bundle(pipe, steps: int, consistency: str):
    """``pipe``'s network as a refine pipeline (residual scale 0.2) and its BundleInfo with that recipe."""
    from core.model.objectives import RefineObjective

    refine = RelightPipeline(pipe.model, RefineObjective().scheduler(), pipe.codec, pipe.tone, 1.2, 4.0,
                             RefineObjective(residual_scale=0.2))
    info = _info(pipe)
    info.recipe = {"objective": refine.objective.params(), "steps": steps, "consistency": consistency}
    return refine, info


def test_bundle_records_its_recipe_and_legacy_bundles_load_as_ddpm(tmp_path):
    import json

    from core.model.objectives import FlowObjective, RefineObjective

    pipe = tiny_pipe()
    refine, info = _refine_bundle(pipe, steps=10, consistency="ratio")
    folder = save_bundle(tmp_path / "refine", refine, info)
    loaded, got = load_bundle(folder)
    assert got.recipe == info.recipe and isinstance(loaded.objective, RefineObjective)
    assert loaded.objective.residual_scale == 0.2
    kwargs = dict(num_inference_steps=3, seed=5)
    out = loaded(flat_image(), DIRS, **kwargs)
    np.testing.assert_array_equal(refine(flat_image(), DIRS, **kwargs).images, out.images)
    assert out.evaluations == 3 * (3 + 1)  # lights x (steps + the mean pass)
    flow = RelightPipeline(pipe.model, FlowObjective().scheduler(), pipe.codec, pipe.tone, 1.2, 4.0, FlowObjective())
    info.recipe = {"objective": {"name": "flow", "source_noise": 0.5}, "steps": 4, "consistency": "none"}
    loaded, _ = load_bundle(save_bundle(tmp_path / "flow", flow, info))
    np.testing.assert_array_equal(flow(flat_image(), DIRS, **kwargs).images, loaded(flat_image(), DIRS, **kwargs).images)
    # a bundle from before recipes: DDPM v-prediction, 30 steps, no correction
    legacy = save_bundle(tmp_path / "legacy", pipe, _info(pipe))
    data = json.loads((legacy / "relit.json").read_text())
    del data["recipe"]
    (legacy / "relit.json").write_text(json.dumps(data))
    loaded, got = load_bundle(legacy)
    assert got.recipe == {"objective": {"name": "diffusion"}, "steps": 30, "consistency": "none"}
    assert loaded.objective.name == "diffusion"
    data["recipe"] = {"objective": {"name": "gan"}}
    (legacy / "relit.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="objective 'gan'"):
        load_bundle(legacy)
    data["recipe"] = {"objective": {"name": "diffusion"}, "steps": 0}  # no mean pass to sample alone
    (legacy / "relit.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="recipe.steps: 0 sampler steps: the 'diffusion' objective needs at least 1"):
        load_bundle(legacy)


def test_a_refine_bundle_at_zero_steps_samples_its_mean_pass_once_per_light(tmp_path):
    from core.model.objectives import RefineObjective

    refine, info = _refine_bundle(tiny_pipe(), steps=0, consistency="none")
    loaded, got = load_bundle(save_bundle(tmp_path / "mean", refine, info))
    assert got.recipe["steps"] == 0
    a, b = (loaded(flat_image(), DIRS, num_inference_steps=0, seed=s) for s in (1, 2))
    np.testing.assert_array_equal(a.images, b.images)  # deterministic: no noise is sampled
    assert a.evaluations == len(DIRS)
    with torch.no_grad():  # the twin: the network's mean pass decoded by hand
        img = refine._to_latent(torch.as_tensor(flat_image())[None], refine.exposure_image)
        enc = torch.from_numpy(refine.model.config.light_encoding().encode(np.asarray(DIRS), np.zeros(len(DIRS))))
        mu = refine.model(torch.zeros((len(DIRS),) + tuple(img.shape[1:])),
                          torch.full((len(DIRS),), RefineObjective.MEAN_TIMESTEP), img.expand(len(DIRS), -1, -1, -1),
                          refine.model.light_tokens(enc), None, None)
        twin = (refine.tone.decode(refine.codec.decode(mu).clamp(-1.0, 1.0)) / refine.exposure_target)
    np.testing.assert_allclose(a.images, twin.permute(0, 2, 3, 1).numpy(), atol=1e-6)


def test_a_bundle_without_its_scheduler_is_refused_without_a_network_call(tmp_path):
    import shutil

    pipe = tiny_pipe()
    folder = save_bundle(tmp_path / "b", pipe, _info(pipe))
    shutil.rmtree(folder / "scheduler")
    with pytest.raises(RelitIOError, match="scheduler_config.json missing"):
        load_bundle(folder)
