"""relit import-stage (issue 28): a stage's own files -> a capture set, against the capture set they
were exported from, an analytic calibration card, and malformed descriptions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.data.capture import CaptureSet
from core.errors import RelitError
from core.io.exr import write_exr, write_rgba
from core.lighting.camera import blender_c2w_to_opencv_w2c
from tests.conftest import run_relit


def _export_raw(capture: CaptureSet, raw: Path, multilayer: bool = False) -> Path:
    """The capture as a stage would deliver it: a file per light (or one multi-layer file), cameras
    as OpenCV world-to-camera matrices, lights as positions 2 m out, the flat-lit left to the sum."""
    m = capture.manifest
    for cam in m.cameras:
        for f in m.frames:
            olats, alpha = capture.olats(cam.name, f.frame)
            if multilayer:
                chans = ["A"] + [f"{n}.{c}" for n in m.layout.names for c in "RGB"]
                px = np.concatenate([alpha[..., None], olats.transpose(1, 2, 0, 3).reshape(*alpha.shape, -1)], -1)
                write_exr(raw / cam.name / f"stage.{f.frame:04d}.exr", px, chans)
            else:
                for name, img in zip(m.layout.names, olats):
                    write_rgba(raw / cam.name / f"{name}.{f.frame:04d}.exr", img, alpha)
    centre = np.array([0.1, -0.2, 1.5])
    stage = {
        "format": "relit-stage", "version": 1, "subject": m.subject, "licence": "test capture, CC0",
        "lights": [{"name": n, "position": (centre + 2.0 * d).tolist()} for n, d in zip(m.layout.names,
                                                                                        m.layout.directions)],
        "centre": centre.tolist(), "irradiance": np.asarray(m.irradiance).tolist(),
        "floor_elevation_deg": None if m.layout.floor_z is None else math.degrees(math.asin(m.layout.floor_z)),
        "convention": "opencv",
        "cameras": [{"name": c.name, "width": c.width, "height": c.height, "K": np.asarray(c.K).tolist(),
                     "w2c": blender_c2w_to_opencv_w2c(c.c2w).tolist()} for c in m.cameras],
        "images": ({"olat": "{camera}/stage.{frame:04d}.exr", "olat_layer": "{light}"} if multilayer else
                   {"olat": "{camera}/{light}.{frame:04d}.exr"}),
    }
    path = raw / "stage.json"
    path.write_text(json.dumps(stage))
    return path


@pytest.mark.parametrize("multilayer", [False, True])
def test_a_capture_exported_as_raw_stage_files_reimports_to_itself(capture, tmp_path, multilayer):
    stage = _export_raw(capture, tmp_path / "raw", multilayer)
    run = run_relit("import-stage", str(stage), "-o", str(tmp_path / "imported"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "flat-lit: made as the exact sum of the OLATs" in run.stdout
    a, b = capture.manifest, CaptureSet(tmp_path / "imported").manifest
    assert CaptureSet(tmp_path / "imported").problems() == []
    assert b.layout.names == a.layout.names and b.subject == a.subject
    np.testing.assert_allclose(b.layout.directions, a.layout.directions, atol=1e-6)
    np.testing.assert_allclose(b.layout.solid_angles, a.layout.solid_angles, rtol=1e-9)
    np.testing.assert_allclose(b.irradiance, a.irradiance, rtol=1e-12)
    for ca, cb in zip(a.cameras, b.cameras):
        np.testing.assert_allclose(cb.c2w, ca.c2w, atol=1e-9)
        np.testing.assert_allclose(cb.K, ca.K, atol=1e-12)
    assert b.extra["licence"] == "test capture, CC0" and b.extra["generator"] == "relit import-stage"
    imported = CaptureSet(tmp_path / "imported")
    for cam in a.cameras:
        for f in a.frames:
            (oa, ma), (ob, mb) = capture.olats(cam.name, f.frame), imported.olats(cam.name, f.frame)
            np.testing.assert_array_equal(ob, oa)
            np.testing.assert_array_equal(mb, ma)
            # the flat-lit made as the sum (half-float storage: within its rounding)
            np.testing.assert_allclose(imported.flat(cam.name, f.frame).rgb, oa.sum(0), rtol=2e-3, atol=1e-4)


def _card_stage(tmp: Path, n: int = 6, res: int = 24) -> tuple[Path, np.ndarray]:
    """A stage of n lights lighting a flat white card (albedo 0.7, facing the camera along -Y):
    the card's pixels are exactly albedo/pi * E_i * cos(theta_i); returns the truth E [n, 3]."""
    rng = np.random.default_rng(3)
    dirs = rng.normal(size=(n, 3))
    dirs[:, 1] = -np.abs(dirs[:, 1]) - 0.5  # every light in front of the card (towards -Y)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    truth = rng.uniform(0.5, 3.0, size=(n, 3))
    normal, albedo, box = np.array([0.0, -1.0, 0.0]), 0.7, (4, 6, 12, 14)
    for i in range(n):
        img = rng.uniform(0, 1, size=(res, res, 3)).astype(np.float32)
        img[box[1]:box[3], box[0]:box[2]] = albedo / math.pi * truth[i] * (dirs[i] @ normal)
        px = np.concatenate([img, np.ones((res, res, 1), np.float32)], -1)
        write_exr(tmp / "raw" / f"L{i:02d}.exr", px, ["R", "G", "B", "A"], ["float"] * 4)
    c2w = np.eye(4)
    stage = {"format": "relit-stage", "version": 1, "subject": "card", "convention": "blender",
             "lights": [{"name": f"L{i:02d}", "direction": d.tolist()} for i, d in enumerate(dirs)],
             "calibration": {"card": {"camera": "cam", "box": list(box), "albedo": albedo,
                                      "normal": normal.tolist()}},
             "cameras": [{"name": "cam", "width": res, "height": res, "lens_mm": 50, "sensor_width_mm": 36,
                          "c2w": c2w.tolist()}],
             "frames": [1], "images": {"olat": "raw/{light}.exr"}}
    path = tmp / "stage.json"
    path.write_text(json.dumps(stage))
    return path, truth


