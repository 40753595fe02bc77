"""Real (tiny) training on the session's Cycles-rendered capture set."""

import json

import numpy as np
import pytest
import torch

from core.errors import ValidationError
from core.model.bundle import load_bundle
from core.model.train import TrainConfig, Trainer


def _cfg(capture, out, **kw):
    base = dict(captures=[str(capture.root)], output=str(out), resolution=32, batch=4, lr=1e-3, val_every=0,
                val_samples=2, val_steps=4, checkpoint_every=0, holdout_light_every=8, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def _probe_loss(trainer, probe, repeats=8):
    """The loss on a fixed batch with fixed noise and dropout draws (comparable before/after training)."""
    torch.manual_seed(0)
    trainer.rng = np.random.default_rng(5)
    with torch.no_grad():
        return float(np.mean([trainer.loss(probe).item() for _ in range(repeats)]))


def test_training_reduces_the_loss_and_writes_a_bundle(capture, tmp_path):
    trainer = Trainer(_cfg(capture, tmp_path / "run", steps=120))
    rng = np.random.default_rng(99)
    probe = trainer.data.sample(rng, 16, trainer.split.train_views, trainer.split.train_lights, 0.0, 0.2)
    before = _probe_loss(trainer, probe)
    trainer.rng = np.random.default_rng(0)
    trainer.train(progress=False)
    after = _probe_loss(trainer, probe)
    assert after < 0.7 * before, (before, after)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 120 and np.isfinite(metrics[-1]["val_lights_psnr"])
    bundle = trainer.save()
    pipe, info = load_bundle(bundle)
    assert info.subject == capture.manifest.subject and info.training["steps"] == 120
    assert info.layout.names == capture.manifest.layout.names


def test_resume_continues_exactly(capture, tmp_path):
    straight = Trainer(_cfg(capture, tmp_path / "a", steps=12, checkpoint_every=6))
    straight.train(progress=False)
    first = Trainer(_cfg(capture, tmp_path / "b", steps=6, checkpoint_every=6))
    first.train(progress=False)
    resumed = Trainer(_cfg(capture, tmp_path / "b", steps=12, checkpoint_every=6))
    assert resumed.step == 6
    resumed.train(progress=False)
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=k)
    # the exported (EMA) weights too: the EMA's decay warm-up goes on, it does not restart at the resume
    for (k, a), (_, b) in zip(straight.ema_model().state_dict().items(), resumed.ema_model().state_dict().items()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=k)


def test_a_run_stopped_by_max_minutes_checkpoints_there_and_each_session_goes_on(capture, tmp_path):
    """--max-minutes bounds one session, not the run's total: each session stopped on time writes a
    checkpoint where it stops, and the next goes on from there instead of repeating the same steps."""
    steps = []
    for _ in range(3):
        run = Trainer(_cfg(capture, tmp_path / "m", steps=50, checkpoint_every=25, max_minutes=1e-9))
        run.train(progress=False)  # stops after its first step: any step outlasts 6e-8 s
        steps.append(run.step)
    assert steps == [1, 2, 3]


def test_a_run_starts_from_a_bundles_weights_and_its_checkpoints_win_afterwards(capture, tmp_path):
    from core.errors import ValidationError

    first = Trainer(_cfg(capture, tmp_path / "a", steps=4))
    first.train(progress=False)
    bundle = first.save()
    shipped = load_bundle(bundle)[0].model.state_dict()
    warm = Trainer(_cfg(capture, tmp_path / "b", steps=4, checkpoint_every=4, init_from=str(bundle)))
    assert warm.step == 0
    for k, v in shipped.items():  # the bundle's (EMA) weights, in the model and in its EMA
        torch.testing.assert_close(warm.model.state_dict()[k], v, atol=0, rtol=0, msg=k)
    torch.testing.assert_close(warm.ema_model().state_dict()[next(iter(shipped))], next(iter(shipped.values())))
    cold = Trainer(_cfg(capture, tmp_path / "c", steps=4))
    assert any(not torch.equal(cold.model.state_dict()[k], v) for k, v in shipped.items())
    warm.train(progress=False)
    trained = {k: v.clone() for k, v in warm.model.state_dict().items()}
    again = Trainer(_cfg(capture, tmp_path / "b", steps=8, init_from=str(bundle)))  # resumes its checkpoint
    assert again.step == 4
    for k, v in trained.items():
        torch.testing.assert_close(again.model.state_dict()[k], v, msg=k)
    with pytest.raises(ValidationError, match="--init-from .*resolution: bundle 32, run 16"):
        Trainer(_cfg(capture, tmp_path / "d", steps=4, resolution=16, init_from=str(bundle)))
    # the bundle it started from is named in the bundle it makes, across a resume too
    made_info = load_bundle(again.save(tmp_path / "made"))[1]
    made = made_info.training
    # named and counted by the steps behind its weights: its 4 and the 4 of the bundle it started from
    assert made_info.steps_in_all == 8 and made_info.id.endswith("-8") and load_bundle(bundle)[1].id.endswith("-4")
    assert made["started_from"] == {"bundle": str(bundle), "id": load_bundle(bundle)[1].id, "steps": 4,
                                    "steps_in_all": 4,
                                    "commit": load_bundle(bundle)[1].training["commit"],
                                    "people_seen": [capture.manifest.subject],
                                    "held_out": load_bundle(bundle)[1].training["held_out"],
                                    "views_seen": load_bundle(bundle)[1].training["views_seen"]}
    assert made["identities"] == made["people_seen"] == [capture.manifest.subject]


