"""Patch-trained models on whole frames (core.model.tiling): the tiled frame is the network's own
crop predictions, blended; crops in training are the same crops of the frame's latent."""

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from core.errors import ValidationError
from core.model.codec import UnshuffleCodec
from core.model.config import preset
from core.model.data import crop_patches
from core.model.network import RelightModel
from core.model.pipeline import RelightPipeline
from core.model.tiling import axis_weights, frame_position, tile_offsets, tiled
from core.model.tone import ToneCurve
from core.model.train import TrainConfig, Trainer


def _patch_pipe(resolution=64, patch=32, position=False):
    torch.manual_seed(0)
    model = RelightModel(preset("tiny", resolution=resolution, patch=patch, position=position)).eval()
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    return RelightPipeline(model, sched, UnshuffleCodec(2), ToneCurve(), 1.0, 2.0)


@pytest.mark.parametrize("size,tile,stride", [(32, 16, 8), (40, 16, 8), (33, 16, 12), (16, 16, 8), (64, 12, 9),
                                              (32, 2, 1), (32, 3, 2), (32, 16, 16), (32, 16, 15)])
def test_tiles_cover_the_frame_and_their_weights_join_without_gaps(size, tile, stride):
    starts = tile_offsets(size, tile, stride)
    assert starts[0] == 0 and starts[-1] == size - tile and np.all(np.diff(starts) <= stride)
    w = axis_weights(size, tile, starts).numpy()
    assert np.all(w.sum(0) > 0)                                 # every pixel has a tile that counts
    for k, s in enumerate(starts):
        outside = np.ones(size, bool)
        outside[s:s + tile] = False
        assert np.all(w[k, outside] == 0)
    assert w[0, 0] == 1 and w[-1, -1] == 1                      # the frame's edges are not faded
    if len(starts) > 1 and starts[0] + tile - starts[1] >= 2:
        # where a neighbour's view is cut (its first pixels), the tile that sees past the cut has the pixel alone
        assert w[0, starts[1]] == 1 and w[1, starts[1]] == 0


def test_a_tiled_frame_is_the_blend_of_the_networks_own_crop_predictions():
    pipe = _patch_pipe()
    model, cfg = pipe.model, pipe.model.config
    tile, stride = pipe.tiles()
    assert (tile, stride) == (16, 8) and cfg.latent_size == 32
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 12, 32, 32, generator=g)
    img = torch.randn(1, 12, 32, 32, generator=g)
    tokens = model.light_tokens(torch.randn(2, cfg.token_width, generator=g))
    t = torch.tensor([500, 500])
    with torch.no_grad():
        out = tiled(lambda ys, xs: model(x[..., ys, xs], t, img[..., ys, xs].expand(2, -1, -1, -1), tokens),
                    x.shape, tile, stride)
        # the twin: every crop through the network on its own, blended by explicit piecewise weights
        starts = [0, 8, 16]
        crops = {(y, xx): model(x[..., y:y + 16, xx:xx + 16], t, img[..., y:y + 16, xx:xx + 16].expand(2, -1, -1, -1),
                                tokens).numpy() for y in starts for xx in starts}

    def weight(k, d_first, d_last):  # d: distance from the tile's first and last pixel
        w = 1.0
        if k > 0:
            w = min(w, np.clip((d_first + 0.5 - 2) / 2, 0, 1))  # overlap 8: zero for 2 px, 1 from 4 px
        if k < 2:
            w = min(w, np.clip((d_last + 0.5 - 2) / 2, 0, 1))
        return w

    num, den = np.zeros((2, 12, 32, 32)), np.zeros((32, 32))
    for i, y in enumerate(starts):
        for j, xx in enumerate(starts):
            for r in range(16):
                for c in range(16):
                    w = weight(i, r, 15 - r) * weight(j, c, 15 - c)
                    num[..., y + r, xx + c] += w * crops[(y, xx)][..., r, c]
                    den[y + r, xx + c] += w
    np.testing.assert_allclose(out.numpy(), num / den, atol=1e-5)
    # away from the frame's borders, the middle of the middle tile is that crop's prediction exactly
    np.testing.assert_allclose(out[..., 14:18, 14:18].numpy(), crops[(8, 8)][..., 6:10, 6:10], atol=1e-6)
    # the whole frame in one pass is another computation (group norms see the frame): tiles are not a no-op
    with torch.no_grad():
        whole = model(x, t, img.expand(2, -1, -1, -1), tokens)
    assert (whole - out).abs().max() > 1e-3


