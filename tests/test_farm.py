"""Work units, plan / run-unit, and Ray: same bytes as one process, faults survived, nothing redone."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.farm.units import Plan, plan_job, run_plan_local, run_unit
from core.io.exr import write_rgba
from core.io.passes import read_metadata, read_passes
from core.jobs import RelightJob
from core.lighting.camera import front_camera_c2w
from core.lighting.layout import builtin_layout
from core.lighting.rig import Environment
from core.relight_job import run_relight
from tests.conftest import LAYOUT, PYTHONPATH, ROOT, env_from_function, example_rig, write_plates

N_STAGE = len(builtin_layout(LAYOUT))


def _job(bundle, tmp_path, out, frames=(1, 2, 3), **kw):
    """A basis + HDRI (stage) + three-light job; its plates and HDRI are written once per test."""
    if (tmp_path / "env.exr").exists():
        return RelightJob.from_json({**json.loads((tmp_path / "job_template.json").read_text()), "output": str(out),
                                     "input": write_plates(tmp_path, list(frames))})
    env = env_from_function(8, lambda d: (0.4 + np.exp(3 * (d @ np.array([0.2, -0.9, 0.4]) - 1)))[..., None]
                            * np.ones(3))
    write_rgba(tmp_path / "env.exr", env, np.ones(env.shape[:2], np.float32))
    rig = example_rig()
    rig.environment = Environment(str(tmp_path / "env.exr"), (0.0, 0.0, 0.4), 1.0)
    rig.camera_c2w = front_camera_c2w().tolist()
    plates = write_plates(tmp_path, list(frames))
    job = RelightJob(bundle=str(bundle), input=plates, output=str(out), rig=rig.to_json(), basis=True, steps=2,
                     seed=5, threads=1, **kw)
    job.save(tmp_path / "job_template.json")
    return job


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.exr"))}


def test_plan_lists_units_with_commands_and_dependencies(tmp_path, bundle):
    job = _job(bundle, tmp_path, tmp_path / "out", frames=(1, 2, 3, 4, 5))
    plan = plan_job(job, chunk=2, light_chunk=8)
    plan.save(tmp_path / "units.json")
    chunks = -(-N_STAGE // 8)
    assert len(plan.units) == 3 * (chunks + 1)
    data = json.loads((tmp_path / "units.json").read_text())
    first_merge = data["units"][chunks]
    assert first_merge["kind"] == "merge" and first_merge["depends_on"] == list(range(chunks))
    assert first_merge["frames"] == [1, 2] and data["units"][0]["light_chunk"] == [0, 8]
    assert data["units"][0]["command"] == f"relit run-unit {tmp_path / 'units.json'} --index 0"
    assert Plan.load(tmp_path / "units.json").units[-1].frames == [5]


def test_a_replan_reuses_its_version_only_while_the_inputs_are_unchanged(tmp_path, bundle):
    """Planning the same job again continues its version folder; an edited HDRI or a re-rendered
    plate makes a new version, never the old version's frames replaced in place."""
    job = _job(bundle, tmp_path, tmp_path / "out")
    first = plan_job(job, chunk=2).folders[""]
    assert plan_job(job, chunk=2).folders[""] == first
    env = np.ones((8, 16, 3), np.float32)
    write_rgba(tmp_path / "env.exr", env, np.ones(env.shape[:2], np.float32))  # the HDRI edited in place
    second = plan_job(job, chunk=2).folders[""]
    assert second != first and Path(second).name == "v002"
    plate = tmp_path / "flat.0002.exr"
    os.utime(plate, ns=(plate.stat().st_atime_ns, plate.stat().st_mtime_ns + 10**9))  # re-rendered
    assert Path(plan_job(job, chunk=2).folders[""]).name == "v003"


def test_light_chunks_are_refused_before_anything_is_written_when_the_bundle_ratio_corrects(tmp_path, bundle):
    import shutil

    ratio = tmp_path / "ratio_bundle"
    shutil.copytree(bundle, ratio)
    info = json.loads((ratio / "relit.json").read_text())
    info["recipe"] = {**info["recipe"], "consistency": "ratio"}
    (ratio / "relit.json").write_text(json.dumps(info))
    job = _job(ratio, tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="cannot be split into light chunks"):
        plan_job(job, chunk=2, light_chunk=8)
    assert not (tmp_path / "out").exists()
    job.consistency = "none"  # the job may opt out of the correction
    assert len(plan_job(job, chunk=2, light_chunk=8).units) > 2


