"""The synthetic light stage against Cycles itself: linearity, the HDRI convention check,
cameras, true motion and resume. Rendered once per session through ``relit synth``."""

import math

import numpy as np
import pytest

from core.errors import RelitError
from core.io.exr import read_layer
from core.lighting.camera import project_points
from core.lighting.hdri import load_environment, project_to_layout
from core.synthetic.subject import deform, expression_track, face_subject
from tests.conftest import SYNTH_ARGS as ARGS
from tests.conftest import SYNTH_RES as RES
from tests.conftest import run_relit


def _subject_mask(alpha):
    return alpha > 0.999


def test_olats_sum_to_the_flat_lit_render(capture):
    cam = capture.manifest.cameras[0].name
    for frame in capture.manifest.frames:
        olats, alpha = capture.olats(cam, frame.frame)
        flat = capture.flat(cam, frame.frame)
        m = _subject_mask(flat.alpha)
        total = olats.sum(axis=0)
        mean = flat.rgb[m].mean()
        # noise-bound: the mean absolute difference falls as 1/sqrt(samples); < 1 % at 1024 spp
        assert np.abs(total - flat.rgb)[m].mean() < 0.01 * mean
        # no bias: linear transport means the means agree far tighter than the per-pixel noise
        assert total[m].mean() == pytest.approx(mean, rel=0.005)
        np.testing.assert_allclose(alpha, flat.alpha, atol=1e-3)


def _relight(capture, env, rotation):
    m = capture.manifest
    weights = project_to_layout(load_environment(env.path), m.layout, rotation, env.intensity).weights
    olats, _ = capture.olats(m.cameras[0].name, m.frames[0].frame)
    return np.einsum("nhwc,nc->hwc", olats, weights / m.irradiance)


def _psnr(pred, truth, mask):
    mse = np.mean((pred - truth)[mask] ** 2)
    return 10 * math.log10(truth[mask].max() ** 2 / mse)


def test_hdri_render_equals_olats_weighted_by_the_projection(capture):
    m = capture.manifest
    assert len(m.hdri) == 4
    for h in m.hdri:
        truth = capture.hdri(h.name, m.cameras[0].name, m.frames[0].frame)
        mask = _subject_mask(truth.alpha)
        pred = _relight(capture, h.environment, h.environment.rotation)
        psnr = _psnr(pred, truth.rgb, mask)
        rel_l1 = np.abs(pred - truth.rgb)[mask].sum() / np.abs(truth.rgb[mask]).sum()
        assert psnr > 28, (h.name, psnr)
        assert rel_l1 < 0.12, (h.name, rel_l1)
        # the check can fail: the opposite rotation sense, or the lookup rotation mistaken for the
        # environment's, is far off
        wrong = _relight(capture, h.environment, tuple(-a for a in h.environment.rotation))
        assert _psnr(wrong, truth.rgb, mask) < psnr - 3, h.name


def test_manifest_cameras_project_the_subject_onto_its_matte(capture):
    m = capture.manifest
    cam = m.cameras[0]
    track = expression_track([f.frame for f in m.frames], seed=2)
    subject = face_subject(2)
    for f, (weights, label) in zip(m.frames, track):
        assert f.expression == label
        xy, depth = project_points(deform(subject, weights), cam.K, cam.c2w)
        alpha = capture.flat(cam.name, f.frame).alpha
        rows, cols = np.nonzero(alpha > 0.5)
        assert np.all(depth > 0)
        # the projected mesh and Cycles' matte cover the same box (pixel-corner origin)
        np.testing.assert_allclose([xy[:, 0].min(), xy[:, 0].max(), xy[:, 1].min(), xy[:, 1].max()],
                                   [cols.min(), cols.max() + 1, rows.min(), rows.max() + 1], atol=1.5)


def test_motion_layers_are_true_motion(capture):
    m = capture.manifest
    cam = m.cameras[0]
    f0, f1 = m.frames[0].frame, m.frames[1].frame
    track = expression_track([f0, f1], seed=2)
    subject = face_subject(2)
    p0, _ = project_points(deform(subject, track[0][0]), cam.K, cam.c2w)
    p1, _ = project_points(deform(subject, track[1][0]), cam.K, cam.c2w)
    lm = subject.regions["landmarks"]
    flat = capture.path(m.flat_images, cam.name, f0)
    to_next = read_layer(flat, "motion_next", "XY")
    alpha = capture.flat(cam.name, f0).alpha
    errors = []
    for i in lm:
        x, y = p0[i]
        xi, yi = int(x), int(y)
        if 0 <= xi < RES and 0 <= yi < RES and alpha[yi, xi] > 0.999:
            errors.append(np.linalg.norm(to_next[yi, xi] - (p1[i] - p0[i])))
    moved = np.median(np.linalg.norm(p1[lm] - p0[lm], axis=1))
    assert moved > 0.3  # the subject really moves between the frames
    assert len(errors) > 50 and np.median(errors) < 0.25 * moved + 0.1
    to_prev = read_layer(capture.path(m.flat_images, cam.name, f1), "motion_prev", "XY")
    assert np.abs(to_prev).max() > 0.3
    assert np.abs(read_layer(flat, "motion_prev", "XY")).max() < 1e-3  # the first frame has no previous