def test_the_pipeline_relights_a_patch_models_frame_by_tiles_and_counts_them(tmp_path):
    from core.lighting.layout import builtin_layout
    from core.model.bundle import BundleInfo, load_bundle, save_bundle

    pipe = _patch_pipe()
    image = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    dirs = np.array([[0.0, 0.0, 1.0], [0.6, 0.0, 0.8]])
    tiles = pipe(image, dirs, num_inference_steps=2, seed=3)
    assert tiles.images.shape == (2, 64, 64, 3) and tiles.evaluations == 2 * 9 * 2
    # a bundle keeps the patch: the loaded pipeline tiles the same way
    layout = builtin_layout("rings16")
    info = BundleInfo(id="patch-test", config=pipe.model.config, tone=pipe.tone, exposure_image=1.0,
                      exposure_target=2.0, layout=layout, stage_irradiance=np.ones((len(layout), 3)).tolist(),
                      subject="face-0007", training={}, licence="test weights")
    loaded, info = load_bundle(save_bundle(tmp_path / "bundle", pipe, info))
    assert info.config.patch == 32
    again = loaded(image, dirs, num_inference_steps=2, seed=3)
    np.testing.assert_allclose(again.images, tiles.images, atol=1e-6)
    assert again.evaluations == tiles.evaluations
    pipe.whole_frame = True
    whole = pipe(image, dirs, num_inference_steps=2, seed=3)
    assert whole.evaluations == 2 * 2 and not np.allclose(whole.images, tiles.images)


def test_patch_settings_are_checked():
    with pytest.raises(ValidationError, match="multiple of 4"):
        preset("tiny", resolution=64, patch=30)
    with pytest.raises(ValidationError, match="below the resolution"):
        preset("tiny", resolution=64, patch=64)
    with pytest.raises(ValidationError, match="olat bundles"):
        preset("tiny", resolution=64, patch=32, conditioning="envmap")


def test_training_crops_are_the_same_window_of_every_image_and_hold_subject():
    rng = np.random.default_rng(0)
    flat = rng.random((6, 40, 40, 3)).astype(np.float32)
    alpha = np.zeros((6, 40, 40), np.float32)
    alpha[:, 30:38, 2:10] = 1.0  # the subject in a corner
    batch = {"flat": flat, "target": 2 * flat, "alpha": alpha, "direction": np.zeros((6, 3))}
    out = crop_patches(rng, batch, 16, 2)
    assert out["flat"].shape == (6, 16, 16, 3) and out["alpha"].shape == (6, 16, 16)
    np.testing.assert_array_equal(out["target"], 2 * out["flat"])
    assert out["direction"] is batch["direction"]
    for b in range(6):  # each crop is a window of its own frame at an even corner, the corner recorded
        hits = [(y, x) for y in range(0, 25, 2) for x in range(0, 25, 2)
                if np.array_equal(flat[b, y:y + 16, x:x + 16], out["flat"][b])]
        assert hits == [tuple(out["crop"][b])]
    # most crops hold subject (a fifth are drawn anywhere: inference tiles cover the background too)
    many = crop_patches(np.random.default_rng(1), {k: np.repeat(v, 50, 0) for k, v in batch.items()}, 16, 2)
    share = np.mean(many["alpha"].sum((1, 2)) > 0)
    assert 0.75 < share < 1.0, share


def test_a_run_resumes_only_with_the_patch_it_was_trained_with(capture, tmp_path):
    base = dict(captures=[str(capture.root)], output=str(tmp_path / "run"), resolution=32, batch=2, steps=2,
                val_every=0, checkpoint_every=2, holdout_light_every=8)
    Trainer(TrainConfig(**base, patch=16)).train(progress=False)
    with pytest.raises(ValidationError, match="16-px patches; resume it with --patch 16"):
        Trainer(TrainConfig(**base))
    with pytest.raises(ValidationError, match="position False, not True"):  # refused before loading weights
        Trainer(TrainConfig(**base, patch=16, position=True))