def test_a_run_that_holds_out_a_person_its_starting_bundle_trained_on_is_refused(capture, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(capture.root, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["subject"] = "person-0099"
    (other / "manifest.json").write_text(json.dumps(manifest))
    both = [str(capture.root), str(other)]
    first = Trainer(_cfg(capture, tmp_path / "a", steps=1, captures=both, holdout_identities=["person-0099"]))
    first.train(progress=False)
    bundle = first.save()
    assert load_bundle(bundle)[1].training["identities"] == sorted([capture.manifest.subject, "person-0099"])
    leak = rf"trained on \['{capture.manifest.subject}'\], which this run holds out"
    with pytest.raises(ValidationError, match=leak):
        Trainer(_cfg(capture, tmp_path / "b", steps=1, captures=both, init_from=str(bundle),
                     holdout_identities=[capture.manifest.subject]))
    held = Trainer(_cfg(capture, tmp_path / "c", steps=1, captures=both, init_from=str(bundle),
                        holdout_identities=["person-0099"]))  # the same person held out: no leak
    assert held.started_from["id"] == load_bundle(bundle)[1].id
    # a chain: a bundle trained on person-0099 alone, started from the first, has seen both people
    second = Trainer(_cfg(capture, tmp_path / "d", steps=1, captures=[str(other)], init_from=str(bundle)))
    second.train(progress=False)
    chained = second.save()
    assert load_bundle(chained)[1].training["people_seen"] == sorted([capture.manifest.subject, "person-0099"])
    third = Trainer(_cfg(capture, tmp_path / "g", steps=1, captures=[str(other)], init_from=str(chained)))
    third.train(progress=False)
    assert load_bundle(third.save())[1].steps_in_all == 3  # a step each along the chain
    with pytest.raises(ValidationError, match=leak):
        Trainer(_cfg(capture, tmp_path / "e", steps=1, captures=both, init_from=str(chained),
                     holdout_identities=[capture.manifest.subject]))
    # a capture folder of the same name holding another person is other data: its run does not resume on it
    renamed = tmp_path / "elsewhere" / capture.root.name
    shutil.copytree(other, renamed)
    Trainer(_cfg(capture, tmp_path / "f", steps=2, checkpoint_every=2)).train(progress=False)
    with pytest.raises(ValidationError, match="trained on .* views of 1 subject.*captures given hold"):
        Trainer(_cfg(capture, tmp_path / "f", steps=4, captures=[str(renamed)]))


def test_a_run_that_holds_out_lights_or_expressions_its_starting_bundle_trained_on_is_refused(capture, tmp_path):
    """Of the people both trained on, a run started from a bundle may hold out only what that bundle held
    out (its validation would score views and lights the weights have seen); a chain keeps what none saw."""
    import shutil

    two = tmp_path / "two"  # the capture with its second frame named another expression
    shutil.copytree(capture.root, two)
    manifest = json.loads((two / "manifest.json").read_text())
    manifest["frames"][1]["expression"] = "jaw_open"
    (two / "manifest.json").write_text(json.dumps(manifest))

    def cfg(out, **kw):
        return _cfg(capture, out, captures=[str(two)], **kw)

    first = Trainer(cfg(tmp_path / "a", steps=1))  # every 8th light held out, from the 4th
    first.train(progress=False)
    bundle = first.save()
    info = load_bundle(bundle)[1]
    lights = [info.layout.names[i] for i in range(4, len(info.layout), 8)]
    assert info.training["held_out"] == {"cameras": [], "expressions": [], "lights": lights}
    seen = info.layout.names[2]  # every 4th light from the 2nd: the bundle trained on it
    with pytest.raises(ValidationError, match=rf"under lights \['{seen}'.*which this run holds out"):
        Trainer(cfg(tmp_path / "b", steps=1, init_from=str(bundle), holdout_light_every=4))
    expression = first.data.views[0].expression
    with pytest.raises(ValidationError, match=rf"under expressions \['{expression}'\]"):
        Trainer(cfg(tmp_path / "c", steps=1, init_from=str(bundle), holdout_expressions=[expression]))
    # the same lights held out: no leak; the chain records what neither of them saw
    same = Trainer(cfg(tmp_path / "d", steps=1, init_from=str(bundle), holdout_lights=lights[:2]))
    same.train(progress=False)
    assert load_bundle(same.save())[1].training["held_out"]["lights"] == lights[:2]
    # a bundle from before this was recorded: what it held out is read from its training config
    record = json.loads((bundle / "relit.json").read_text())
    del record["training"]["held_out"]
    (bundle / "relit.json").write_text(json.dumps(record))
    with pytest.raises(ValidationError, match=rf"under lights \['{seen}'"):
        Trainer(cfg(tmp_path / "e", steps=1, init_from=str(bundle), holdout_light_every=4))
    # another person's bundle saw nothing of this one: anything may be held out
    record["subject"], record["training"]["people_seen"] = "person-0099", ["person-0099"]
    (bundle / "relit.json").write_text(json.dumps(record))
    assert Trainer(cfg(tmp_path / "f", steps=1, init_from=str(bundle), holdout_light_every=4,
                       holdout_expressions=[expression])).started_from["held_out"] is None


def test_a_run_resumes_only_with_the_objective_it_was_trained_with(capture, tmp_path):
    import pytest

    from core.errors import ValidationError

    Trainer(_cfg(capture, tmp_path / "run", steps=2, checkpoint_every=2, objective="flow")).train(progress=False)
    with pytest.raises(ValidationError, match="resume it with --objective flow"):
        Trainer(_cfg(capture, tmp_path / "run", steps=4, objective="refine"))
    assert Trainer(_cfg(capture, tmp_path / "run", steps=4, objective="flow")).step == 2
    Trainer(_cfg(capture, tmp_path / "rel", steps=2, checkpoint_every=2, objective="regression",
                 relative=True)).train(progress=False)
    with pytest.raises(ValidationError, match="started with --relative"):
        Trainer(_cfg(capture, tmp_path / "rel", steps=4, objective="regression"))


def test_a_resume_refuses_what_changes_the_run_and_allows_what_only_extends_or_moves_it(capture, tmp_path):
    """Every setting that decides what a run learns must match its checkpoint (seed, batch, hold-outs, ...);
    a constant-rate run may be extended and its captures moved; a cosine run may not change its length.
    A mistyped held-out camera, which would hold out nothing, is refused before anything trains."""
    run = tmp_path / "run"
    Trainer(_cfg(capture, run, steps=2, checkpoint_every=2)).train(progress=False)
    for change, match in ((dict(seed=1), "seed 0, not 1"), (dict(batch=2), "batch 4, not 2"),
                          (dict(holdout_light_every=4), "holdout_light_every 8, not 4"),
                          (dict(lr=2e-3), "lr 0.001, not 0.002")):
        with pytest.raises(ValidationError, match=match):
            Trainer(_cfg(capture, run, steps=4, **change))
    moved = tmp_path / "disk2" / capture.root.name
    moved.parent.mkdir()
    moved.symlink_to(capture.root, target_is_directory=True)
    resumed = Trainer(_cfg(capture, run, steps=4, val_every=1))
    assert resumed.step == 2
    trained = json.loads((run / "checkpoints" / "step_0000002" / "state.json").read_text())["config"]
    resumed.cfg.captures = [str(moved)]
    resumed._check_resumable(trained)  # the same capture on another disk
    with pytest.raises(ValidationError, match="captures"):
        resumed._check_resumable({**trained, "captures": [str(tmp_path / "other")]})

    with pytest.raises(ValidationError, match="lr_schedule 'constant', not 'cosine'"):  # the cause, not the length
        Trainer(_cfg(capture, run, steps=4, lr_schedule="cosine"))
    assert Trainer(_cfg(capture, run, steps=4, environments=["forest"])).step == 2  # an olat run reads no HDRIs
    Trainer(_cfg(capture, tmp_path / "cos", steps=2, checkpoint_every=2, lr_schedule="cosine")).train(progress=False)
    with pytest.raises(ValidationError, match="steps 2, not 4 .the cosine schedule"):
        Trainer(_cfg(capture, tmp_path / "cos", steps=4, lr_schedule="cosine"))
    # a checkpoint from before several captures (its config names one "capture") resumes
    state = run / "checkpoints" / "step_0000002" / "state.json"
    record = json.loads(state.read_text())
    config = record["config"]
    state.write_text(json.dumps({**record, "config": {**{k: v for k, v in config.items() if k != "captures"},
                                                      "capture": config["captures"][0]}}))
    assert Trainer(_cfg(capture, run, steps=4)).step == 2
    state.write_text(json.dumps({k: v for k, v in record.items() if k not in ("config", "data")}))
    with pytest.raises(ValidationError, match="'diffusion' objective"):  # the oldest runs: a clear refusal
        Trainer(_cfg(capture, run, steps=4))
    with pytest.raises(ValidationError, match=r"--holdout-cameras \['cam99'\]: not among"):
        Trainer(_cfg(capture, tmp_path / "typo", steps=2, holdout_cameras=["cam99"]))


def test_envmap_training_on_portraits_under_any_light_beats_input_x_constant(capture, tmp_path):
    """SynthLight pairs: the input is the view under a random lighting (HDRI, lamps, flat-lit, mixed),
    the target the view under another environment. A tiny model learns them: the loss on a fixed
    probe falls and, on pairs drawn afresh (new lightings), it beats the input times its best constant.
    (The deterministic objective: the stochastic ones share the tiny network with conditioning dropout
    and need more steps than a test affords.)"""
    trainer = Trainer(_cfg(capture, tmp_path / "env", steps=400, conditioning="envmap", val_samples=16, lr=2e-3,
                           objective="regression", environments=["forest", "sunset", "studio"]))
    assert trainer.model.unet.config.in_channels == 36
    probe = trainer.data.sample_portrait(np.random.default_rng(3), 8, trainer.split.train_views, trainer.environments)
    assert probe["environment"].shape == (8, 32, 32, 3) and probe["environment"].min() >= -1
    assert min(np.abs(p - trainer.data.flat).mean() for p in probe["flat"]) > 0  # lit otherwise than flat-lit
    before = _probe_loss(trainer, probe, repeats=6)
    trainer.rng = np.random.default_rng(0)
    metrics = trainer.train(progress=False)
    assert _probe_loss(trainer, probe, repeats=6) < 0.8 * before
    assert metrics["train_views_env_psnr"] > metrics["train_views_input_x_constant_psnr"] + 1.0


def test_portrait_exposure_puts_both_sides_of_a_pair_at_the_tone_curves_scale(capture, tmp_path):
    """Both images of a portrait pair are lit by unit mean radiance: one exposure for both, putting the
    99th percentile of subject pixels under the training lightings at 1 (the OLAT exposure would put
    the target's far above the curve's white)."""
    trainer = Trainer(_cfg(capture, tmp_path / "expo", steps=1, conditioning="envmap", objective="regression",
                           relative=True, environments=["forest", "studio"]))
    pipe = trainer.pipe
    assert pipe.exposure_image == pipe.exposure_target
    batch = trainer.data.sample_portrait(np.random.default_rng(11), 64, trainer.split.train_views,
                                         trainer.environments)
    mask = batch["alpha"] > 0.5
    for key in ("flat", "target"):
        p99 = np.percentile(batch[key][mask], 99) * pipe.exposure_target
        assert 0.7 < p99 < 1.4, (key, p99)  # an independent draw of lightings lands near 1
    assert trainer.objective.relative and trainer.objective.params() == {"name": "regression", "relative": True}


def test_portrait_pairs_are_the_olats_under_the_drawn_lightings(capture, tmp_path):
    from core.lighting.random_lighting import LightingMix, lamp_map

    trainer = Trainer(_cfg(capture, tmp_path / "pairs", steps=1, conditioning="envmap", environments=["forest"]))
    data = trainer.data
    flat_only = LightingMix(hdri=0.0, lamps=0.0, flat=1.0, mixed=0.0)
    batch = data.sample_portrait(np.random.default_rng(0), 4, trainer.split.train_views, trainer.environments,
                                 flat_only)
    # a uniform white environment of unit radiance, as source and as target, is the flat-lit view
    views = [int(np.argmin([np.abs(data.alpha[v] - a).sum() for v in range(len(data.views))])) for a in batch["alpha"]]
    for b, v in enumerate(views):
        mask = data.alpha[v] > 0.5
        for key in ("flat", "target"):
            err = np.abs(batch[key][b] - data.flat[v])[mask].mean() / data.flat[v][mask].mean()
            assert err < 0.02, (key, err)  # the stage's OLATs add up to the flat-lit within noise
        np.testing.assert_allclose(batch["environment"][b], batch["environment"][b].flat[0], atol=1e-6)  # uniform
    # a lamp at the camera's left lights the left half of the image: world and camera frames agree
    c2w = data.views[0].c2w
    mask = data.alpha[0] > 0.5
    half = mask.shape[1] // 2
    for side in (-1.0, 1.0):
        d = c2w[:3, :3] @ np.array([side, 0.0, 0.4])
        img = data.compose(0, lamp_map(32, d / np.linalg.norm(d), np.radians(10), np.ones(3)))
        lum = img.mean(axis=-1)
        left, right = lum[:, :half][mask[:, :half]].mean(), lum[:, half:][mask[:, half:]].mean()
        assert (left / right if side < 0 else right / left) > 1.5


def test_a_delighter_is_trained_to_the_flat_lit_from_any_lighting(capture, tmp_path):
    """target_lighting "flat" (the two-stage design's first stage): every target is the view flat-lit,
    every environment the uniform white, while the inputs are lit otherwise; validation still finds
    distinct pairs (it draws the source again when the target cannot change)."""
    trainer = Trainer(_cfg(capture, tmp_path / "delight", steps=2, conditioning="envmap", environments=["forest"],
                           target_lighting="flat", val_samples=4, val_every=2))
    data = trainer.data
    batch = trainer.sample(np.random.default_rng(0), trainer.split.train_views)
    views = [int(np.argmin([np.abs(data.alpha[v] - a).sum() for v in range(len(data.views))])) for a in batch["alpha"]]
    for b, v in enumerate(views):
        mask = data.alpha[v] > 0.5
        err = np.abs(batch["target"][b] - data.flat[v])[mask].mean() / data.flat[v][mask].mean()
        assert err < 0.02, err  # the flat-lit within the stage's noise
        np.testing.assert_allclose(batch["environment"][b], batch["environment"][0], atol=1e-6)
    assert max(np.abs(batch["flat"][b] - batch["target"][b]).max() for b in range(len(views))) > 0.05
    metrics = trainer.train(progress=False)
    assert np.isfinite(next(v for k, v in metrics.items() if k.endswith("_env_psnr")))
    with pytest.raises(ValidationError, match="target_lighting"):
        _cfg(capture, tmp_path / "x", target_lighting="sunset")


def test_scored_pairs_never_relight_to_the_source_lighting(capture, tmp_path):
    """A pair whose target lighting is its source's makes the input times a constant exact (PSNR ~200
    dB): validation and the benchmarks draw distinct pairs; training may keep such pairs."""
    from core.errors import ValidationError
    from core.lighting.random_lighting import LightingMix

    trainer = Trainer(_cfg(capture, tmp_path / "distinct", steps=1, conditioning="envmap", environments=["forest"]))
    data, views = trainer.data, trainer.split.train_views
    mostly_flat = LightingMix(hdri=0.1, lamps=0.0, flat=0.9, mixed=0.0)

    def same(distinct: bool) -> int:
        rng = np.random.default_rng(0)
        pairs = [data.portrait_lightings(rng, views[0], trainer.environments, mostly_flat, distinct=distinct)
                 for _ in range(40)]
        return sum(np.array_equal(a, b) for a, b in pairs)

    assert same(False) > 10 and same(True) == 0  # ~0.8 of the pairs repeat the lighting unless distinct
    batch = data.sample_portrait(np.random.default_rng(1), 6, views, trainer.environments, mostly_flat,
                                 distinct=True)
    assert all(np.abs(batch["flat"][b] - batch["target"][b]).max() > 0 for b in range(6))
    flat_only = LightingMix(hdri=0.0, lamps=0.0, flat=1.0, mixed=0.0)
    with pytest.raises(ValidationError, match="draws a single lighting"):
        data.portrait_lightings(np.random.default_rng(0), views[0], trainer.environments, flat_only, distinct=True)


def test_multitask_mixes_unconditional_real_images(capture, tmp_path):
    import OpenImageIO as oiio
    from skimage import data as skdata

    photo = tmp_path / "astronaut.png"
    buf = oiio.ImageBuf(oiio.ImageSpec(512, 512, 3, "uint8"))
    buf.set_pixels(oiio.ROI(), skdata.astronaut())
    buf.write(str(photo))
    trainer = Trainer(_cfg(capture, tmp_path / "mt", steps=3, multitask_ratio=0.5, multitask_images=[str(photo)]))
    assert trainer.cfg.multitask_task == "generate"  # the olat conditioning's own real-image task
    batch = trainer.sample(np.random.default_rng(1), trainer.split.train_views)
    real = batch["drop_image"]
    assert 0 < real.sum() < len(real) and np.array_equal(real, batch["drop_light"])
    i = int(np.flatnonzero(real)[0])
    np.testing.assert_allclose(batch["target"][i] * trainer.pipe.exposure_target, trainer.real_images.frames[0],
                               rtol=1e-5)
    trainer.train(progress=False)
    # the keep task on an olat model, whose input and target exposures differ: the target still
    # encodes to the input's own latent
    keep = Trainer(_cfg(capture, tmp_path / "keep", steps=1, multitask_ratio=1.0, multitask_images=[str(photo)],
                        multitask_task="keep"))
    pipe = keep.pipe
    assert abs(pipe.exposure_image / pipe.exposure_target - 1) > 0.01
    batch = keep.sample(np.random.default_rng(1), keep.split.train_views)
    assert batch["drop_light"].all() and not batch["drop_image"].any()
    np.testing.assert_allclose(pipe._to_latent(torch.from_numpy(batch["flat"]), pipe.exposure_image),
                               pipe._to_latent(torch.from_numpy(batch["target"]), pipe.exposure_target), atol=1e-5)


def test_the_portrait_real_image_task_gives_a_face_framed_photo_back_when_no_light_is_given(capture, tmp_path):
    """envmap's real-image task (keep): a photo, framed by its face as a portrait bundle frames plates and
    moved, mirrored and exposed anew at each draw, is both input and target with the light dropped; a
    tiny model learns it (the loss on a fixed probe of such samples falls)."""
    from core.io.framing import face_framing, to_model
    from core.io.plates import fit_square
    from core.portrait.photos import write_photo

    photo = write_photo("astronaut", tmp_path / "astronaut.png")
    trainer = Trainer(_cfg(capture, tmp_path / "keep", steps=150, conditioning="envmap", objective="regression",
                           lr=2e-3, environments=["forest"], multitask_ratio=1.0, multitask_images=[str(photo)]))
    assert trainer.cfg.multitask_task == "keep"
    probe = trainer.sample(np.random.default_rng(3), trainer.split.train_views)
    assert probe["drop_light"].all() and not probe["drop_image"].any()
    pipe = trainer.pipe
    np.testing.assert_allclose(pipe._to_latent(torch.from_numpy(probe["flat"]), pipe.exposure_image),
                               pipe._to_latent(torch.from_numpy(probe["target"]), pipe.exposure_target), atol=1e-5)
    framed = trainer.real_images.framed[0]
    centre = to_model(framed.plate, face_framing(framed.face, *framed.plate.shape[:2], 32))
    views = probe["flat"]
    assert all(np.abs(v - centre).mean() > 0 for v in views)  # every draw moved, mirrored or exposed anew

    # ... but each stays near the face's own framing (mirrored back or not, its exposure fitted): nearer
    # than the photo's whole frame, as a subject-specific model's real images are taken
    def err(view):
        return min(np.abs(w * (w * centre).sum() / (w * w).sum() - centre).mean() for w in (view, view[:, ::-1]))

    whole = fit_square(framed.plate, np.ones(framed.plate.shape[:2], np.float32), 32)[0]
    assert max(map(err, views)) < err(whole)
    before = _probe_loss(trainer, probe, repeats=2)
    trainer.rng = np.random.default_rng(0)
    trainer.train(progress=False)
    assert _probe_loss(trainer, probe, repeats=2) < 0.5 * before


def test_two_process_data_parallel_equals_one_process_over_the_global_batch(capture, tmp_path):
    """torchrun with 2 CPU processes (gloo) takes the same steps as one process over the same batch."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    from tests.conftest import PYTHONPATH, ROOT

    # the DDPM objective: refine's residual term (weighted 0.01) leaves many weights with a near-zero gradient,
    # where AdamW amplifies the all-reduce's float rounding past this test's 1 % bound (the mechanism under
    # test, equal shares and averaged gradients, does not depend on the objective)
    args = ["train", str(capture.root), "--res", "32", "--batch", "4", "--steps", "3", "--checkpoint-every", "3",
            "--val-every", "0", "--holdout-light-every", "8", "--objective", "diffusion", "--quiet"]
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "core.cli", *args, "-o", str(tmp_path / "one")], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "core.cli", *args, "-o", str(tmp_path / "two")], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(tmp_path / "one" / "checkpoints" / "step_0000003" / "model.safetensors")
    b = load_file(tmp_path / "two" / "checkpoints" / "step_0000003" / "model.safetensors")
    assert a.keys() == b.keys()
    init = Trainer(_cfg(capture, tmp_path / "init", steps=0, objective="diffusion")).model.state_dict()
    diff = torch.cat([(a[k] - b[k]).flatten() for k in a])
    update = torch.cat([(a[k] - init[k].cpu()).flatten() for k in a])
    # AdamW divides by the gradient's running magnitude, so float rounding in the all-reduce (sum of
    # two halves vs one sum) is amplified on the few weights whose gradient is ~0; elsewhere the
    # runs agree to rounding. Without the all-reduce (each rank on its half) every weight moves apart.
    assert float(update.norm()) > 0.1
    assert float(diff.norm() / update.norm()) < 0.01
    assert float((diff.abs() < 1e-5).float().mean()) > 0.99
    assert (tmp_path / "two" / "bundle" / "relit.json").exists()  # written once, by rank 0


def test_training_frames_each_view_as_relit_relight_frames_a_plate(capture):
    """The model must see the subject at the same scale in training and at inference: a capture view
    prepared for relighting is exactly the training image (a crop around the matte, resized)."""
    from core.model.data import TrainingData
    from core.relight.frame import prepare_plate

    data = TrainingData(capture, 16)
    cam, frame = capture.manifest.cameras[0], capture.manifest.frames[1].frame
    view = [i for i, v in enumerate(data.views) if (v.camera, v.frame) == (cam.name, frame)][0]
    plate = capture.flat(cam.name, frame)
    prepared = prepare_plate(plate.rgb, plate.alpha, 16)
    assert not prepared.framing.identity  # framed around the matte, not the plate taken whole
    np.testing.assert_allclose(data.flat[view], prepared.model_input, rtol=1e-6, atol=1e-7)
    olats, alpha = capture.olats(cam.name, frame)
    from core.io.framing import to_model

    unit = olats[3] / capture.manifest.irradiance[3]
    np.testing.assert_allclose(data.olat[view, 3].astype(np.float32), to_model(unit, prepared.framing),
                               rtol=2e-3, atol=1e-4)  # stored as float16


def held_out_light_scores(trainer, pipe, steps):
    """(model PSNRs, flat-lit x best constant PSNRs, UNet evaluations per view) on the held-out lights
    of every training view, each view's noise drawn from its index."""
    from core.model.metrics import best_scale, psnr

    data, split = trainer.data, trainer.split
    ours, flat_rows, evaluations = [], [], []
    for v in split.train_views:
        mask = data.alpha[v] > 0.5
        lights = split.val_lights
        out = pipe(data.flat[v], data.camera_directions(v)[lights], np.zeros(len(lights)), num_inference_steps=steps,
                   seed=v)
        assert out.images.shape[1:3] == data.flat[v].shape[:2]
        evaluations.append(out.evaluations)
        for p, i in zip(out.images, lights):
            truth = data.olat[v, i].astype(np.float32)
            ours.append(psnr(p, truth, mask))
            flat_rows.append(psnr(data.flat[v] * best_scale(data.flat[v], truth, mask), truth, mask))
    return ours, flat_rows, evaluations


def test_a_tiny_refine_model_trained_for_real_beats_the_flat_lit_baseline_and_sums_to_its_input(capture, tmp_path):
    from core.model.consistency import consistency_gain

    trainer = Trainer(_cfg(capture, tmp_path / "refine", steps=700, objective="refine", lr=2e-3))
    trainer.train(progress=False)
    pipe = trainer.pipeline(trainer.ema_model())
    data, split = trainer.data, trainer.split
    ours, flat_rows, _ = held_out_light_scores(trainer, pipe, 4)
    assert np.mean(ours) > np.mean(flat_rows) + 0.5, (np.mean(ours), np.mean(flat_rows))
    # its stage predictions add up to the input within a bounded error before any correction
    v = split.train_views[0]
    stage = pipe(data.flat[v], data.camera_directions(v), np.zeros(len(data.layout)), num_inference_steps=4).images
    gain = consistency_gain(stage, data.irradiance, data.flat[v])[data.alpha[v] > 0.5]
    assert np.median(np.abs(gain - 1)) < 0.3, np.median(np.abs(gain - 1))


def test_named_lights_are_held_out_and_scored(capture, tmp_path):
    from core.errors import ValidationError

    names = capture.manifest.layout.names
    trainer = Trainer(_cfg(capture, tmp_path / "named", steps=2, holdout_lights=[names[3], "5"], val_samples=2))
    assert trainer.split.val_lights.tolist() == [3, 5]
    assert 3 not in trainer.split.train_lights and 5 not in trainer.split.train_lights
    metrics = trainer.train(progress=False)
    assert metrics["val_light_names"] == [names[3], names[5]] and np.isfinite(metrics["val_lights_psnr"])
    with pytest.raises(ValidationError, match="--holdout-lights 'L999'"):
        Trainer(_cfg(capture, tmp_path / "bad", steps=1, holdout_lights=["L999"]))


def test_the_bundle_licence_follows_the_captures_manifests():
    from core.model.train import bundle_licence

    synthetic = bundle_licence([{"generator": "relit synth"}], ["face-0001"], None)
    assert "synthetic renders" in synthetic and "no third-party base weights" in synthetic
    real = bundle_licence([{"licence": "CC-BY-4.0, Studio X"}, {}], ["actor-a", "actor-b"], "/ckpt/sd15")
    assert "actor-a, actor-b" in real and "CC-BY-4.0, Studio X" in real and "synthetic" not in real
    assert "base checkpoint" in real
    unstated = bundle_licence([{}], ["actor-a"], None)
    assert "not stated in their manifest(s)" in unstated


def _rates(trainer) -> list[float]:
    """Train, recording the learning rate each optimiser step is taken with."""
    seen, step = [], trainer.optimizer.step

    def record(*a, **kw):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        return step(*a, **kw)

    trainer.optimizer.step = record
    trainer.train(progress=False)
    return seen


def test_the_cosine_schedule_sets_each_steps_rate_and_a_resumed_run_takes_the_same(capture, tmp_path):
    import math
    import shutil

    from core.model.lr_schedules import LR_FLOOR

    steps, cfg = 4, dict(steps=4, lr=2e-3, lr_schedule="cosine", checkpoint_every=2)
    seen = _rates(Trainer(_cfg(capture, tmp_path / "c", **cfg)))
    expected = [2e-3 * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * s / steps))) for s in range(steps)]
    assert seen == pytest.approx(expected, rel=1e-12)
    shutil.rmtree(tmp_path / "c" / "checkpoints" / "step_0000004")
    resumed = Trainer(_cfg(capture, tmp_path / "c", **cfg))
    assert resumed.step == 2
    assert _rates(resumed) == pytest.approx(expected[2:], rel=1e-12)


