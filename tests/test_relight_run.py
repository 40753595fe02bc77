"""`relit relight` jobs: sequences, versions and resume, big plates, the OLAT basis, bad input."""

import json
from dataclasses import replace
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import RelitError, ValidationError
from core.io.exr import read_channels, write_exr, write_rgba
from core.io.passes import read_metadata, read_passes
from core.io.plates import SUBJECT_ATTRIBUTE
from core.jobs import RelightJob
from core.lighting.camera import front_camera_c2w
from core.lighting.hdri import project_to_layout
from core.lighting.layout import builtin_layout
from core.lighting.rig import Environment, Light, LightRig
from core.model.pipeline import RelightOutput
from core.relight_job import run_relight
from tests.conftest import LAYOUT, PYTHONPATH, ROOT, SUBJECT, env_from_function, example_rig
from tests.conftest import relight_job as _job
from tests.conftest import write_plates as _plates
from tests.test_model import RES


def test_sequence_resumes_skips_rerenders_into_a_new_version_and_reuses_an_earlier_one(tmp_path, bundle):
    plates = _plates(tmp_path, [1001, 1002, 1003])
    events = []
    report = run_relight(_job(bundle, plates, tmp_path / "out"), events.append)
    folder = tmp_path / "out" / "v001"
    assert report.folder == folder and [f.frame for f in report.frames] == [1001, 1002, 1003]
    assert sorted(p.name for p in folder.iterdir()) == ["job.json", "relit.1001.exr", "relit.1002.exr",
                                                        "relit.1003.exr"]
    assert report.frames[0].evaluations == 3 * 2  # three lights, plain guidance, two steps
    assert [e.done for e in events if e.stage == "frames"] == [1, 2, 3]
    assert max(e.done for e in events if e.stage == "lights") == 3 * 2
    layers, beauty, alpha = read_passes(folder / "relit.1002.exr")
    assert sorted(layers) == ["light_key", "light_soft"]
    half = layers["light_key"] + layers["light_soft"]
    np.testing.assert_allclose(beauty, half, atol=2e-3 * max(1.0, float(np.abs(half).max())))
    np.testing.assert_array_equal(alpha, read_channels(tmp_path / "flat.1002.exr", ["A"])[..., 0])
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # the same job again: every frame skipped, nothing rewritten
    again = run_relight(_job(bundle, plates, tmp_path / "out"))
    assert again.folder == folder and all(f.skipped for f in again.frames)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".exr"} == \
           {k: v for k, v in before.items() if k.endswith(".exr")}
    # an edited rig renders a new version; the old one is untouched
    edited = run_relight(_job(bundle, plates, tmp_path / "out", rig=example_rig(3.0).to_json()))
    assert edited.folder == tmp_path / "out" / "v002" and not any(f.skipped for f in edited.frames)
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".exr"} == \
           {k: v for k, v in before.items() if k.endswith(".exr")}
    key2 = read_passes(edited.folder / "relit.1002.exr")[0]["light_key"]
    np.testing.assert_allclose(key2, 1.5 * layers["light_key"], rtol=2e-3, atol=1e-3)
    # back to the first rig: its version is reused (every frame skipped, untouched), no v003
    back = run_relight(_job(bundle, plates, tmp_path / "out"))
    assert back.folder == folder and all(f.skipped for f in back.frames)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("v")) == ["v001", "v002"]
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".exr"} == \
           {k: v for k, v in before.items() if k.endswith(".exr")}


