import json

import numpy as np
import pytest

from core.data.capture import CaptureSet, write_olats
from core.data.manifest import Camera, CaptureManifest, Frame
from core.errors import RelitIOError, ValidationError
from core.io.exr import write_rgba
from core.lighting.camera import intrinsics_from_fov, look_at_c2w
from core.lighting.layout import make_layout


def make_capture(root, rng, h=8, w=12):
    layout = make_layout("six", np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1.0]]))
    cams = [Camera(f"cam{i}", w, h, intrinsics_from_fov(w, h, 0.8),
                   look_at_c2w(np.array([np.cos(i), np.sin(i), 0.2]) * 2, np.zeros(3))) for i in range(2)]
    frames = [Frame(1001, "neutral"), Frame(1003, "smile")]
    m = CaptureManifest("subject-a", cams, layout, np.full((6, 3), 2.0), frames,
                        "flat/{camera}/flat.{frame:04d}.exr", "olat/{camera}/olat.{frame:04d}.exr")
    truth = {}
    for cam in cams:
        for f in frames:
            olats = rng.random((6, h, w, 3)).astype(np.float32)
            alpha = (rng.random((h, w)) > 0.3).astype(np.float32)
            write_olats(root / m.olat_images.format(camera=cam.name, frame=f.frame), layout, olats, alpha,
                        m.irradiance)
            write_rgba(root / m.flat_images.format(camera=cam.name, frame=f.frame), olats.sum(0), alpha)
            truth[cam.name, f.frame] = (olats, alpha)
    m.save(root)
    return m, truth


def test_capture_set_round_trip_and_lazy_reads(tmp_path, rng):
    m, truth = make_capture(tmp_path, rng)
    cs = CaptureSet(tmp_path)
    assert cs.manifest.subject == "subject-a" and len(list(cs.views())) == 4
    np.testing.assert_allclose(cs.manifest.cameras[1].c2w, m.cameras[1].c2w)
    olats, alpha = truth["cam1", 1003]
    half = lambda x: x.astype(np.float16).astype(np.float32)
    got = cs.olat("cam1", 1003, m.layout.names[4])
    np.testing.assert_array_equal(got.rgb, half(olats[4]))
    np.testing.assert_array_equal(got.alpha, alpha)
    every, a = cs.olats("cam1", 1003)
    np.testing.assert_array_equal(every, half(olats))
    flat = cs.flat("cam1", 1003)
    np.testing.assert_allclose(flat.rgb, every.sum(0), atol=2e-2)  # flat-lit is the sum of the OLATs
    assert cs.missing_files() == []
    (tmp_path / "flat/cam0/flat.1001.exr").unlink()
    assert [p.name for p in cs.missing_files()] == ["flat.1001.exr"]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["cameras"][1].update(K=[[1, 0], [0, 1]]), r"cameras\[1\].K"),
    (lambda d: d["cameras"][0].pop("c2w"), r"cameras\[0\].c2w: missing"),
    (lambda d: d["frames"].append({"frame": 1001}), r"frames: .*repeated"),
    (lambda d: d["images"].update(flat="flat/{cam}/{frame}.exr"), r"images.flat: unknown template field"),
    (lambda d: d["stage"].update(irradiance=[[1, 1, 1]]), r"stage.irradiance"),
    (lambda d: d.update(format="nerf"), "format"),
    (lambda d: d["frames"][1].update(frame="1003"), r"frames\[1\].frame"),
])
def test_manifest_errors_name_the_entry(tmp_path, rng, edit, message):
    make_capture(tmp_path, rng, h=2, w=2)
    path = tmp_path / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match=message) as err:
        CaptureSet(tmp_path)
    assert "manifest.json" in str(err.value)


def test_missing_manifest_and_unknown_names(tmp_path, rng):
    with pytest.raises(RelitIOError, match="manifest.json"):
        CaptureSet(tmp_path)
    make_capture(tmp_path, rng, h=2, w=2)
    cs = CaptureSet(tmp_path)
    with pytest.raises(ValidationError, match="no camera 'cam9'"):
        cs.flat("cam9", 1001)
    with pytest.raises(ValidationError, match="no frame 1002"):
        cs.flat("cam0", 1002)


def test_info_validates_every_file_against_the_manifest(tmp_path, capture):
    """relit info reads every file's header: an OLAT file lacking a stage light's layer, a flat-lit
    image without alpha, a missing file are each reported, with exit code 2 (issue 26 item 6, 28)."""
    import shutil

    from core.io.exr import read_channels, read_info, write_exr
    from tests.conftest import run_relit

    ok = run_relit("info", str(capture.root))
    assert ok.returncode == 0 and "every layer, size and alpha" in ok.stdout
    broken = tmp_path / "cap"
    shutil.copytree(capture.root, broken)
    cs = CaptureSet(broken)
    m = cs.manifest
    cam, frame = m.cameras[0].name, m.frames[0].frame
    olat = cs.path(m.olat_images, cam, frame)
    names = [n for n in read_info(olat).channels() if not n.startswith(f"light_{m.layout.names[3]}.")]
    write_exr(olat, read_channels(olat, names), names, ["half"] * len(names))
    flat = cs.path(m.flat_images, cam, frame)
    write_exr(flat, read_channels(flat, ["R", "G", "B"]), ["R", "G", "B"], ["half"] * 3)
    cs.path(m.flat_images, cam, m.frames[1].frame).unlink()
    run = run_relit("info", str(broken))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"lacks layer(s) ['light_{m.layout.names[3]}']" in run.stderr
    assert f"{flat}: no alpha (A) channel" in run.stderr and "missing (flat-lit image" in run.stderr