def test_light_chunks_merge_to_the_unsplit_result(tmp_path, bundle):
    job = _job(bundle, tmp_path, tmp_path / "whole", noise="flow")
    whole = run_relight(job)
    plan = plan_job(_job(bundle, tmp_path, tmp_path / "split", noise="flow"), chunk=2, light_chunk=7)
    run_plan_local(plan)
    folder = tmp_path / "split" / "v001"
    for f in (1, 2, 3):
        for name in (f"relit.{f:04d}.exr", f"relit_basis.{f:04d}.exr"):  # the merge's header is the whole run's
            merged, unsplit = read_metadata(folder / name), read_metadata(whole.folder / name)
            assert merged.pop("input_hash") != unsplit.pop("input_hash")  # (hashes of other files)
            assert merged == unsplit and merged["noise"] == "flow"
        a, _, alpha_a = read_passes(whole.folder / f"relit.{f:04d}.exr")
        b, beauty_b, alpha_b = read_passes(folder / f"relit.{f:04d}.exr")
        assert sorted(a) == sorted(b)
        for name in a:  # float sums in another order and other batches, both rounded to half
            np.testing.assert_allclose(b[name], a[name], rtol=4e-3, atol=1e-3 * max(1.0, float(a[name].max())))
        np.testing.assert_array_equal(alpha_a, alpha_b)
        basis_a, _, _ = read_passes(whole.folder / f"relit_basis.{f:04d}.exr")
        basis_b, _, _ = read_passes(folder / f"relit_basis.{f:04d}.exr")
        assert sorted(basis_a) == sorted(basis_b) and len(basis_b) == N_STAGE
    # a rerun of every unit finds everything done
    again = [run_unit(plan, u.index) for u in plan.units if u.kind == "relight"]
    assert all(r["skipped"] == plan.units[r["unit"]].frames for r in again)