def test_a_rig_changing_only_intensity_colour_or_grouping_reuses_cached_predictions(tmp_path, bundle):
    """Each light's prediction is kept in OUT/.cache: a rerun that changes only what is applied after
    the model costs no UNet call and writes the same pixels as a fresh run without the cache."""
    plates = _plates(tmp_path, [1, 2], shift=2)  # two different frames (identical ones share predictions)
    first = run_relight(_job(bundle, plates, tmp_path / "out"))
    assert all(f.evaluations == 3 * 2 for f in first.frames)
    assert len(list((tmp_path / "out" / ".cache").glob("*.npy"))) == 2 * 3  # frames x lights
    rig = example_rig(5.0)
    rig.lights[1].rgb, rig.lights[2].group, rig.lights[2].name = (0.2, 0.9, 0.4), None, "kicker"
    events = []
    edited = run_relight(_job(bundle, plates, tmp_path / "out", rig=rig.to_json()), events.append)
    assert edited.folder.name == "v002" and all(f.evaluations == 0 and not f.skipped for f in edited.frames)
    lights = [(e.frame, e.done, e.total) for e in events if e.stage == "lights"]
    assert lights == [(1, 3 * 2, 3 * 2), (2, 3 * 2, 3 * 2)]  # the progress count reaches its total on cache hits
    fresh = run_relight(_job(bundle, plates, tmp_path / "fresh", rig=rig.to_json(), cache_mb=0))
    assert all(f.evaluations == 3 * 2 for f in fresh.frames) and not (tmp_path / "fresh" / ".cache").exists()
    for a, b in zip(edited.frames, fresh.frames):
        layers_a, beauty_a, _ = read_passes(a.path)
        layers_b, beauty_b, _ = read_passes(b.path)
        assert sorted(layers_a) == ["light_key", "light_kicker", "light_soft"] == sorted(layers_b)
        for name in layers_a:
            np.testing.assert_array_equal(layers_a[name], layers_b[name])
        np.testing.assert_array_equal(beauty_a, beauty_b)
    # a moved light is a new prediction; the unchanged ones still come from the cache
    moved = example_rig()
    moved.lights[0].direction = (0.0, 0.6, 0.8)
    report = run_relight(_job(bundle, plates, tmp_path / "out", rig=moved.to_json()))
    assert all(f.evaluations == 1 * 2 for f in report.frames)


def test_the_light_cache_evicts_the_least_recently_used_and_ignores_a_broken_entry(tmp_path):
    import os

    from core.relight.cache import LightCache

    cache = LightCache(tmp_path / "cache", limit_bytes=0)
    image = np.ones((1, 4, 4, 3), np.float32)
    keys = [cache.key("frame", np.array([0.0, 0.0, float(i)]), np.zeros((1, 2, 2, 2))) for i in range(3)]
    assert len(set(keys)) == 3
    for n, key in enumerate(keys):
        cache.put(key, image * n)
        os.utime(cache.folder / f"{key}.npy", (1000 + n, 1000 + n))
    size = (cache.folder / f"{keys[0]}.npy").stat().st_size
    cache.get(keys[0])  # read: now the most recently used
    cache.limit_bytes = 2 * size
    assert cache.evict() == 1 and cache.get(keys[1]) is None  # the oldest unread one went
    np.testing.assert_array_equal(cache.get(keys[2]), image * 2)
    (cache.folder / f"{keys[0]}.npy").write_bytes(b"not an array")  # a torn or foreign file: a miss
    assert cache.get(keys[0]) is None


