"""`relit demo` and `relit check-consistency` with the committed default bundle, as a newcomer runs them."""

import re

import numpy as np

from core.io.passes import read_metadata, read_passes
from core.model.bundle import read_info
from tests.conftest import ROOT, run_relit

BUNDLE = ROOT / "bundle" / "default"


def test_default_bundle_is_small_and_documented():
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*") if p.is_file())
    assert size <= 20 * 1024 * 1024
    info = read_info(BUNDLE)
    assert info.training["command"].startswith("relit train") and len(info.training["commit"]) == 40
    assert info.subject and info.layout is not None and len(info.stage_irradiance) == len(info.layout)


def test_demo_writes_passes_and_a_contact_sheet(tmp_path):
    run = run_relit("demo", "-o", str(tmp_path / "demo"), "--steps", "3", "--quiet")
    assert run.returncode == 0, run.stderr
    passes = re.search(r"relit passes:\s+(\S+)", run.stdout).group(1)
    sheet = re.search(r"contact sheet:\s+(\S+)", run.stdout).group(1)
    layers, beauty, alpha = read_passes(passes)
    assert sorted(layers) == ["light_environment", "light_key", "light_rim"]
    np.testing.assert_allclose(beauty, sum(layers.values()), atol=0.01 * float(beauty.max()))
    meta = read_metadata(passes)
    assert meta["steps"] == 3 and meta["bundle_id"] == read_info(BUNDLE).id
    assert (tmp_path / "demo" / "relit" / "v001" / "contact_sheet.png").exists() and sheet.endswith(".png")
    scores = dict(re.findall(r"(\w+) (-?[\d.]+) dB", run.stdout))
    assert float(scores["environment_oracle"]) > 25  # the physical upper bound of the stage method
    # the same demo again resumes v001 (its frame is skipped, the file untouched); other settings make v002
    before = open(passes, "rb").read()
    rerun = run_relit("demo", "-o", str(tmp_path / "demo"), "--steps", "3", "--quiet")
    assert rerun.returncode == 0 and "v001" in rerun.stdout and open(passes, "rb").read() == before
    other = run_relit("demo", "-o", str(tmp_path / "demo"), "--steps", "2", "--quiet")
    assert other.returncode == 0 and "v002" in other.stdout and open(passes, "rb").read() == before


def test_check_consistency_on_a_real_photo(tmp_path):
    import OpenImageIO as oiio
    from skimage import data as skdata

    photo = tmp_path / "astronaut.png"
    buf = oiio.ImageBuf(oiio.ImageSpec(512, 512, 3, "uint8"))
    buf.set_pixels(oiio.ROI(), skdata.astronaut())
    buf.write(str(photo))
    run = run_relit("check-consistency", "--bundle", str(BUNDLE), "--input", str(photo), "--steps", "2")
    assert run.returncode == 0, run.stderr
    assert re.search(r"frame 0: astronaut.png: sum of \d+ predicted stage OLATs vs input: [\d.]+% mean", run.stdout)