def test_subject_saturation_gives_both_sides_of_a_pair_one_more_saturated_subject(capture, tmp_path):
    """The augmentation multiplies input and target by one colour gain per pair (a more saturated albedo,
    exact for diffuse reflection), drawn after the lightings: the pairs are otherwise the same draw.
    The gain is the subject's flat-lit colour over its grey raised to the strength (in logs: the
    colour's log-chroma times it), at unit luminance, so it saturates the subject along its own hue."""
    from core.io.colour import LUMINANCE

    trainer = Trainer(_cfg(capture, tmp_path / "sat", steps=1, conditioning="envmap", environments=["forest"]))
    data, views = trainer.data, trainer.split.train_views
    plain = data.sample_portrait(np.random.default_rng(5), 4, views, trainer.environments)
    vivid = data.sample_portrait(np.random.default_rng(5), 4, views, trainer.environments, saturation=2.0)
    np.testing.assert_array_equal(plain["environment"], vivid["environment"])
    for b in range(4):
        mask = plain["alpha"][b] > 0.5
        gain = vivid["flat"][b][mask].sum(0) / plain["flat"][b][mask].sum(0)
        np.testing.assert_allclose(vivid["target"][b][mask].sum(0) / plain["target"][b][mask].sum(0), gain, rtol=1e-4)
        np.testing.assert_allclose(vivid["flat"][b], plain["flat"][b] * gain, rtol=1e-4, atol=1e-7)
        assert float(gain @ LUMINANCE) == pytest.approx(1.0, abs=1e-4)
    v = views[0]
    colour = data.flat[v][data.alpha[v] > 0.5].mean(0).astype(np.float64)
    for strength in (0.5, 2.0):
        gain = data.subject_gain(v, strength)
        np.testing.assert_allclose(np.log(gain) - np.log(gain).mean(),
                                   strength * (np.log(colour) - np.log(colour).mean()), atol=1e-5)
        vivid_colour = colour * gain
        assert np.ptp(vivid_colour) / vivid_colour.mean() > np.ptp(colour) / colour.mean()
    np.testing.assert_allclose(data.subject_gain(v, 0.0), 1.0, atol=1e-6)
    with pytest.raises(ValidationError, match="subject_saturation"):
        _cfg(capture, tmp_path / "x", subject_saturation=1.0)  # an olat model has no pairs to saturate