class LinearModel:
    """A stand-in model whose prediction is the input times (1 + direction.z): exactly linear, so a
    relit layer must equal the plate times a known constant at any plate size."""

    def latent_shape(self):
        return (12, RES // 2, RES // 2)

    def __call__(self, image, directions=None, sizes=None, **kw):
        k = 1.0 + np.asarray(directions)[:, 2]
        return RelightOutput((image[None] * k[:, None, None, None]).astype(np.float32), len(k))


def test_a_big_plate_is_cropped_relit_and_carried_back_as_a_ratio(tmp_path, bundle):
    from core.model.bundle import read_info

    h, w = 150, 110  # larger than the model (32 px), not square, subject off-centre
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = (((yy - 60) / 40.0) ** 2 + ((xx - 45) / 30.0) ** 2 < 1).astype(np.float32)
    texture = 0.1 + np.random.default_rng(1).random((h, w, 3)).astype(np.float32)  # per-pixel detail
    write_rgba(tmp_path / "plate.exr", texture * alpha[..., None], alpha)
    rig = LightRig([Light("a", "area", (0.0, 0.6, 0.8), 0.0, (1.0, 0.5, 0.25), 2.0),
                    Light("b", "area", (0.6, 0.0, -0.8), 0.3, (1.0, 1.0, 1.0), 1.0)])
    job = _job(bundle, str(tmp_path / "plate.exr"), tmp_path / "out", rig=rig.to_json())
    report = run_relight(job, pipe_and_info=(LinearModel(), read_info(bundle)))
    layers, beauty, out_alpha = read_passes(report.frames[0].path)
    assert beauty.shape == (h, w, 3)
    np.testing.assert_array_equal(out_alpha, alpha)
    source = texture * alpha[..., None]
    # the ratio relit/flat is 1.8 (times colour and intensity) everywhere on the subject, so the
    # full-resolution plate, detail included, comes back scaled by exactly that (within half rounding)
    np.testing.assert_allclose(layers["light_a"], source * 1.8 * 2.0 * np.array([1.0, 0.5, 0.25]),
                               rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(layers["light_b"], source * 0.2, rtol=2e-3, atol=1e-6)
    assert np.all(beauty[alpha == 0] == 0)


def test_olat_basis_reweighted_equals_the_stage_environment(tmp_path, bundle):
    env = env_from_function(16, lambda d: (0.2 + np.exp(5 * (d @ np.array([0.3, -0.8, 0.5]) - 1)))[..., None]
                            * np.array([1.0, 0.8, 0.6]))
    write_rgba(tmp_path / "env.exr", env, np.ones(env.shape[:2], np.float32))
    rot = (0.1, -0.2, 0.7)
    rig = LightRig([], Environment(str(tmp_path / "env.exr"), rot, 1.5), front_camera_c2w(2.0).tolist())
    plates = _plates(tmp_path, [1])
    report = run_relight(_job(bundle, plates, tmp_path / "out", rig=rig.to_json(), basis=True))
    assert report.frames[0].evaluations == len(builtin_layout(LAYOUT)) * 2  # the basis serves the environment
    relit = read_passes(report.folder / "relit.0001.exr")[0]["light_environment"]
    basis_path = report.folder / "relit_basis.0001.exr"
    basis, _, _ = read_passes(basis_path)
    meta = read_metadata(basis_path)
    assert len(meta["basis"]) == len(basis) == len(builtin_layout(LAYOUT)) and meta["stage"]["names"] == list(builtin_layout(LAYOUT).names)
    w = project_to_layout(env.astype(np.float16).astype(np.float32), builtin_layout(LAYOUT), rot, 1.5).weights
    reweighted = sum(basis[f"light_{b['layer']}"] * w[i] for i, b in enumerate(meta["basis"]))
    np.testing.assert_allclose(reweighted, relit, rtol=5e-3, atol=2e-3 * float(relit.max()))


def test_area_strategy_spends_k_inferences_and_conserves_energy(tmp_path, bundle):
    from core.model.bundle import read_info

    env = env_from_function(16, lambda d: (0.5 + 3 * (d[..., 2:] > 0.7)) * np.ones(3))
    write_rgba(tmp_path / "env.exr", env, np.ones(env.shape[:2], np.float32))
    rig = LightRig([], Environment(str(tmp_path / "env.exr")), front_camera_c2w().tolist())
    plates = _plates(tmp_path, [1])
    area = run_relight(_job(bundle, plates, tmp_path / "area", rig=rig.to_json(), hdri_strategy="area",
                            clusters=4))
    assert area.inferences == 4 and area.frames[0].evaluations == 4 * 2
    # with a direction-blind linear model both strategies give (total energy) x plate
    info = read_info(bundle)
    a = run_relight(_job(bundle, plates, tmp_path / "a", rig=rig.to_json(), hdri_strategy="area", clusters=4),
                    pipe_and_info=(DirectionBlind(), info))
    s = run_relight(_job(bundle, plates, tmp_path / "s", rig=rig.to_json(), hdri_strategy="stage"),
                    pipe_and_info=(DirectionBlind(), info))
    la = read_passes(a.frames[0].path)[0]["light_environment"]
    ls = read_passes(s.frames[0].path)[0]["light_environment"]
    np.testing.assert_allclose(la, ls, rtol=2e-3, atol=1e-5)


class DirectionBlind(LinearModel):
    def __call__(self, image, directions=None, sizes=None, **kw):
        return RelightOutput(np.repeat(image[None], len(directions), 0).astype(np.float32), len(directions))


def _assert_nothing_written(out):
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("case", ["nan_hdri", "black_hdri", "unreadable_frame", "unknown_field", "unknown_type",
                                  "other_subject", "strategy_mismatch"])
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, bundle, case):
    plates = _plates(tmp_path, [1, 2], subject="face-0099" if case == "other_subject" else SUBJECT)
    out = tmp_path / "out"
    env = np.ones((8, 16, 3), np.float32)
    rig = example_rig().to_json()
    if case in ("nan_hdri", "black_hdri"):
        env[3, 5] = np.nan if case == "nan_hdri" else env[3, 5]
        write_rgba(tmp_path / "env.exr", env if case == "nan_hdri" else 0 * env, np.ones((8, 16), np.float32))
        rig = LightRig([], Environment(str(tmp_path / "env.exr"))).to_json()
        match = "NaN or Inf" if case == "nan_hdri" else "black everywhere"
    elif case == "unreadable_frame":
        (tmp_path / "flat.0002.exr").write_bytes((tmp_path / "flat.0002.exr").read_bytes()[:100])
        match = "flat.0002.exr"
    elif case == "unknown_field":
        rig["lights"][0]["colour"] = [1, 0, 0]
        match = r"lights\[0\]: unknown field\(s\) \['colour'\]"
    elif case == "unknown_type":
        rig["lights"][1]["type"] = "mesh"
        match = r"lights\[1\].type: 'mesh' is not a light type"
    elif case == "other_subject":
        match = "subject 'face-0099'.*--allow-other-subject"
    else:
        rig = LightRig([], Environment(str(tmp_path / "env.exr"))).to_json()
        write_rgba(tmp_path / "env.exr", env, np.ones((8, 16), np.float32))
        match = "envmap needs an envmap bundle"
    with pytest.raises(RelitError, match=match):
        run_relight(_job(bundle, plates, out, rig=rig, hdri_strategy="envmap" if case == "strategy_mismatch"
                         else "auto"))
    _assert_nothing_written(out)


def test_other_subject_is_allowed_with_a_warning(tmp_path, bundle):
    plates = _plates(tmp_path, [1], subject="face-0099")
    report = run_relight(_job(bundle, plates, tmp_path / "out", allow_other_subject=True))
    assert len(report.frames) == 1 and "face-0099" in report.warnings[0]


def test_a_subject_specific_bundle_on_an_untagged_plate_warns(tmp_path, bundle):
    """A plate with no subject tag may show anyone: the subject-specific bundle still runs (it may be
    its subject, shot without relit's tag), and the report says which subject it knows and the way out."""
    plates = _plates(tmp_path, [1])
    rgb, alpha = read_channels(tmp_path / "flat.0001.exr", ["R", "G", "B"]), read_channels(
        tmp_path / "flat.0001.exr", ["A"])[..., 0]
    write_rgba(tmp_path / "flat.0001.exr", rgb, alpha)  # the same pixels, no relit/subject attribute
    report = run_relight(_job(bundle, plates, tmp_path / "out"))
    assert len(report.frames) == 1 and len(report.warnings) == 1
    assert "no subject tag" in report.warnings[0] and "portrait bundle" in report.warnings[0]
    (tmp_path / "tagged").mkdir()
    tagged = run_relight(_job(bundle, _plates(tmp_path / "tagged", [1]), tmp_path / "tagged_out"))
    assert not any("subject" in w for w in tagged.warnings)  # its own subject: nothing to say


def test_cli_reports_a_bad_rig_with_the_file_and_field(tmp_path, bundle):
    plates = _plates(tmp_path, [1])
    rig = example_rig().to_json()
    rig["lights"][0]["direction"] = [0, 0, 0]
    (tmp_path / "rig.json").write_text(json.dumps(rig))
    run = subprocess.run([sys.executable, "-m", "core.cli", "relight", "--bundle", str(bundle), "--input", plates,
                          "--rig", str(tmp_path / "rig.json"), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert run.returncode == 2
    assert "rig.json: lights[0].direction: is the zero vector" in run.stderr
    _assert_nothing_written(tmp_path / "out")


def test_killed_mid_sequence_leaves_no_partial_file_and_the_rerun_completes(tmp_path, bundle):
    """Killed at a known point (right after frame 2 is reported, through the worker's progress
    events), not after a wall-clock wait: the frames written are whole and a rerun completes."""
    from core.worker_client import WorkerClient

    frames = list(range(1, 9))
    plates = _plates(tmp_path, frames)
    job = _job(bundle, plates, tmp_path / "out", steps=60, batch_size=1)
    job.save(tmp_path / "job.json")
    client = WorkerClient(sys.executable, env={"PYTHONPATH": PYTHONPATH}, cwd=str(ROOT))
    client.handshake()
    running = client.submit("relight", job.to_json())
    while True:
        event = client._next(600)
        assert event is not None and event.get("type") != "error", event
        if event.get("type") == "progress" and event["stage"] == "frames" and event["done"] == 2:
            break
    os.kill(client.proc.pid, signal.SIGKILL)  # frame 3 is under way: 60 steps x 3 lights, batch 1
    client.proc.wait()
    assert not running.finished
    folder = tmp_path / "out" / "v001"
    written = sorted(p.name for p in folder.glob("relit.*.exr"))
    assert 2 <= len(written) < len(frames), "the kill should land mid-sequence"
    for name in written:  # every file under its final name is whole
        read_passes(folder / name)
    cmd = [sys.executable, "-m", "core.cli", "relight", "--job", str(tmp_path / "job.json"), "--quiet"]
    rerun = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=PYTHONPATH), capture_output=True,
                           text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(written)} skipped" in rerun.stdout and "v001" in rerun.stdout
    assert sorted(p.name for p in folder.glob("relit.*.exr")) == [f"relit.{f:04d}.exr" for f in frames]
    assert not [p for p in folder.iterdir() if ".partial" in p.name]


def test_memory_stays_flat_over_twenty_frames(tmp_path, bundle):
    """Frames are streamed: resident memory after frame 20 is within a few MB of after frame 5."""
    plates = _plates(tmp_path, list(range(1, 21)))
    rss = {}

    def sample(event):
        if event.stage == "frames":
            with open("/proc/self/statm") as f:
                rss[event.done] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    run_relight(_job(bundle, plates, tmp_path / "out", steps=1), sample)
    growth = (rss[20] - rss[5]) / 2 ** 20
    assert growth < 8.0, f"resident memory grew {growth:.1f} MiB from frame 5 to 20"


def test_flow_noise_moves_with_the_plate_and_is_part_of_the_hash(tmp_path, bundle):
    plates = _plates(tmp_path, [1, 2, 3], shift=4)
    fixed = run_relight(_job(bundle, plates, tmp_path / "fixed"))
    flow = run_relight(_job(bundle, plates, tmp_path / "flow", noise="flow"))
    h_fixed = [read_metadata(f.path)["input_hash"] for f in fixed.frames]
    h_flow = [read_metadata(f.path)["input_hash"] for f in flow.frames]
    assert len(set(h_fixed + h_flow)) == 6
    again = run_relight(_job(bundle, plates, tmp_path / "flow", noise="flow"))
    assert all(f.skipped for f in again.frames)


def test_job_json_round_trips_and_names_bad_fields(tmp_path):
    job = RelightJob(bundle="b", input="p.####.exr", output="o", rig=example_rig().to_json(), frames="1-3",
                     hdri_strategy="area", clusters=4)
    job.save(tmp_path / "job.json")
    assert RelightJob.load(tmp_path / "job.json") == job
    data = job.to_json()
    with pytest.raises(ValidationError, match=r"bad.json: unknown field\(s\) \['lights'\]"):
        (tmp_path / "bad.json").write_text(json.dumps(dict(data, lights=[])))
        RelightJob.load(tmp_path / "bad.json")
    with pytest.raises(ValidationError, match="hdri_strategy: 'sh' is not one of"):
        RelightJob.from_json(dict(data, hdri_strategy="sh"))
    with pytest.raises(ValidationError, match="clusters: must be an integer >= 1"):
        RelightJob.from_json(dict(data, clusters=0))
    with pytest.raises(ValidationError, match="nothing to render"):
        RelightJob.from_json(dict(data, rig=None))


def test_a_rig_is_parsed_once_between_the_add_on_and_the_exr(tmp_path, bundle, monkeypatch):
    """The add-on's route: the operator builds the job from a LightRig object (no parse), the
    worker parses the request's JSON once, and nothing re-parses it on the way to the passes."""
    plates = _plates(tmp_path, [1])
    camera = front_camera_c2w()
    camera[0, 3] = 0.25  # the job's camera differs from the rig's: the job's wins, decided once
    panel = replace(_job(bundle, plates, tmp_path / "out"), rig=example_rig(), camera_c2w=camera.tolist())
    panel.validate("relit panel")
    request = json.loads(json.dumps(panel.to_json()))
    lights = panel.rig.to_json()["lights"]  # as parsed: directions normalised
    calls = []
    parse = LightRig.from_json.__func__
    monkeypatch.setattr(LightRig, "from_json", classmethod(lambda cls, *a, **k: calls.append(a) or parse(cls, *a, **k)))
    report = run_relight(RelightJob.from_json(request, source="job j1"))
    assert len(calls) == 1 and calls[0][0] == example_rig().to_json()
    meta = read_metadata(report.frames[0].path)
    assert meta["rig"]["camera_c2w"] == camera.tolist() and meta["rig"]["lights"] == lights


def test_write_exr_of_plates_keeps_the_subject_attribute(tmp_path):
    write_exr(tmp_path / "p.exr", np.zeros((4, 4, 4), np.float32), ["R", "G", "B", "A"],
              attributes={SUBJECT_ATTRIBUTE: "face-0003"})
    from core.io.plates import read_plate

    assert read_plate(tmp_path / "p.exr").subject == "face-0003"


@pytest.mark.parametrize("remove", ["unet", "unet/diffusion_pytorch_model.safetensors", "lighting.safetensors"])
def test_an_incomplete_bundle_is_refused_offline_with_the_fix(tmp_path, bundle, remove):
    import shutil

    broken = tmp_path / "bundle"
    shutil.copytree(bundle, broken)
    target = broken / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    plates = _plates(tmp_path, [1])
    run = subprocess.run([sys.executable, "-m", "core.cli", "relight", "--bundle", str(broken), "--input", plates,
                          "--hdri", "forest", "-o", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=PYTHONPATH), timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert str(broken) in run.stderr and "the bundle is incomplete" in run.stderr
    _assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("name", ["../v001/relit", "a/b", "..", ".hidden", "c:\\\\x"])
def test_an_output_name_is_a_file_stem_never_a_path(tmp_path, bundle, name):
    plates = _plates(tmp_path, [1])
    with pytest.raises(RelitError, match="is the output files' stem, not a path"):
        run_relight(_job(bundle, plates, tmp_path / "out", name=name))
    _assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("case", ["truncated_plate", "matte_size", "record_write"])
def test_a_run_that_fails_on_its_first_frame_leaves_no_version_folder(tmp_path, bundle, case, monkeypatch):
    import core.relight_job
    from core.errors import RelitIOError
    from core.io.exr import write_rgba

    plates = _plates(tmp_path, [1, 2])
    matte = None
    if case == "record_write":  # the version's job record cannot be written (disk full, quota)
        def full_disk(path, text):
            raise RelitIOError(f"{path}: no space left on device")
        monkeypatch.setattr(core.relight_job, "atomic_write_text", full_disk)
    elif case == "truncated_plate":
        first = tmp_path / "flat.0001.exr"
        first.write_bytes(first.read_bytes()[:400])  # the header reads, the pixels do not
    else:
        write_rgba(tmp_path / "matte.exr", np.ones((8, 8, 3), np.float32), np.ones((8, 8), np.float32))
        matte = str(tmp_path / "matte.exr")
    with pytest.raises(RelitError):
        run_relight(_job(bundle, plates, tmp_path / "out", matte=matte))
    assert not list((tmp_path / "out").glob("v*")), "a failed run left a version folder behind"


def test_info_reports_an_incomplete_or_inconsistent_bundle(tmp_path, bundle):
    import json
    import shutil

    broken = tmp_path / "b"
    shutil.copytree(bundle, broken)
    shutil.rmtree(broken / "unet")
    run = subprocess.run([sys.executable, "-m", "core.cli", "info", str(broken)], capture_output=True, text=True,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=PYTHONPATH), timeout=120)
    assert run.returncode == 2 and "unet/config.json missing" in run.stderr
    odd = tmp_path / "odd"
    shutil.copytree(bundle, odd)
    data = json.loads((odd / "relit.json").read_text())
    data["conditioning"] = "mystery"
    (odd / "relit.json").write_text(json.dumps(data))
    run = subprocess.run([sys.executable, "-m", "core.cli", "info", str(odd)], capture_output=True, text=True,
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=PYTHONPATH), timeout=120)
    assert run.returncode == 2 and "conditioning 'mystery' contradicts model.conditioning" in run.stderr


