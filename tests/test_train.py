"""Real (tiny) training on the session's Cycles-rendered capture set."""

import json

import numpy as np
import torch

from core.model.bundle import load_bundle
from core.model.train import TrainConfig, Trainer


def _cfg(capture, out, **kw):
    base = dict(capture=str(capture.root), output=str(out), resolution=32, batch=4, lr=1e-3, val_every=0,
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


def test_envmap_training_learns(capture, tmp_path):
    trainer = Trainer(_cfg(capture, tmp_path / "env", steps=80, conditioning="envmap",
                           environments=["forest", "sunset", "studio"]))
    assert trainer.model.unet.config.in_channels == 36
    probe = trainer.data.sample_environment(np.random.default_rng(3), 8, trainer.split.train_views,
                                            trainer.environments)
    assert probe["environment"].shape == (8, 32, 32, 3) and probe["environment"].min() >= -1
    before = _probe_loss(trainer, probe, repeats=6)
    trainer.rng = np.random.default_rng(0)
    metrics = trainer.train(progress=False)
    assert _probe_loss(trainer, probe, repeats=6) < 0.8 * before
    assert np.isfinite(metrics["train_views_env_psnr"])


def test_multitask_mixes_unconditional_real_images(capture, tmp_path):
    import OpenImageIO as oiio
    from skimage import data as skdata

    photo = tmp_path / "astronaut.png"
    buf = oiio.ImageBuf(oiio.ImageSpec(512, 512, 3, "uint8"))
    buf.set_pixels(oiio.ROI(), skdata.astronaut())
    buf.write(str(photo))
    trainer = Trainer(_cfg(capture, tmp_path / "mt", steps=3, multitask_ratio=0.5, multitask_images=[str(photo)]))
    batch = trainer.sample(np.random.default_rng(1), trainer.split.train_views)
    real = batch["unconditional"]
    assert 0 < real.sum() < len(real)
    i = int(np.flatnonzero(real)[0])
    np.testing.assert_allclose(batch["target"][i] * trainer.pipe.exposure_target, trainer.real_images[0], rtol=1e-5)
    trainer.train(progress=False)