def test_rerun_renders_nothing_and_finishes_an_interrupted_set(capture, tmp_path):
    root = capture.root
    files = {p: p.stat().st_mtime_ns for p in root.rglob("*.exr")}
    victim = capture.path(capture.manifest.olat_images, capture.manifest.cameras[0].name,
                          capture.manifest.frames[1].frame)
    keep = victim.read_bytes()
    victim.unlink()
    partial = victim.parent / f".{victim.stem}.x1.partial.exr"
    partial.write_bytes(b"half-written")  # what a killed writer leaves
    run = run_relit(*ARGS, "-o", str(root))
    assert run.returncode == 0, run.stderr
    assert victim.exists() and not partial.exists()
    changed = [p for p, t in files.items() if p != victim and p.stat().st_mtime_ns != t]
    assert changed == []
    assert len(victim.read_bytes()) > 0.5 * len(keep)
    other = run_relit(*[a if a != "2" else "3" for a in ARGS], "-o", str(root))  # another seed
    assert other.returncode == 2 and "other settings" in other.stderr


def test_suzanne_subject_renders(tmp_path):
    out = tmp_path / "suzanne"
    run = run_relit("synth", "--subject", "suzanne", "--seed", "1", "--views", "2", "--frames", "2",
                    "--layout", "rings16", "--res", "24", "--samples", "8", "--quiet", "-o", str(out))
    assert run.returncode == 0, run.stderr
    from core.data.capture import CaptureSet

    cs = CaptureSet(out)
    assert cs.manifest.subject == "suzanne-0001" and cs.missing_files() == []
    flat = cs.flat("cam01", 2)
    coverage = (flat.alpha > 0.5).mean()
    assert 0.1 < coverage < 0.9 and flat.rgb[flat.alpha > 0.99].mean() > 0.01


def test_shards_fill_one_set_together_and_leave_each_others_partials(capture, tmp_path):
    import shutil

    root = tmp_path / "face"
    shutil.copytree(capture.root, root)
    m, cam = capture.manifest, capture.manifest.cameras[0].name
    f1, f2 = (f.frame for f in m.frames)  # view-frames in order: shard 0/2 owns frame f1, 1/2 frame f2
    olat1, flat2 = root / m.olat_images.format(camera=cam, frame=f1), root / m.flat_images.format(camera=cam, frame=f2)
    olat1.unlink()
    flat2.unlink()
    partial = olat1.parent / f".{olat1.stem}.x1.partial.exr"
    partial.write_bytes(b"another writer's")
    run = run_relit(*ARGS, "--shard", "1/2", "-o", str(root))
    assert run.returncode == 0, run.stderr
    assert flat2.exists() and not olat1.exists() and partial.exists()  # its own image only; the other's untouched
    run = run_relit(*ARGS, "--shard", "0/2", "-o", str(root))
    assert run.returncode == 0, run.stderr
    assert olat1.exists() and not partial.exists()
    from core.data.capture import CaptureSet

    assert CaptureSet(root).missing_files() == []
    bad = run_relit(*ARGS, "--shard", "2/2", "-o", str(root))
    assert bad.returncode == 2 and "--shard" in bad.stderr and "0 <= K < N" in bad.stderr
    people = run_relit("synth", "--identities", "2", "--shard", "0/2", "-o", str(tmp_path / "people"))
    assert people.returncode == 2 and "--seed range" in people.stderr and "Traceback" not in people.stderr
    assert not (tmp_path / "people").exists()


def test_a_stage_mix_renders_the_weighted_sum_of_its_olats(capture, tmp_path):
    """One render with several stage lights on at chosen RGB irradiances equals the OLATs weighted by
    them (linearity), for two coloured lights and for an HDRI projected on the stage."""
    import shutil

    from core.synthetic.synth import render_stage_mixes

    root = tmp_path / "face"
    shutil.copytree(capture.root, root)
    m = capture.manifest
    olats, alpha = capture.olats(m.cameras[0].name, m.frames[0].frame)
    unit = olats / m.irradiance[:, None, None, :]
    two = np.zeros((len(m.layout), 3))
    two[5], two[40] = (2.0, 1.0, 0.5), (0.2, 0.6, 1.5)
    h = m.hdri[0]
    hdri = project_to_layout(load_environment(h.environment.path), m.layout, h.environment.rotation).weights
    mixes = render_stage_mixes(root, {"two": two, "hdri": hdri}, threads=2)
    mask = _subject_mask(alpha)
    for name, w in (("two", two), ("hdri", hdri)):
        expected = np.einsum("nhwc,nc->hwc", unit, w)
        assert _psnr(mixes[name], expected, mask) > 28, name
        assert mixes[name][mask].mean() == pytest.approx(expected[mask].mean(), rel=0.01), name
    swapped = two[:, ::-1].copy()  # the check can fail: the colours the other way round
    assert _psnr(np.einsum("nhwc,nc->hwc", unit, swapped), mixes["two"], mask) < 25
    files = sorted((root / "mixes").glob("*.exr"))
    assert len(files) == 2
    stamps = [p.stat().st_mtime_ns for p in files]
    again = render_stage_mixes(root, {"two": two, "hdri": hdri})  # a rerun renders nothing
    assert [p.stat().st_mtime_ns for p in files] == stamps
    np.testing.assert_array_equal(again["two"], mixes["two"])
    with pytest.raises(RelitError, match="irradiances >= 0"):
        render_stage_mixes(root, {"bad": -two})