def test_a_single_file_plate_keeps_its_frame_number(tmp_path, bundle):
    from core.io.sequence import find_frames

    plates = _plates(tmp_path, [7])
    single = plates.replace("####", "0007")
    assert find_frames(single) == {7: Path(single)}
    (tmp_path / "photo.exr").write_bytes(Path(single).read_bytes())
    assert list(find_frames(str(tmp_path / "photo.exr"))) == [0]  # no number in the name: frame 0
    report = run_relight(_job(bundle, single, tmp_path / "out", frames="7"))
    assert [f.path.name for f in report.frames] == ["relit.0007.exr"]
    with pytest.raises(RelitError, match=r"is a single file \(frame 7\)"):
        run_relight(_job(bundle, single, tmp_path / "out2", frames="8"))


def test_an_auto_bundle_is_the_one_trained_on_the_plates_subject_else_the_portrait_model(tmp_path, bundle, caplog,
                                                                                        monkeypatch):
    import logging
    import shutil

    from core.model import bundle as bundles
    from core.relight_job import choose_bundle

    shipped = tmp_path / "shipped"
    shutil.copytree(bundle, shipped / "default")  # trained on SUBJECT
    for k in ("mine", "other", "untagged"):
        (tmp_path / k).mkdir()
    mine, other, untagged = (_plates(tmp_path / k, [1], subject=s) for k, s in
                             (("mine", SUBJECT), ("other", "face-0042"), ("untagged", "")))
    with pytest.raises(ValidationError, match="portrait bundle is missing"):
        bundles.shipped_bundle_for("face-0042", shipped)
    shutil.copytree(bundle, shipped / "portrait")
    assert bundles.shipped_bundle_for(SUBJECT, shipped)[0] == shipped / "default"
    assert bundles.shipped_bundle_for("face-0042", shipped)[0] == shipped / "portrait"
    assert bundles.shipped_bundle_for(None, shipped)[0] == shipped / "portrait"

    real = bundles.shipped_bundle_for
    monkeypatch.setattr(bundles, "shipped_bundle_for", lambda subject, **kw: real(subject, shipped, **kw))
    with caplog.at_level(logging.INFO, logger="core.relight_job"):
        chosen = {k: Path(choose_bundle(_job("auto", p, tmp_path / "out"))[0].bundle)
                  for k, p in (("mine", mine), ("other", other), ("untagged", untagged))}
        named = choose_bundle(_job(str(bundle), untagged, tmp_path / "out"))
        told = choose_bundle(replace(_job("auto", untagged, tmp_path / "out"), subject=SUBJECT))[0].bundle
    assert chosen == {"mine": shipped / "default", "other": shipped / "portrait", "untagged": shipped / "portrait"}
    assert named[0].bundle == str(bundle) and named[1] is None and Path(told) == shipped / "default"
    assert "general portrait model" in caplog.text and "'face-0042'" in caplog.text