def test_a_patch_trained_model_relights_the_whole_frame_better_than_the_flat_lit(capture, tmp_path):
    from tests.test_train import held_out_light_scores

    cfg = TrainConfig(captures=[str(capture.root)], output=str(tmp_path / "patch"), resolution=32, patch=16,
                      batch=8, lr=2e-3, steps=700, val_every=0, val_samples=2, val_steps=4, checkpoint_every=0,
                      holdout_light_every=8, seed=0)
    trainer = Trainer(cfg)
    trainer.train(progress=False)
    ours, flat_rows, evaluations = held_out_light_scores(trainer, trainer.pipeline(trainer.ema_model()), 1)
    assert evaluations == [len(trainer.split.val_lights) * 9 * 2] * len(trainer.split.train_views)  # 9 tiles, 2 passes
    assert np.mean(ours) > np.mean(flat_rows) + 0.5, (np.mean(ours), np.mean(flat_rows))


def test_position_channels_tell_a_tile_where_it_lies_in_the_frame():
    """A position model's tiled frame is the blend of the network run on each crop with that crop's
    slice of the frame's coordinates (twin: the pipeline's tiles against explicit crops), the same
    coordinates training gives a crop at that corner; the same pixels at another place predict otherwise."""
    pipe = _patch_pipe(position=True)
    model, cfg = pipe.model, pipe.model.config
    assert cfg.in_channels == 2 * 12 + 2
    grid = frame_position(32)
    np.testing.assert_allclose(grid[:, 0, 0].numpy(), [-31 / 32] * 2)
    np.testing.assert_allclose(grid[:, 31, 0].numpy(), [31 / 32, -31 / 32])  # (row, column)
    g = torch.Generator().manual_seed(1)
    x, img = torch.randn(1, 12, 32, 32, generator=g), torch.randn(1, 12, 32, 32, generator=g)
    tokens = model.light_tokens(torch.randn(1, cfg.token_width, generator=g))
    t = torch.tensor([500])
    with torch.no_grad():
        out = pipe._guided(x[..., 8:24, 16:32], t, img[..., 8:24, 16:32], tokens, None, True, 1.0, 1.0,
                           frame_position(32, slice(8, 24), slice(16, 32))[None])
        crop = model(x[..., 8:24, 16:32], t, img[..., 8:24, 16:32], tokens, None,
                     frame_position(32)[None, :, 8:24, 16:32])
        elsewhere = model(x[..., 8:24, 16:32], t, img[..., 8:24, 16:32], tokens, None,
                          frame_position(32)[None, :, 0:16, 0:16])
        frame = tiled(lambda ys, xs: pipe._guided(x[..., ys, xs], t, img[..., ys, xs], tokens, None, True, 1.0, 1.0,
                                                  frame_position(32, ys, xs)[None]), x.shape, 16, 8)
    np.testing.assert_allclose(out.numpy(), crop.numpy(), atol=1e-6)
    assert (elsewhere - crop).abs().max() > 1e-3
    # the middle of the middle tile (rows 8-24, columns 8-24) is that crop's own prediction
    with torch.no_grad():
        middle = model(x[..., 8:24, 8:24], t, img[..., 8:24, 8:24], tokens, None,
                       frame_position(32)[None, :, 8:24, 8:24])
    np.testing.assert_allclose(frame[..., 14:18, 14:18].numpy(), middle[..., 6:10, 6:10].numpy(), atol=1e-6)
    # training: a crop at pixel corner (16, 32) of the 64-px frame has latent corner (8, 16)
    trainer_position = Trainer._crop_position(type("T", (), {"model_config": cfg, "device": "cpu"})(),
                                              np.array([[16, 32]]))
    np.testing.assert_array_equal(trainer_position[0].numpy(), frame_position(32)[:, 8:24, 16:32].numpy())
    with pytest.raises(ValidationError, match="patch-trained"):
        preset("tiny", resolution=64, position=True)


def test_a_position_patch_model_trains_and_its_bundle_keeps_the_channels(capture, tmp_path):
    from core.model.bundle import load_bundle

    trainer = Trainer(TrainConfig(captures=[str(capture.root)], output=str(tmp_path / "run"), resolution=32,
                                  patch=16, position=True, batch=2, steps=2, val_every=0, val_samples=1, val_steps=2,
                                  checkpoint_every=0, holdout_light_every=8))
    trainer.train(progress=False)
    pipe, info = load_bundle(trainer.save())
    assert info.config.position and pipe.model.unet.config.in_channels == 2 * 12 + 2
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    out = pipe(image, np.array([[0.0, 0.0, 1.0]]), num_inference_steps=1, seed=0)
    assert out.images.shape == (1, 32, 32, 3) and np.isfinite(out.images).all() and out.evaluations == 9 * 2
