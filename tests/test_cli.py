import json
from pathlib import Path

import numpy as np
import pytest

from core.io.passes import PassMetadata, RelitPasses, write_passes
from core.lighting.rig import LightRig
from tests.conftest import ROOT, run_relit


def test_info_on_a_blender_bundled_hdri():
    out = run_relit("info", "forest")
    assert out.returncode == 0, out.stderr
    assert "forest.exr: openexr, 1 part(s)" in out.stdout
    assert "part 0: 1024x512, dwab compression" in out.stdout
    assert "(beauty): R,G,B [float]" in out.stdout


def test_info_on_a_pass_file(tmp_path):
    rng = np.random.default_rng(1)
    passes = RelitPasses({n: rng.random((6, 10, 3)).astype(np.float32) for n in ("key", "fill")},
                         np.ones((6, 10), np.float32))
    path = write_passes(tmp_path / "shot.1001.exr", passes, PassMetadata(rig={}, seed=11, steps=30))
    out = run_relit("info", str(path))
    assert out.returncode == 0, out.stderr
    for line in ("1 part(s)", "part 0: 10x6, zip compression", "(beauty): R,G,B,A [half]",
                 "light_key: R,G,B [half]", "light_fill: R,G,B [half]", "relit/seed = 11",
                 "chromaticities = (0.64, 0.33, 0.3, 0.6, 0.15, 0.06, 0.3127, 0.329)"):
        assert line in out.stdout


def test_rig_from_bundled_hdri_conserves_energy(tmp_path):
    out = run_relit("rig", "--hdri", "studio", "--rotation", "15,0,90", "--layout", "rings64",
                    "-o", str(tmp_path / "rig.json"))
    assert out.returncode == 0, out.stderr
    rig = LightRig.load(tmp_path / "rig.json")
    assert len(rig.lights) == 66 and rig.environment.path.endswith("studio.exr")
    assert rig.environment.rotation == tuple(np.radians([15, 0, 90]).tolist())
    total = sum(np.array(l.rgb) * l.intensity for l in rig.lights)
    printed = json.loads(out.stdout.split("irradiance sum ")[1].split(" W/m2")[0])
    np.testing.assert_allclose(total, printed, rtol=1e-3)
    info = run_relit("info", str(tmp_path / "rig.json"))
    assert "LightRig with 66 light(s)" in info.stdout


def test_errors_are_reported_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.exr"
    bad.write_text("nope")
    out = run_relit("info", str(bad))
    assert out.returncode == 2
    assert "relit: error:" in out.stderr and "bad.exr" in out.stderr and "Traceback" not in out.stderr
    out = run_relit("rig", "--hdri", "moon", "-o", str(tmp_path / "r.json"))
    assert out.returncode == 2 and "moon" in out.stderr
    out = run_relit("rig", "--hdri", "forest", "--rotation", "1,2", "-o", str(tmp_path / "r.json"))
    assert out.returncode == 2 and "--rotation" in out.stderr
    assert not (tmp_path / "r.json").exists()


def test_reconstruct_checks_its_capture_and_preset_before_writing(tmp_path, capture):
    out = tmp_path / "recon"
    missing = run_relit("reconstruct", str(tmp_path / "nowhere"), "--keyframes", "2", "-o", str(out))
    assert missing.returncode == 2 and "manifest.json: not found" in missing.stderr and not out.exists()
    bogus = run_relit("reconstruct", str(capture.root), "--keyframes", "2", "--preset", "bogus", "-o", str(out))
    assert bogus.returncode == 2 and "--preset 'bogus'" in bogus.stderr and "Traceback" not in bogus.stderr
    assert not out.exists()
    last = capture.manifest.frames[-1].frame
    beyond = run_relit("reconstruct", str(capture.root), "--frames", f"{last}-{last + 1}", "-o", str(out))
    assert beyond.returncode == 2 and f"has no frame {last + 1}" in beyond.stderr and "give --frames" in beyond.stderr
    one = run_relit("reconstruct", str(capture.root), "--frames", str(last), "-o", str(out))
    assert one.returncode == 2 and "needs at least two frames" in one.stderr
    single = run_relit("reconstruct", str(capture.root), "--keyframes", "1", "-o", str(out))
    assert single.returncode == 2 and "--keyframes: must be an integer >= 2" in single.stderr \
        and "Traceback" not in single.stderr
    assert not out.exists()
    frames = [f.frame for f in capture.manifest.frames]
    wide = run_relit("reconstruct", str(capture.root), "--keyframes", "2", "--overlap", str(len(frames)), "-o",
                     str(out))
    assert wide.returncode == 2 and f"overlap {len(frames)}: keyframes [{frames[0]}, {frames[-1]}] leave a segment " \
        "shorter than twice the overlap" in wide.stderr and "Traceback" not in wide.stderr
    assert not out.exists()