def test_temporal_blending_is_the_reference_blend_of_the_unblended_run_and_resumes_exactly(tmp_path, bundle):
    """--temporal 0.5 on a panning plate: each frame's layers equal core.temporal.blend_sequence applied to
    the unblended run's layers (one flow for all layers, so they still sum to the beauty), within half
    rounding; the header records the share and the noise mode; a frame's hash chains the frames before it,
    so a rerun skips everything, and a run killed after frame 2 and resumed writes the same files."""
    from core.io.plates import read_plate
    from core.temporal.blend import blend_sequence

    frames = [1, 2, 3, 4]
    plates = _plates(tmp_path, frames, shift=3)
    plain = run_relight(_job(bundle, plates, tmp_path / "plain"))
    blended = run_relight(_job(bundle, plates, tmp_path / "blended", temporal=0.5))
    raw = [read_passes(f.path) for f in plain.frames]
    names = sorted(raw[0][0])
    flat = [read_plate(tmp_path / f"flat.{f:04d}.exr").rgb for f in frames]
    reference = blend_sequence([np.concatenate([r[0][k] for k in names], -1) for r in raw], flat, 0.5)
    for f, ref in zip(blended.frames, reference):
        layers, beauty, _ = read_passes(f.path)
        got = np.concatenate([layers[k] for k in names], -1)
        np.testing.assert_allclose(got, ref, rtol=4e-3, atol=2e-3 * float(np.abs(ref).max()))
        np.testing.assert_allclose(sum(layers.values()), beauty, rtol=2e-3, atol=1e-3)
        meta = read_metadata(f.path)
        assert meta["temporal"] == 0.5 and meta["noise"] == "fixed"
    moved = np.abs(reference[-1] - np.concatenate([raw[-1][0][k] for k in names], -1)).max()
    assert moved > 1e-3, "the blend changed nothing: the test could not tell"
    hashes = [read_metadata(f.path)["input_hash"] for f in blended.frames]
    assert hashes != [read_metadata(f.path)["input_hash"] for f in plain.frames]
    assert all(f.skipped for f in run_relight(_job(bundle, plates, tmp_path / "blended", temporal=0.5)).frames)
    # resume: frames 3 and 4 removed (a run killed after frame 2), the rerun carries frame 2 from its file
    first = {f.frame: f.path.read_bytes() for f in blended.frames}
    for f in blended.frames[2:]:
        f.path.unlink()
    resumed = run_relight(_job(bundle, plates, tmp_path / "blended", temporal=0.5))
    assert [f.skipped for f in resumed.frames] == [True, True, False, False]
    assert all(f.path.read_bytes() == first[f.frame] for f in resumed.frames)
    # a changed frame 1 changes the history of every later frame: nothing is skipped
    write_exr(tmp_path / "flat.0001.exr", np.concatenate([flat[0] * 0.9, (flat[0][..., :1] > 0)], -1).astype(
        np.float32), ["R", "G", "B", "A"])
    changed = run_relight(_job(bundle, plates, tmp_path / "blended", temporal=0.5))
    assert not any(f.skipped for f in changed.frames)


