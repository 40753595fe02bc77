"""`relit demo` and `relit check-consistency` with the committed default bundle, as a newcomer runs them."""

import re

import numpy as np
import pytest

from core.io.passes import read_metadata, read_passes
from core.model.bundle import PORTRAIT_BUNDLE, load_bundle, read_info
from core.model.objectives import make_objective
from tests.conftest import ROOT, run_relit

BUNDLE = ROOT / "bundle" / "default"


def test_default_bundle_is_small_and_documented():
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    assert size <= 20 * 1024 * 1024
    info = read_info(BUNDLE)
    assert info.training["command"].startswith("relit train") and len(info.training["commit"]) == 40
    assert info.subject and info.layout is not None and len(info.stage_irradiance) == len(info.layout)


def test_the_shipped_bundles_share_the_stage_the_addon_assumes_for_them():
    """The add-on encodes lamp sizes with the stage radius before the worker picks a shipped bundle
    ("auto"), so every shipped bundle must be trained on that stage; the portrait bundle relights
    anyone, the default bundle its own subject."""
    from core.io.plates import GENERAL_SUBJECT
    from core.lighting.layout import builtin_layout
    from core.model.bundle import SHIPPED

    shipped = [p for p in SHIPPED.iterdir() if (p / "relit.json").exists()]
    assert {p.name for p in shipped} >= {"default", "portrait"}
    for folder in shipped:
        assert read_info(folder).config.stage_radius == pytest.approx(builtin_layout("default").olat_radius, rel=1e-9)
    portrait = read_info(PORTRAIT_BUNDLE)
    assert portrait.subject == GENERAL_SUBJECT and portrait.config.conditioning == "envmap"
    size = sum(p.stat().st_size for p in PORTRAIT_BUNDLE.rglob("*") if p.is_file())
    assert size <= 50 * 1024 * 1024
    assert len(portrait.training["data"]["captures"]) >= 2 and portrait.training["config"]["holdout_identities"]


def test_demo_writes_passes_and_a_contact_sheet(tmp_path):
    run = run_relit("demo", "-o", str(tmp_path / "demo"), "--quiet")  # at the bundle's recipe
    assert run.returncode == 0, run.stderr
    passes = re.search(r"relit passes:\s+(\S+)", run.stdout).group(1)
    sheet = re.search(r"contact sheet:\s+(\S+)", run.stdout).group(1)
    layers, beauty, alpha = read_passes(passes)
    assert sorted(layers) == ["light_environment", "light_key", "light_rim"]
    np.testing.assert_allclose(beauty, sum(layers.values()), atol=0.01 * float(beauty.max()))
    meta = read_metadata(passes)
    steps = int(read_info(BUNDLE).recipe["steps"])
    assert meta["steps"] == steps and meta["bundle_id"] == read_info(BUNDLE).id
    assert (tmp_path / "demo" / "relit" / "v001" / "contact_sheet.png").exists() and sheet.endswith(".png")
    # the subject is rendered again at the size and Cycles samples of the bundle's training renders
    from core.data.capture import CaptureSet

    rendered = CaptureSet(tmp_path / "demo" / "subject").manifest.extra["config"]
    trained_on = read_info(BUNDLE).training["data"]
    producer = trained_on["producer"]  # one capture set's manifest extra, or several sets' with the first's inside
    made = producer["config"] if "config" in producer else producer["producer"]["config"]
    assert (rendered["resolution"], rendered["samples"]) == (trained_on["image_size"], made["samples"])
    # clean silhouettes: a relit light has no more coloured edge specks than Cycles' own render of it
    # (at the recipe's sampling, its mean pass; three steps' residual grain made 48 on the rim, Cycles none)
    from core.io.images import read_rgb
    from core.model.metrics import edge_chroma_departure

    for name in ("key", "rim"):
        truth = read_rgb(next((tmp_path / "demo" / "subject" / "mixes").glob(f"{name}.*.exr")))
        relit = edge_chroma_departure(layers[f"light_{name}"], alpha)
        assert (relit > 0.1).sum() <= max(2, 2 * (edge_chroma_departure(truth, alpha) > 0.1).sum()), name
    scores = dict(re.findall(r"(\w+) (-?[\d.]+) dB", run.stdout))
    assert float(scores["environment_oracle"]) > 25  # the physical upper bound of the stage method
    photo = {k: float(v) for k, v in re.findall(r"(\w+) (-?[\d.]+)x", run.stdout)}  # the real photo's keys
    assert set(photo) == {"key_left_lit_over_far_side", "key_right_lit_over_far_side"}
    photo_passes = sorted((tmp_path / "demo" / "photo" / "relit" / "v001").glob("*.exr"))
    layers, beauty, alpha = read_passes(photo_passes[0])
    assert sorted(layers) == ["light_environment", "light_key_left", "light_key_right"]
    np.testing.assert_allclose(beauty, sum(layers.values()), atol=0.01 * float(beauty.max()))
    assert alpha[0, 0] < 0.5 < alpha[120, 225]  # the automatic matte: a background corner out, the face in
    # the printed balance is each key's lit half over its far half of the face, recomputed here by hand
    from core.io.plates import read_plate
    from core.portrait.matte import display_rgb8, face_boxes

    x0, y0, x1, y1 = face_boxes(display_rgb8(read_plate(tmp_path / "demo" / "photo" / "astronaut.png").rgb), 0.5)[0]
    mid, luma = (x0 + x1) // 2, {k: v[y0:y1].mean(-1) for k, v in layers.items()}  # near enough to Rec.709 luma
    left = luma["light_key_left"][:, x0:mid].mean() / luma["light_key_left"][:, mid:x1].mean()
    right = luma["light_key_right"][:, mid:x1].mean() / luma["light_key_right"][:, x0:mid].mean()
    assert photo["key_left_lit_over_far_side"] == pytest.approx(left, rel=0.05)
    assert photo["key_right_lit_over_far_side"] == pytest.approx(right, rel=0.05)
    # an HDRI costs the portrait bundle one pass, the stage strategy one inference per stage light
    stage, portrait = map(int, re.search(r"stage strategy (\d+), portrait bundle (\d+)", run.stdout).groups())
    default, general = read_info(BUNDLE), read_info(PORTRAIT_BUNDLE)
    per_inference = load_bundle(BUNDLE)[0].evaluations(steps)  # every tile of a patch bundle counted
    assert per_inference >= make_objective(default.recipe["objective"]).evaluations(steps)
    assert stage == len(default.layout) * per_inference
    assert portrait == make_objective(general.recipe["objective"]).evaluations(int(general.recipe["steps"]))
    assert portrait * 50 <= stage
    # the same demo again resumes v001 (its frame is skipped, the file untouched); other settings make v002
    before = open(passes, "rb").read()
    rerun = run_relit("demo", "-o", str(tmp_path / "demo"), "--quiet")
    assert rerun.returncode == 0 and "v001" in rerun.stdout and open(passes, "rb").read() == before
    other = run_relit("demo", "-o", str(tmp_path / "demo"), "--steps", str(steps + 1), "--quiet")
    assert other.returncode == 0 and "v002" in other.stdout and open(passes, "rb").read() == before