def test_a_shifted_sample_is_its_images_translated_with_its_light_unchanged(capture, tmp_path):
    """--shift moves each sample's images by its own draw (a moved principal point: the light's camera-frame
    direction is the same), zero-filled; checked against translation by padding and slicing, per sample."""
    from core.model.data import shifted

    rng = np.random.default_rng(3)
    batch = {"flat": rng.random((5, 12, 10, 3)), "target": rng.random((5, 12, 10, 3)), "alpha": rng.random((5, 12, 10)),
             "direction": rng.normal(size=(5, 3)), "beta": rng.random(5)}
    out = shifted(np.random.default_rng(7), batch, 3)
    draws = np.random.default_rng(7).integers(-3, 4, size=(5, 2))
    assert (np.abs(draws) > 0).any()
    for b, (dy, dx) in enumerate(draws):
        for k in ("flat", "target", "alpha"):
            img = batch[k][b]
            pad = [(3, 3), (3, 3)] + [(0, 0)] * (img.ndim - 2)
            expected = np.pad(img, pad)[3 - dy:3 - dy + 12, 3 - dx:3 - dx + 10]
            np.testing.assert_array_equal(out[k][b], expected)
    np.testing.assert_array_equal(out["direction"], batch["direction"])
    np.testing.assert_array_equal(out["beta"], batch["beta"])
    np.testing.assert_array_equal(shifted(rng, batch, 0)["flat"], batch["flat"])
    # a run's batch is its unshifted draw, then shifted with the same generator
    trainer = Trainer(_cfg(capture, tmp_path / "run", steps=2, checkpoint_every=2, shift=2))
    views = trainer.split.train_views
    drawn = trainer.sample(np.random.default_rng(11), views)
    trainer.cfg.shift, plain = 0, np.random.default_rng(11)
    expected = shifted(plain, trainer.sample(plain, views), 2)
    for k in ("flat", "target", "alpha"):
        np.testing.assert_array_equal(drawn[k], expected[k])
    assert not np.array_equal(drawn["flat"], trainer.sample(np.random.default_rng(11), views)["flat"])
    # it trains with it, records it, and resumes only with it
    trainer.cfg.shift = 2
    trainer.train(progress=False)
    with pytest.raises(ValidationError, match="shift 2, not 0"):
        Trainer(_cfg(capture, tmp_path / "run", steps=4))
    for bad, match in ((dict(shift=-1), "give 0 or more"), (dict(shift=2, conditioning="envmap"), "stage-lit"),
                       (dict(shift=2, patch=16), "random crops")):
        with pytest.raises(ValidationError, match=match):
            _cfg(capture, tmp_path / "x", **bad)