def test_cli_plan_and_run_unit(tmp_path, bundle):
    job = _job(bundle, tmp_path, tmp_path / "out", frames=(1, 2))
    job.save(tmp_path / "job.json")
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    run = subprocess.run([sys.executable, "-m", "core.cli", "plan", str(tmp_path / "job.json"), "--chunk", "1",
                          "-o", str(tmp_path / "units.json")], capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "2 unit(s) (2 relight, 0 merge)" in run.stdout
    for i in range(2):
        unit = subprocess.run([sys.executable, "-m", "core.cli", "run-unit", str(tmp_path / "units.json"), "--index",
                               str(i)], capture_output=True, text=True, env=env, cwd=ROOT)
        assert unit.returncode == 0, unit.stderr
    assert sorted(_files(tmp_path / "out" / "v001")) == ["relit.0001.exr", "relit.0002.exr", "relit_basis.0001.exr",
                                                         "relit_basis.0002.exr"]


@pytest.fixture
def ray_local():
    ray = pytest.importorskip("ray")
    yield ray
    ray.shutdown()


def test_ray_with_two_workers_gives_the_single_process_bytes_and_survives_a_killed_worker(tmp_path, bundle, ray_local):
    from core.farm.ray_runner import run_plan_ray
    from core.io.atomic import STALE_AFTER_S

    local = plan_job(_job(bundle, tmp_path, tmp_path / "local", frames=(1, 2, 3, 4)), chunk=1, light_chunk=9)
    run_plan_local(local, threads=1)
    reference = _files(tmp_path / "local" / "v001")
    plan = plan_job(_job(bundle, tmp_path, tmp_path / "ray", frames=(1, 2, 3, 4)), chunk=1, light_chunk=9)
    plan.save(tmp_path / "units.json")
    killed = []

    def kill_one(result, actors):
        if not killed and len(actors) > 1:
            pid = next(p for p in actors if p != result["pid"])  # one still busy (or about to be)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            # what a worker killed mid-write left in the shared prediction cache, untouched since (a file
            # touched within STALE_AFTER_S may be another run's, still being written: the sweep spares it)
            cache = tmp_path / "ray" / ".cache"
            assert cache.is_dir()  # the units share it
            debris = cache / ".0123abcd.x1.partial.npy"
            debris.write_bytes(b"half-written")
            os.utime(debris, (time.time() - 2 * STALE_AFTER_S,) * 2)

    report = run_plan_ray(plan, workers=2, threads=1, progress=False, on_result=kill_one)
    assert killed and not report.failed and len(report.done) == len(plan.units)
    pids = {r["pid"] for r in report.done}
    assert len(pids) >= 2  # at least two worker processes ran units
    assert all(loads == 1 for loads in report.workers.values())  # the bundle was loaded once per worker
    assert len(report.workers) >= 3  # the killed worker was replaced
    produced = _files(tmp_path / "ray" / "v001")
    assert produced.keys() == reference.keys()
    assert all(produced[k] == reference[k] for k in reference)  # byte-identical (threads pinned to 1)
    assert not (tmp_path / "ray" / ".cache" / ".0123abcd.x1.partial.npy").exists()  # swept
    assert not list((tmp_path / "ray" / "v001").rglob("*.partial*"))


def test_a_unit_that_keeps_failing_is_reported_and_the_rest_completes(tmp_path, bundle, ray_local):
    from core.farm.ray_runner import run_plan_ray

    plan = plan_job(_job(bundle, tmp_path, tmp_path / "out", frames=(1, 2, 3)), chunk=1)
    (tmp_path / "flat.0002.exr").write_bytes(b"not an exr")  # frame 2's unit fails every time
    report = run_plan_ray(plan, workers=2, threads=1, progress=False)
    assert [f["unit"] for f in report.failed] == [1] and report.failed[0]["attempts"] == 3
    assert "flat.0002.exr" in report.failed[0]["error"] and report.retries == 2
    assert sorted(r["unit"] for r in report.done) == [0, 2]


def test_reconstruct_segments_and_render_views_run_on_ray_like_in_process(tmp_path, capture, ray_local):
    from safetensors.torch import load_file

    from core.farm.ray_runner import map_ray
    from core.gaussians.deform import DeformConfig
    from core.gaussians.export import render_sequence
    from core.gaussians.train import ReconConfig, capture_frames, load_views, reconstruct, save_config
    from core.io.exr import read_channels

    cfg = ReconConfig(keyframes=2, gaussians=60, resolution=32, densify=False, kframe_iterations=15,
                      segment_iterations=15, warmup=5, deform=DeformConfig((4,), 2, 4, 8, 1), anchor_weight=1.0,
                      anchor_share=0.5)
    views = load_views(capture, 32)
    for name in ("local", "ray"):
        save_config(tmp_path / name, cfg, str(capture.root))
    reconstruct(capture_frames(capture, 32), cfg, store=tmp_path / "local")  # read from disk a model's share at a time
    reconstruct(views, cfg, store=tmp_path / "ray", segments=False)
    _, failed = map_ray("core.gaussians.train", "train_segment", [(str(tmp_path / "ray"), 0)], workers=2,
                        progress=False)
    assert not failed
    a = load_file(tmp_path / "local" / "segment_000.safetensors")
    b = load_file(tmp_path / "ray" / "segment_000.safetensors")
    for k in a:  # same inputs and random streams; other torch threads may round differently
        np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    cam = capture.manifest.cameras[0]
    frames = [f.frame for f in capture.manifest.frames]
    render_sequence(tmp_path / "local", cam.K, cam.c2w, 32, 32, frames, tmp_path / "views_local")
    results, failed = map_ray("core.gaussians.export", "render_sequence",
                              [(str(tmp_path / "local"), cam.K, cam.c2w, 32, 32, [f], str(tmp_path / "views_ray"))
                               for f in frames], workers=2, progress=False)
    assert not failed and [r[0] for r in results] == [1] * len(frames)
    for f in frames:
        np.testing.assert_array_equal(read_channels(tmp_path / "views_ray" / f"flat.{f:04d}.exr", ["R", "G", "B", "A"]),
                                      read_channels(tmp_path / "views_local" / f"flat.{f:04d}.exr",
                                                    ["R", "G", "B", "A"]))


def test_a_temporal_job_is_planned_only_as_whole_sequences(tmp_path, bundle):
    """Temporal blending carries each frame into the next: units that split the frames or the lights
    would restart or break it, so such plans are refused naming the fix; one unit per camera plans."""
    from core.errors import ValidationError

    job = _job(bundle, tmp_path, tmp_path / "out", temporal=0.5)
    with pytest.raises(ValidationError, match="plan a --temporal job with --chunk 3"):
        plan_job(job, chunk=2)
    with pytest.raises(ValidationError, match="without --light-chunk"):
        plan_job(job, chunk=3, light_chunk=8)
    plan = plan_job(job, chunk=3)
    assert [u.frames for u in plan.units] == [[1, 2, 3]]


def test_ray_starts_the_workers_the_cluster_has_room_for_and_says_when_it_has_none(tmp_path, bundle, ray_local,
                                                                                    caplog):
    """Workers that cannot start (the cluster has no free CPU for them) no longer hang the run: it starts
    those that fit and says so; a worker larger than the whole cluster is a clear error at once."""
    import core.farm.ray_runner as runner
    from core.errors import RelitError

    ray_local.init(num_cpus=1, include_dashboard=False, log_to_driver=False)  # room for one worker of one CPU
    plan = plan_job(_job(bundle, tmp_path, tmp_path / "out", frames=(1, 2)), chunk=1)
    report = runner.run_plan_ray(plan, workers=2, cpus=1, threads=1, progress=False)
    assert len(report.workers) == 1 and not report.failed and len(report.done) == 2
    assert "1 free CPU(s): 1 worker(s) of 1 CPU(s) instead of 2" in caplog.text
    with pytest.raises(RelitError, match="asks for 2 CPU.s. and the cluster has 1"):
        runner.run_plan_ray(plan, workers=1, cpus=2, threads=1, progress=False)
