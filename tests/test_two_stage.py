"""The two-stage design as a product path (issue 24): ``relit relight --delight`` makes a plate as
shot flat-lit with the shipped delighter, then the general OLAT bundle relights that with the
strategies every OLAT bundle uses; results stay ratios against the plate as shot."""

from dataclasses import replace

import numpy as np
import pytest

from core.errors import ValidationError
from tests.conftest import example_rig


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    from core.portrait.photos import write_photo

    return write_photo("astronaut", tmp_path_factory.mktemp("photo") / "astronaut.png")


def test_a_delighted_plate_is_what_the_general_olat_bundle_relights(astronaut, tmp_path):
    """The job's layers are the twin computation's: the delighter's flat-lit (one pass under a
    uniform white environment of unit radiance, computed here by hand) relit by the general OLAT
    bundle, carried back as ratios against the plate as shot. Delighting changes the result, the
    headers name the delighter, and the delighter's evaluations are counted."""
    import torch

    from core.io.naming import light_layer_name
    from core.io.passes import read_metadata, read_passes
    from core.jobs import RelightJob
    from core.model.bundle import DELIGHT_BUNDLE, GENERAL_OLAT_BUNDLE, load_bundle
    from core.model.envmap import encode_environment
    from core.relight.frame import RelightSettings, light_keys, plan_lighting, relight_prepared
    from core.relight_job import FrameSource, run_relight

    torch.set_num_threads(1)
    rig = example_rig()
    job = RelightJob(bundle="auto", input=str(astronaut), output=str(tmp_path / "out"), rig=rig, delight="auto",
                     threads=1)
    report = run_relight(job)
    assert report.bundle_choice.startswith(f"bundle {GENERAL_OLAT_BUNDLE.name}:")
    layers, _, alpha = read_passes(report.frames[0].path)
    meta = read_metadata(report.frames[0].path)

    olat, info = load_bundle(GENERAL_OLAT_BUNDLE)
    delighter, dl_info = load_bundle(DELIGHT_BUNDLE)
    assert meta["delighter"] == {"id": dl_info.id, "sha256": dl_info.sha256} and meta["bundle_id"] == info.id
    resolved = replace(job, bundle=str(GENERAL_OLAT_BUNDLE))
    plan = plan_lighting(info, rig, consistency=info.recipe["consistency"])
    (_, _, prepared, noise), = list(FrameSource(resolved, info, olat.latent_shape(), light_keys(plan)))
    m = info.config.resolution
    white, scale = encode_environment(np.ones((m // 2, m, 3), np.float32), m)
    assert scale == pytest.approx(1.0)
    dl_noise = np.random.default_rng([job.seed, 0]).standard_normal((1,) + delighter.latent_shape()).astype(np.float32)
    flat = delighter(prepared.model_input, environment=white[None], noise=dl_noise,
                     num_inference_steps=dl_info.recipe["steps"], seed=job.seed)
    settings = RelightSettings(steps=info.recipe["steps"], consistency="ratio")
    twin = relight_prepared(olat, plan, replace(prepared, seen=flat.images[0]), settings, noise)
    as_shot = relight_prepared(olat, plan, prepared, settings, noise)
    for name in ("key", "soft"):
        written, expected = layers[light_layer_name(name)], twin.passes.layers[name].astype(np.float16).astype(np.float32)
        np.testing.assert_allclose(written, expected, rtol=2e-3, atol=1e-4)
        assert np.abs(as_shot.passes.layers[name] - twin.passes.layers[name]).mean() > 1e-3 * np.abs(expected).mean()
    np.testing.assert_array_equal(alpha, prepared.matte.astype(np.float16).astype(np.float32))
    assert report.frames[0].evaluations == twin.evaluations + flat.evaluations
    assert not any("delighted first" in w for w in report.warnings)


def test_the_general_olat_bundle_on_a_plate_as_shot_warns_to_delight_it(astronaut, tmp_path):
    """Without --delight the general OLAT bundle still runs (the plate may be flat-lit already) but
    says what it expects."""
    from core.jobs import RelightJob
    from core.model.bundle import GENERAL_OLAT_BUNDLE
    from core.relight_job import run_relight

    job = RelightJob(bundle=str(GENERAL_OLAT_BUNDLE), input=str(astronaut), output=str(tmp_path / "out"),
                     rig=example_rig(), threads=1)
    report = run_relight(job)
    assert any("delighted first (--delight auto)" in w for w in report.warnings)


def test_a_delighter_must_be_one_and_match_the_bundle():
    """Only an envmap bundle trained to the flat-lit delights, at the bundle's resolution and of
    its kind (general or one subject's: the plate is framed once for both); the errors name the
    delighter's folder. The shipped delighter records that it is one."""
    from core.model.bundle import DEFAULT_BUNDLE, DELIGHT_BUNDLE, GENERAL_OLAT_BUNDLE, PORTRAIT_BUNDLE, read_info
    from core.relight.delight import check_delighter

    delighter, olat, portrait, default = (read_info(b) for b in (DELIGHT_BUNDLE, GENERAL_OLAT_BUNDLE,
                                                                 PORTRAIT_BUNDLE, DEFAULT_BUNDLE))
    assert delighter.target_lighting == "flat" and portrait.target_lighting == "any"
    check_delighter(delighter, olat, "dl")
    with pytest.raises(ValidationError, match=r"^dl: .*is not a delighter \(it is an envmap bundle relighting to 'any'"):
        check_delighter(portrait, olat, "dl")  # relights to any lighting
    with pytest.raises(ValidationError, match="is not a delighter \\(it is an olat bundle"):
        check_delighter(olat, olat, "dl")  # not environment-lit
    bigger = replace(olat, config=replace(olat.config, resolution=2 * olat.config.resolution))
    with pytest.raises(ValidationError, match="must match"):
        check_delighter(delighter, bigger, "dl")
    with pytest.raises(ValidationError, match="must be of one kind"):
        check_delighter(delighter, replace(default, config=olat.config), "dl")  # a subject's bundle


def test_auto_picks_the_general_olat_bundle_for_any_delighted_plate():
    """A plate delighted by the (general) delighter gets the general OLAT bundle, even when a shipped
    bundle was trained on its subject; undelighted, that subject keeps its bundle and anyone else
    gets the general portrait bundle."""
    from core.model.bundle import DEFAULT_BUNDLE, GENERAL_OLAT_BUNDLE, PORTRAIT_BUNDLE, read_info, shipped_bundle_for

    subject = read_info(DEFAULT_BUNDLE).subject
    assert shipped_bundle_for(subject)[0].name == DEFAULT_BUNDLE.name
    assert shipped_bundle_for(subject, delighted=True)[0].name == GENERAL_OLAT_BUNDLE.name
    assert shipped_bundle_for(None)[0].name == PORTRAIT_BUNDLE.name
    assert shipped_bundle_for(None, delighted=True)[0].name == GENERAL_OLAT_BUNDLE.name


def test_a_farm_plan_checks_the_delighter_and_depends_on_its_weights(astronaut, tmp_path):
    """A plan refuses a delighter that is not one before it writes anything; planned again it reuses
    its version folder, but not once the delighter's weights changed (same job JSON)."""
    import shutil

    from safetensors.torch import load_file, save_file

    from core.farm.units import plan_job
    from core.jobs import RelightJob
    from core.model.bundle import DELIGHT_BUNDLE, GENERAL_OLAT_BUNDLE

    out = tmp_path / "out"
    job = RelightJob(bundle=str(GENERAL_OLAT_BUNDLE), input=str(astronaut), output=str(out), rig=example_rig(),
                     delight=str(GENERAL_OLAT_BUNDLE))
    with pytest.raises(ValidationError, match="is not a delighter"):
        plan_job(job, chunk=1)
    assert not out.exists()
    ours = shutil.copytree(DELIGHT_BUNDLE, tmp_path / "delighter")
    job = replace(job, delight=str(ours))
    first = plan_job(job, chunk=1).folders
    assert plan_job(job, chunk=1).folders == first
    weights = load_file(ours / "lighting.safetensors")
    save_file({k: v + 0.01 for k, v in weights.items()}, ours / "lighting.safetensors")
    assert plan_job(job, chunk=1).folders != first