def _with_camera_renamed(capture, out, old: str, new: str):
    """A copy of ``capture`` whose camera ``old`` is named ``new`` (folders and manifest): the same person
    filmed by a camera of another name, as a second capture set of new viewpoints would be."""
    import shutil

    shutil.copytree(capture.root, out)
    for folder in sorted(out.rglob(old), key=lambda p: -len(p.parts)):
        folder.rename(folder.with_name(new))
    manifest = json.loads((out / "manifest.json").read_text())
    for cam in manifest["cameras"]:
        cam["name"] = new if cam["name"] == old else cam["name"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_a_run_may_hold_out_a_camera_its_starting_bundle_never_trained_on(capture, tmp_path):
    """A second capture set of the same person (new cameras) trains beside the first; a run started from a
    bundle of the first set may hold out a new camera (its weights never saw it), not one the bundle trained on."""
    import shutil

    from core.model.data import TrainingData

    camera = capture.manifest.cameras[0].name
    more = _with_camera_renamed(capture, tmp_path / "more", camera, "cam08")
    again = tmp_path / "again"  # the same cameras under the same names: refused, the views would count twice
    shutil.copytree(capture.root, again)
    with pytest.raises(ValidationError, match=rf"camera {camera} frame .* more than one of the capture sets"):
        TrainingData([capture, type(capture)(again)], 32)
    first = Trainer(_cfg(capture, tmp_path / "a", steps=1))
    first.train(progress=False)
    bundle = first.save()
    assert load_bundle(bundle)[1].training["views_seen"]["cameras"] == [camera]
    both = [str(capture.root), str(more)]
    with pytest.raises(ValidationError, match=rf"under cameras \['{camera}'\]"):
        Trainer(_cfg(capture, tmp_path / "b", steps=1, captures=both, init_from=str(bundle),
                     holdout_cameras=[camera]))
    run = Trainer(_cfg(capture, tmp_path / "c", steps=1, captures=both, init_from=str(bundle),
                       holdout_cameras=["cam08"]))
    assert [run.data.views[i].camera for i in run.split.val_views] == ["cam08", "cam08"]  # its two frames
    run.train(progress=False)
    made = load_bundle(run.save())[1].training
    assert made["held_out"]["cameras"] == ["cam08"] and made["views_seen"]["cameras"] == [camera]
    # a bundle from before views were recorded: any camera it did not hold out may have trained it
    record = json.loads((bundle / "relit.json").read_text())
    del record["training"]["views_seen"]
    (bundle / "relit.json").write_text(json.dumps(record))
    with pytest.raises(ValidationError, match=r"under cameras \['cam08'\]"):
        Trainer(_cfg(capture, tmp_path / "d", steps=1, captures=both, init_from=str(bundle),
                     holdout_cameras=["cam08"]))


def test_steps_in_all_follows_the_chain_as_recorded():
    from core.model.bundle import steps_in_all

    assert steps_in_all({"steps": 3}) == 3
    assert steps_in_all({"steps": 3, "started_from": None}) == 3
    # a bundle started from one that was itself started from another records the chain's count
    assert steps_in_all({"steps": 3, "started_from": {"steps": 5, "steps_in_all": 12}}) == 15
    # recorded before the chain's count was: the starting bundle's own steps
    assert steps_in_all({"steps": 3, "started_from": {"steps": 5}}) == 8
    assert steps_in_all({"steps": 3, "started_from": {"steps": None}}) == 3