def test_samples_of_a_deterministic_sampling_are_identical_and_the_report_says_so(tmp_path):
    """At 0 steps a refine bundle samples its mean pass alone: averaging several samples averages one
    prediction with itself. The passes equal one sample's and the report names the waste."""
    from core.model.bundle import save_bundle
    from tests.test_model import _refine_bundle, tiny_pipe

    refine, info = _refine_bundle(tiny_pipe(), steps=0, consistency="none")
    info.subject = SUBJECT
    folder = save_bundle(tmp_path / "mean", refine, info)
    plates = _plates(tmp_path, [1])
    one = run_relight(_job(folder, plates, tmp_path / "one", steps=None))
    two = run_relight(_job(folder, plates, tmp_path / "two", steps=None, samples=2))
    assert not one.warnings and len(two.warnings) == 1 and "samples 2" in two.warnings[0]
    assert two.frames[0].evaluations == 2 * one.frames[0].evaluations == 2 * 3  # three lights, one pass each
    a, _, _ = read_passes(one.frames[0].path)
    b, _, _ = read_passes(two.frames[0].path)
    for name in a:  # the same prediction (batched twice as wide: float rounding, then written as half)
        np.testing.assert_allclose(a[name], b[name], rtol=2e-3, atol=1e-6)


def test_a_hand_edit_of_a_bundles_calibration_is_seen_by_a_rerun_and_an_edit_of_its_provenance_is_not(
        tmp_path, bundle):
    """The bundle's hash covers what it predicts with (weights, tone, exposures, stage calibration),
    not who made it: a rerun after editing the exposure in relit.json relights into a new version;
    after editing the licence it skips every frame."""
    import shutil

    from core.model.bundle import BUNDLE_JSON, read_info

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    plates = _plates(tmp_path, [1, 2])
    first = run_relight(_job(copy, plates, tmp_path / "out"))
    record = json.loads((copy / BUNDLE_JSON).read_text())
    sha = read_info(copy).sha256
    (copy / BUNDLE_JSON).write_text(json.dumps({**record, "licence": "CC-BY-4.0 (edited)"}))
    assert read_info(copy).sha256 == sha
    again = run_relight(_job(copy, plates, tmp_path / "out"))
    assert again.folder == first.folder and all(f.skipped for f in again.frames)
    record["exposure"]["image"] *= 2
    (copy / BUNDLE_JSON).write_text(json.dumps(record))
    assert read_info(copy).sha256 != sha
    edited = run_relight(_job(copy, plates, tmp_path / "out"))
    assert edited.folder == tmp_path / "out" / "v002" and not any(f.skipped for f in edited.frames)
    edited_sha = read_info(copy).sha256
    scheduler = next(copy.glob("scheduler/*.json"))  # a part's config is what it predicts with too
    scheduler.write_text(scheduler.read_text().replace("{", '{"edited": 1, ', 1))
    assert read_info(copy).sha256 != edited_sha


def test_a_frame_killed_between_its_basis_and_its_passes_is_made_again_in_the_same_version(tmp_path, bundle):
    """A run that writes the OLAT basis and the passes, killed after frame 2's basis file: the rerun keeps
    its version, skips frame 1 and makes frame 2 again, with the bytes an uninterrupted run writes."""
    plates = _plates(tmp_path, [1, 2])
    first = run_relight(_job(bundle, plates, tmp_path / "out", basis=True))
    folder = first.folder
    written = {p.name: p.read_bytes() for p in folder.glob("*.exr")}
    assert len(written) == 4
    assert (folder / "relit_basis.0002.exr").exists()
    (folder / "relit.0002.exr").unlink()  # the kill: frame 2's basis is on disk, its passes are not
    again = run_relight(_job(bundle, plates, tmp_path / "out", basis=True))
    assert again.folder == folder and [f.skipped for f in again.frames] == [True, False]
    assert {p.name: p.read_bytes() for p in folder.glob("*.exr")} == written
    assert not (tmp_path / "out" / "v002").exists()
