import json
import os
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from core.errors import MissingChannelError, RelitIOError, ValidationError
from core.io.exr import read_channels, read_info, read_layer, write_exr, write_rgba
from core.io.naming import light_layer_name, new_version_dir, sanitise_name, versions
from core.io.passes import PassMetadata, RelitPasses, read_metadata, read_passes, write_passes


def _passes(rng, n=12, h=24, w=32):
    names = [f"key {i}" if i % 3 else f"{i}rim-light" for i in range(n)]
    layers = {name: (rng.random((h, w, 3)) * 6).astype(np.float32) for name in names}
    return RelitPasses(layers, rng.random((h, w)).astype(np.float32))


def test_twelve_layer_pass_file_round_trip(tmp_path, rng):
    passes = _passes(rng)
    meta = PassMetadata(rig={"version": 1, "lights": []}, bundle_id="tiny", sampler="ddim", steps=4,
                        guidance={"image": 1.5, "lighting": 3.0}, seed=7, input_hash="abc")
    path = write_passes(tmp_path / "relit.1001.exr", passes, meta)
    layers, beauty, alpha = read_passes(path)
    expected_names = sorted(light_layer_name(n) for n in passes.layers)
    assert sorted(layers) == expected_names and len(layers) == 12
    for name, img in passes.layers.items():
        np.testing.assert_array_equal(layers[light_layer_name(name)], img.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(alpha, passes.alpha.astype(np.float16).astype(np.float32))
    # the beauty is the float32 sum rounded once, not a sum of rounded layers
    exact = sum(img.astype(np.float64) for img in passes.layers.values())
    np.testing.assert_array_equal(beauty, passes.beauty().astype(np.float16).astype(np.float32))
    half_sum = sum(img.astype(np.float16).astype(np.float64) for img in passes.layers.values())
    assert np.abs(beauty - exact).mean() < np.abs(half_sum.astype(np.float16) - exact).mean() + 1e-9
    back = read_metadata(path)
    assert back["seed"] == 7 and back["guidance"] == {"image": 1.5, "lighting": 3.0}
    assert back["rig"] == {"version": 1, "lights": []} and back["colour_space"] == "lin_rec709"


def test_pass_file_header_read_by_openexr_itself(tmp_path, rng):
    passes = _passes(rng, n=2)
    passes.data["depth"] = rng.random((24, 32, 1)).astype(np.float32)
    path = write_passes(tmp_path / "p.exr", passes, PassMetadata(rig={}, colour_space="acescg"))
    f = OpenEXR.File(str(path), separate_channels=True)
    header = f.header()
    assert header["compression"] == OpenEXR.ZIP_COMPRESSION
    np.testing.assert_allclose(header["chromaticities"], (0.713, 0.293, 0.165, 0.830, 0.128, 0.044,
                                                          0.32168, 0.33767), atol=1e-6)
    channels = f.channels()
    assert channels["R"].pixels.dtype == np.float16
    assert channels["light_key_1.G"].pixels.dtype == np.float16
    assert channels["depth.V"].pixels.dtype == np.float32  # data stays float32
    assert json.loads(header["relit/rig"]) == {}


def test_layer_names_are_sanitised_and_collisions_rejected(rng):
    assert sanitise_name("key light.01") == "key_light_01"
    assert sanitise_name("3point") == "_3point"
    passes = RelitPasses({"a b": np.zeros((2, 2, 3), np.float32), "a-b": np.zeros((2, 2, 3), np.float32)},
                         np.ones((2, 2), np.float32))
    with pytest.raises(ValidationError, match="both become layer"):
        write_passes("/nonexistent/never.exr", passes, PassMetadata(rig={}))


def test_nan_layer_writes_nothing(tmp_path):
    bad = RelitPasses({"k": np.full((2, 2, 3), np.nan, np.float32)}, np.ones((2, 2), np.float32))
    with pytest.raises(ValidationError, match="NaN"):
        write_passes(tmp_path / "x.exr", bad, PassMetadata(rig={}))
    assert list(tmp_path.iterdir()) == []


def test_a_layer_beyond_half_float_range_writes_nothing(tmp_path):
    """A half-float channel turns anything over 65504 into Inf: refused, not written as Inf; a float
    intermediate holds it (the beauty stays half either way)."""
    layers = {"k": np.full((2, 2, 3), 1e6, np.float32), "fill": np.ones((2, 2, 3), np.float32)}
    with pytest.raises(ValidationError, match="layer 'beauty' reaches 1e\\+06, beyond what a half-float EXR holds"):
        write_passes(tmp_path / "x.exr", RelitPasses(layers, np.ones((2, 2), np.float32)), PassMetadata(rig={}))
    cancelling = {"k": np.full((2, 2, 3), 1e6, np.float32), "fill": np.full((2, 2, 3), -1e6 + 1, np.float32)}
    with pytest.raises(ValidationError, match="layer 'k' reaches"):
        write_passes(tmp_path / "x.exr", RelitPasses(cancelling, np.ones((2, 2), np.float32)), PassMetadata(rig={}))
    assert list(tmp_path.iterdir()) == []
    write_passes(tmp_path / "x.exr", RelitPasses(cancelling, np.ones((2, 2), np.float32)), PassMetadata(rig={}),
                 precision="float")
    np.testing.assert_allclose(read_passes(tmp_path / "x.exr")[0]["light_k"], 1e6)


def test_a_matte_file_is_its_alpha_or_else_its_first_channel(tmp_path):
    """A roto written as RGBA carries the matte in A (RGB black); a grey matte saved with an opaque
    alpha carries it in R; a single-channel matte is that channel. NaN is refused, naming the file."""
    from core.io.images import read_matte

    ramp = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    write_exr(tmp_path / "roto.exr", np.stack([0 * ramp] * 3 + [ramp], -1), ["R", "G", "B", "A"])
    write_exr(tmp_path / "grey.exr", np.stack([ramp] * 3 + [np.ones_like(ramp)], -1), ["R", "G", "B", "A"])
    write_exr(tmp_path / "y.exr", ramp[..., None], ["Y"])
    for name in ("roto", "grey", "y"):
        np.testing.assert_allclose(read_matte(tmp_path / f"{name}.exr"), ramp, atol=1e-3, err_msg=name)
    write_exr(tmp_path / "nan.exr", np.where(ramp > 0.5, np.nan, ramp)[..., None], ["Y"])
    with pytest.raises(RelitIOError, match="nan.exr: the matte has NaN"):
        read_matte(tmp_path / "nan.exr")


def test_failed_write_keeps_the_previous_file_and_leaves_no_partial(tmp_path, monkeypatch, rng):
    import OpenImageIO as oiio

    path = tmp_path / "frame.exr"
    write_rgba(path, np.ones((4, 4, 3), np.float32), np.ones((4, 4), np.float32))
    before = path.read_bytes()
    real_output = oiio.ImageOutput

    class Broken:
        @staticmethod
        def create(name):
            out = real_output.create(name)
            real_write = out.write_image

            class Wrapper:
                def open(self, *a):
                    return out.open(*a)

                def write_image(self, px):
                    real_write(px[:1])
                    raise KeyboardInterrupt("killed mid-frame")

                def geterror(self):
                    return ""

                def close(self):
                    out.close()
            return Wrapper()

    monkeypatch.setattr(oiio, "ImageOutput", Broken)
    with pytest.raises(KeyboardInterrupt):
        write_rgba(path, np.zeros((4, 4, 3), np.float32), np.ones((4, 4), np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["frame.exr"]
    assert path.read_bytes() == before


def test_blender_style_multipart_file_is_read_by_name(tmp_path):
    import OpenImageIO as oiio

    path = str(tmp_path / "blender.exr")
    specs = []
    for part, n in (("ViewLayer.Combined", 4), ("ViewLayer.Combined_key", 4), ("ViewLayer.Depth", 1)):
        spec = oiio.ImageSpec(8, 4, n, "half" if n == 4 else "float")
        spec.channelnames = tuple(f"{part}.{c}" for c in ("RGBA" if n == 4 else "Z"))
        spec.attribute("name", part)
        specs.append(spec)
    out = oiio.ImageOutput.create(path)
    assert out.open(path, specs)
    for i, spec in enumerate(specs):
        if i:
            assert out.open(path, spec, "AppendSubimage")
        out.write_image(np.full((4, 8, spec.nchannels), i + 1, np.float32))
    out.close()

    info = read_info(path)
    assert [p.name for p in info.parts] == ["ViewLayer.Combined", "ViewLayer.Combined_key", "ViewLayer.Depth"]
    assert set(info.layers()) == {"ViewLayer.Combined", "ViewLayer.Combined_key", "ViewLayer.Depth"}
    key = read_layer(path, "ViewLayer.Combined_key", "RGBA")
    assert key.shape == (4, 8, 4) and np.all(key == 2)
    assert np.all(read_channels(path, ["ViewLayer.Depth.Z", "ViewLayer.Combined.R"]) == [3, 1])
    with pytest.raises(MissingChannelError, match="ViewLayer.Combined_fill") as err:
        read_layer(path, "ViewLayer.Combined_fill")
    assert "blender.exr" in str(err.value)


def test_truncated_and_foreign_files_raise_naming_the_file(tmp_path, rng):
    path = tmp_path / "full.exr"
    write_rgba(path, rng.random((64, 64, 3)).astype(np.float32), np.ones((64, 64), np.float32))
    data = path.read_bytes()
    for cut in (0.9, 0.5, 0.02):
        bad = tmp_path / f"cut{int(cut * 100)}.exr"
        bad.write_bytes(data[: int(len(data) * cut)])
        with pytest.raises(RelitIOError) as err:
            read_channels(bad, ["R", "G", "B"])
        assert bad.name in str(err.value)
    text = tmp_path / "notes.exr"
    text.write_text("not an image")
    with pytest.raises(RelitIOError, match="notes.exr"):
        read_info(text)
    with pytest.raises(RelitIOError, match="not found"):
        read_info(tmp_path / "missing.exr")


def test_write_exr_float_data(tmp_path, rng):
    px = rng.normal(size=(3, 5, 2)).astype(np.float32) * 1e5
    path = write_exr(tmp_path / "d.exr", px, ["motion.X", "motion.Y"], ["float", "float"])
    np.testing.assert_array_equal(read_layer(path, "motion", "XY"), px)


def test_versioned_output_folders_never_reuse_a_number(tmp_path):
    first = new_version_dir(tmp_path / "shot")
    (first / "keep.txt").write_text("x")
    second = new_version_dir(tmp_path / "shot")
    (tmp_path / "shot" / "v010").mkdir()
    third = new_version_dir(tmp_path / "shot")
    assert [first.name, second.name, third.name] == ["v001", "v002", "v011"]
    assert (first / "keep.txt").read_text() == "x"
    assert [p.name for p in versions(tmp_path / "shot")] == ["v001", "v002", "v010", "v011"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_outputs_get_the_mode_the_umask_gives(tmp_path, umask, bundle):
    """Atomic writes create a private temporary file; the finished file has 0666 less the umask,
    as a plain open() would give it (checked in a fresh process with that umask)."""
    import subprocess
    import sys

    from tests.conftest import PYTHONPATH

    code = ("import os, sys, numpy as np\n"
            f"os.umask({umask})\n"
            "from core.io.atomic import atomic_write_text\n"
            "from core.io.exr import write_rgba\n"
            "atomic_write_text(sys.argv[1] + '/a.json', '{}')\n"
            "write_rgba(sys.argv[1] + '/b.exr', np.ones((4, 4, 3), np.float32), np.ones((4, 4), np.float32))\n"
            "open(sys.argv[1] + '/plain.txt', 'w').close()\n"
            "from core.model.bundle import read_info, save_bundle\n"
            "from tests.test_model import tiny_pipe\n"
            "save_bundle(sys.argv[1] + '/bundle', tiny_pipe(), read_info(sys.argv[2]))\n")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(bundle)], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=PYTHONPATH), timeout=120)
    assert run.returncode == 0, run.stderr
    expected = 0o666 & ~umask
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == expected  # the reference: a plain open()
    for name in ("a.json", "b.exr"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name
    saved = sorted((tmp_path / "bundle").rglob("*"))  # a bundle: safetensors writes its files private
    assert any(p.suffix == ".safetensors" for p in saved)
    for path in [tmp_path / "bundle", *saved]:
        assert path.stat().st_mode & 0o777 == (0o777 & ~umask if path.is_dir() else expected), path


def test_a_sweep_of_stale_partials_spares_a_writer_still_at_work(tmp_path):
    """A cache folder other runs share: the sweep after a run removes what a killed writer left long
    ago and spares a temporary file another writer touched a moment ago (its rename would fail)."""
    import time

    from core.io.atomic import STALE_AFTER_S, remove_stale_partials

    old, fresh = tmp_path / "a" / ".k1.abc.partial.pt", tmp_path / ".k2.def.partial.pt"
    old.parent.mkdir()
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    long_ago = time.time() - 2 * STALE_AFTER_S
    os.utime(old, (long_ago, long_ago))
    assert remove_stale_partials(tmp_path, STALE_AFTER_S) == 1 and not old.exists() and fresh.exists()
    assert remove_stale_partials(tmp_path) == 1 and not fresh.exists()  # no other writer: every one


def test_an_atomic_write_syncs_its_data_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """A power loss after the rename must not leave an empty file under the final name: the temporary
    file's bytes are synced first, then renamed, then the folder's entry synced (the order recorded)."""
    from core.io import atomic

    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.fspath(src)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic.atomic_write_text(tmp_path / "a.json", "{}")
    tmp = events[1][1]
    assert events == [("fsync", tmp), ("replace", tmp), ("fsync", str(tmp_path))], events
    assert (tmp_path / "a.json").read_text() == "{}"


def test_a_bundle_is_renamed_into_place_only_once_every_file_of_it_is_synced(tmp_path, monkeypatch, bundle):
    """A folder (a bundle, a training checkpoint) is synced file by file, then the folder, before its
    rename, and its parent after: a power loss never leaves a bundle with empty weight files."""
    from core.io import atomic
    from core.model.bundle import read_info, save_bundle
    from tests.test_model import tiny_pipe

    events, real_fsync, real_replace = [], os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                        real_fsync(fd)))
    monkeypatch.setattr(atomic.os, "replace", lambda src, dst: (events.append(("replace", os.fspath(dst))),
                                                                real_replace(src, dst)))
    folder = save_bundle(tmp_path / "b", tiny_pipe(), read_info(bundle))
    rename = events.index(("replace", str(folder)))
    synced = {Path(e).name for e in events[:rename]}
    assert synced >= {p.name for p in folder.rglob("*")} and len(synced) > 5, synced
    assert events[rename + 1:] == [str(tmp_path)]