def test_irradiance_is_calibrated_from_a_white_card(tmp_path):
    from core.data.stage_import import import_stage

    stage, truth = _card_stage(tmp_path)
    report = import_stage(stage, tmp_path / "out")
    m = report.capture.manifest
    np.testing.assert_allclose(m.irradiance, truth, rtol=1e-5)  # float32 images: rounding only
    assert "white card, albedo 0.7" in m.extra["calibration"]
    # K from the lens: 50 mm on a 36 mm sensor, 24 px wide
    np.testing.assert_allclose(m.cameras[0].K[0, 0], 50 / 36 * 24)


def _edit(stage: Path, change) -> Path:
    data = json.loads(stage.read_text())
    change(data)
    stage.write_text(json.dumps(data))
    return stage


def _no_intrinsics(d):
    del d["cameras"][0]["lens_mm"]


def _duplicate(d):
    d["lights"][1]["name"] = d["lights"][0]["name"]


def _zero(d):
    d["lights"][2]["direction"] = [0, 0, 0]


def _layer_missing(d):
    d["images"] = {"olat": "raw/L00.exr", "olat_layer": "key_{light}"}


@pytest.mark.parametrize("case, change, says", [
    ("missing light file", lambda d: d["lights"].append({"name": "L99", "direction": [0, -1, 0]}),
     "L99.exr: not found (light L99"),
    ("duplicate name", _duplicate, "names must be unique, repeated: ['L00']"),
    ("zero direction", _zero, "lights[2]: the direction has zero length"),
    ("camera without intrinsics", _no_intrinsics, "cameras[0]: no intrinsics; give K"),
    ("layer missing", _layer_missing, "no layer 'key_L00' with R, G, B for light L00"),
    ("no irradiance", lambda d: d.pop("calibration"), "give each light's irradiance"),
    ("light behind the card", lambda d: d["lights"][0].update(direction=[0, 1, 0]),
     "shine on the card from behind"),
])
def test_a_malformed_stage_is_a_clear_error_before_anything_is_written(tmp_path, case, change, says):
    from core.data.stage_import import import_stage

    stage, _ = _card_stage(tmp_path)
    _edit(stage, change)
    with pytest.raises(RelitError) as e:
        import_stage(stage, tmp_path / "out")
    message = str(e.value)
    assert says in message and ("stage.json" in message or ".exr" in message), message
    assert not (tmp_path / "out").exists()