def test_the_demo_refuses_a_bundle_of_a_subject_it_cannot_render(tmp_path):
    import json
    import shutil

    bundle = tmp_path / "alice"
    shutil.copytree(BUNDLE, bundle)
    info = json.loads((bundle / "relit.json").read_text())
    (bundle / "relit.json").write_text(json.dumps({**info, "subject": "alice"}))  # a real light-stage capture's
    run = run_relit("demo", "--bundle", str(bundle), "-o", str(tmp_path / "demo"), "--quiet")
    assert run.returncode == 2 and "'alice' is not one relit synth makes" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "demo").exists()


def test_check_consistency_on_a_real_photo(tmp_path):
    import OpenImageIO as oiio
    from skimage import data as skdata

    photo = tmp_path / "astronaut.png"
    buf = oiio.ImageBuf(oiio.ImageSpec(512, 512, 3, "uint8"))
    buf.set_pixels(oiio.ROI(), skdata.astronaut())
    buf.write(str(photo))
    run = run_relit("check-consistency", "--bundle", str(BUNDLE), "--input", str(photo), "--steps", "2")
    assert run.returncode == 0, run.stderr
    found = re.search(r"frame 0: astronaut.png: sum of \d+ predicted stage OLATs vs input: ([\d.]+)% mean", run.stdout)
    assert found, run.stdout
    # a photo without alpha is matted as relit relight mattes it: the same as that matte given as a file
    from core.io.colour import convert
    from core.portrait.matte import auto_matte

    matte = auto_matte(convert(skdata.astronaut().astype(np.float32) / 255.0, "srgb", "lin_rec709"), "astronaut")
    out = oiio.ImageOutput.create(str(tmp_path / "matte.exr"))
    out.open(str(tmp_path / "matte.exr"), oiio.ImageSpec(512, 512, 1, oiio.FLOAT))
    out.write_image(matte[..., None])
    out.close()
    given = run_relit("check-consistency", "--bundle", str(BUNDLE), "--input", str(photo), "--matte",
                      str(tmp_path / "matte.exr"), "--steps", "2")
    assert given.returncode == 0, given.stderr
    assert re.search(rf"OLATs vs input: {re.escape(found.group(1))}% mean", given.stdout), (run.stdout, given.stdout)


def test_check_consistency_applies_a_separate_matte_as_relight_does(tmp_path):
    """With --matte, a plate stored premultiplied by its own alpha is un-premultiplied first (as relit relight
    does), so it scores as the same plate stored straight: the matte's soft edge is not applied twice."""
    import OpenImageIO as oiio

    size = 96
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    alpha = np.clip((0.35 - np.hypot(x - 0.5, y - 0.5)) / 0.15, 0.0, 1.0)  # a wide soft edge
    colour = np.stack([0.5 + 0.2 * y, 0.35 + 0.1 * x, 0.25 + 0.0 * x], axis=-1) * (alpha > 0)[..., None]

    def write(name, pixels):
        out = oiio.ImageOutput.create(str(tmp_path / name))
        out.open(str(tmp_path / name), oiio.ImageSpec(size, size, pixels.shape[-1], oiio.FLOAT))
        out.write_image(np.ascontiguousarray(pixels, np.float32))
        out.close()

    write("shot.0001.exr", np.concatenate([colour * alpha[..., None], alpha[..., None]], axis=-1))  # premultiplied
    write("shot.0002.exr", colour)                                                                 # straight
    write("matte.exr", alpha[..., None])
    run = run_relit("check-consistency", "--bundle", str(BUNDLE), "--input", str(tmp_path / "shot.####.exr"),
                    "--matte", str(tmp_path / "matte.exr"), "--steps", "2")
    assert run.returncode == 0, run.stderr
    errors = re.findall(r"OLATs vs input: ([\d.]+)% mean", run.stdout)
    assert len(errors) == 2 and abs(float(errors[0]) - float(errors[1])) <= 0.1, run.stdout  # the last digit may round