def test_a_frame_range_is_recorded_resumed_and_rendered_within(tmp_path, capture):
    """``--frames`` is saved with the reconstruction: a rerun without it finishes the same frames, one
    with other frames is refused, and render-views renders those frames by default and refuses others."""
    from core.gaussians.train import load_config

    frames = [f.frame for f in capture.manifest.frames]
    out, views = tmp_path / "recon", tmp_path / "views"
    tiny = ["--keyframes", "2", "--kframe-iterations", "4", "--segment-iterations", "4", "--warmup", "1",
            "--gaussians", "40", "--res", "16", "--quiet", "-o", str(out)]
    made = run_relit("reconstruct", str(capture.root), "--frames", f"{frames[0]}-{frames[-1]}", *tiny)
    assert made.returncode == 0, made.stderr
    assert load_config(out)[0].frames == frames
    again = run_relit("reconstruct", str(capture.root), "--preset", "tiny", *tiny)
    assert again.returncode == 0, again.stderr
    other = run_relit("reconstruct", str(capture.root), "--frames", str(frames[0]), *tiny)
    assert other.returncode == 2 and f"holds a reconstruction of frames {frames[0]}-{frames[-1]}; rerun without " \
        "--frames" in other.stderr
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
    settings = run_relit("reconstruct", str(capture.root), *tiny, "--overlap", "1", "--warmup", "2")
    assert settings.returncode == 2 and "made with --warmup 1, --overlap 0; rerun without --warmup, --overlap to " \
        "finish it" in settings.stderr, settings.stderr
    held = run_relit("reconstruct", str(capture.root), *tiny, "--holdout-cameras", capture.manifest.cameras[0].name)
    assert held.returncode == 2 and "made with --holdout-cameras (none); rerun without --holdout-cameras" \
        in held.stderr, held.stderr
    production = run_relit("reconstruct", str(capture.root), *tiny, "--preset", "production")
    assert production.returncode == 2 and "differ from --preset production's; rerun without --preset" \
        in production.stderr, production.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == before  # nothing rewritten
    rendered = run_relit("render-views", str(out), "--camera", capture.manifest.cameras[0].name, "--quiet",
                         "-o", str(views))
    assert rendered.returncode == 0, rendered.stderr
    assert sorted(p.name for p in views.glob("flat.*.exr")) == [f"flat.{f:04d}.exr" for f in frames]
    outside = run_relit("render-views", str(out), "--camera", capture.manifest.cameras[0].name, "--frames",
                        str(frames[-1] + 1), "-o", str(tmp_path / "views2"))
    assert outside.returncode == 2 and f"reconstructs frames {frames[0]}-{frames[-1]}, not {frames[-1] + 1}" \
        in outside.stderr
    assert not list((tmp_path / "views2").glob("*.exr"))


def test_silent_acceptance_is_refused(tmp_path):
    """A plate of X/Y/Z channels is not taken for colour, a 1x1 plate is not relit, flags given beside
    --job (which holds the whole job) are not silently ignored."""
    from core.io.exr import write_exr, write_rgba
    from core.jobs import RelightJob
    from tests.conftest import example_rig

    write_exr(tmp_path / "xyz.exr", np.ones((32, 32, 3), np.float32), ["X", "Y", "Z"], ["float"] * 3)
    write_rgba(tmp_path / "tiny.exr", np.ones((1, 1, 3), np.float32), np.ones((1, 1), np.float32))
    out = str(tmp_path / "out")
    xyz = run_relit("relight", "--input", str(tmp_path / "xyz.exr"), "--hdri", "forest", "-o", out)
    assert xyz.returncode == 2 and "has channels ['X', 'Y', 'Z'] and no R, G, B" in xyz.stderr
    tiny = run_relit("relight", "--input", str(tmp_path / "tiny.exr"), "--hdri", "forest", "-o", out)
    assert tiny.returncode == 2 and "the plate is 1x1 pixels" in tiny.stderr
    job = RelightJob(bundle=str(ROOT / "bundle" / "default"), input=str(tmp_path / "tiny.exr"), output=out,
                     rig=example_rig().to_json())
    job.save(tmp_path / "job.json")
    both = run_relit("relight", "--job", str(tmp_path / "job.json"), "--steps", "5", "--seed", "3")
    assert both.returncode == 2 and "--seed, --steps would be ignored" in both.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.exr"))


@pytest.mark.parametrize("code, says", [("ENOSPC", "disk full: free space there and rerun"),
                                         ("EROFS", "read-only file system: choose a writable output folder"),
                                         ("EACCES", "permission denied: choose a folder you may write to")])
def test_a_full_disk_or_a_read_only_folder_is_a_clear_error(tmp_path, code, says):
    """The operating system's refusals the user can act on (disk full, permission, read-only) end in
    one line naming the path and the fix, exit code 2; simulated by a writer that raises the error
    (the tests run as root here, which no permission bit stops)."""
    import os
    import subprocess
    import sys

    from tests.conftest import PYTHONPATH

    code = ("import errno, sys\n"
            "import core.io.atomic as atomic\n"
            "def full(target, text):\n"
            f"    raise OSError(errno.{code}, 'refused', str(target))\n"
            "atomic.atomic_write_text = full\n"
            "import core.lighting.rig\n"
            "core.lighting.rig.atomic_write_text = full\n"
            "from core.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    run = subprocess.run([sys.executable, "-c", code, "rig", "--hdri", "forest", "-o", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert f"{tmp_path / 'r.json'}: {says}" in run.stderr


def test_train_refuses_an_existing_bundle_folder_before_it_trains(tmp_path, capture):
    """A bundle is never overwritten: a rerun whose bundle folder exists stops at once, naming it,
    instead of training for hours and failing at the export."""
    (tmp_path / "run" / "bundle").mkdir(parents=True)
    run = run_relit("train", str(capture.root), "--steps", "2", "--res", "16", "--quiet", "-o", str(tmp_path / "run"))
    assert run.returncode == 2 and "bundle: exists; bundles are never overwritten" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "run" / "checkpoints").exists()
