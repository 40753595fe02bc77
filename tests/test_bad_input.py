"""The bad-input battery (issue 26): every CLI verb and the worker, given corrupt, truncated,
wrong-channel, NaN/Inf, empty, huge-header, binary and hostile-path inputs.

For each case: exit code 2 (the worker: an error event), a message that names the input, no
traceback, and no new or changed file anywhere in the case's folder (inputs and output alike).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PYTHONPATH, ROOT, example_rig, run_relit

BUNDLE = ROOT / "bundle" / "default"


def _write_inputs(d: Path) -> None:
    """Every input the cases refer to, in one folder (built once, copied per case)."""
    from core.io.exr import write_exr, write_rgba
    from core.io.plates import SUBJECT_ATTRIBUTE

    subject = json.loads((BUNDLE / "relit.json").read_text())["subject"]
    tag = {SUBJECT_ATTRIBUTE: subject}
    rgb, alpha = np.full((16, 16, 3), 0.5, np.float32), np.ones((16, 16), np.float32)
    write_rgba(d / "good.exr", rgb, alpha, tag)
    write_rgba(d / "seq.0001.exr", rgb, alpha, tag)
    nan = rgb.copy()
    nan[3, 4] = np.nan
    write_rgba(d / "nan.exr", nan, alpha, tag)
    inf = rgb.copy()
    inf[5, 6, 1] = np.inf
    write_rgba(d / "inf.exr", inf, alpha, tag)
    write_exr(d / "xyz.exr", np.ones((32, 32, 3), np.float32), ["X", "Y", "Z"], ["float"] * 3)
    write_rgba(d / "tiny.exr", np.ones((1, 1, 3), np.float32), np.ones((1, 1), np.float32))
    write_exr(d / "matte_small.exr", np.ones((8, 8, 1), np.float32), ["A"], ["float"])
    data = (d / "good.exr").read_bytes()
    (d / "truncated.exr").write_bytes(data[: len(data) // 2])
    (d / "empty.exr").write_bytes(b"")
    (d / "garbage.exr").write_bytes(b"\x76\x2f\x31\x01" + bytes(range(256)) * 4)  # EXR magic, then noise
    (d / "huge.exr").write_bytes(_huge_header(data))
    (d / "binary.bin").write_bytes(bytes(range(256)) * 4)
    (d / "folder").mkdir()
    (d / "file").write_text("")
    (d / "list.json").write_text("[1, 2, 3]")
    (d / "cut.json").write_text('{"lights": [{"name": "key", "type": "SUN"')
    rig = example_rig().to_json()
    rig["lights"][0]["intensity"] = -3.0
    (d / "negative_rig.json").write_text(json.dumps(rig))
    rig = example_rig().to_json()
    rig["lights"][0]["direction"] = [0.0, 0.0, 0.0]
    (d / "zero_dir_rig.json").write_text(json.dumps(rig))
    (d / "rig.json").write_text(json.dumps(example_rig().to_json()))
    (d / "text.hdr").write_text("this is not an image")
    graphs = {
        "g_nodes": {"nodes": {"a": 1}},
        "g_name": {"nodes": [{"name": 3, "type": "Read", "path": "x.exr"}]},
        "g_range": {"nodes": [{"name": "r", "type": "Read", "path": "x.####.exr", "first": 1}]},
        "g_missing": {"nodes": [{"name": "r", "type": "Read", "path": str(d / "nowhere.exr")}]},
        "g_type": {"nodes": [{"name": "r", "type": "Blur", "input": "x"}]},
        "g_over_input": {"nodes": [{"name": "r", "type": "Read", "path": str(d / "good.exr")},
                                   {"name": "s", "type": "Shuffle", "inputs": ["r"]},
                                   {"name": "w", "type": "Write", "inputs": ["s"], "path": str(d / "good.exr")}]},
        "g_over_file": {"nodes": [{"name": "r", "type": "Read", "path": str(d / "good.exr")},
                                  {"name": "s", "type": "Shuffle", "inputs": ["r"]},
                                   {"name": "w", "type": "Write", "inputs": ["s"], "path": str(d / "nan.exr")}]},
        "g_into_folder": {"nodes": [{"name": "r", "type": "Read", "path": str(d / "good.exr")},
                                    {"name": "s", "type": "Shuffle", "inputs": ["r"]},
                                   {"name": "w", "type": "Write", "inputs": ["s"], "path": str(d / "folder")}]},
    }
    for name, graph in graphs.items():
        (d / f"{name}.json").write_text(json.dumps(graph))
    for name, damage in [("no_unet", "unet"), ("no_lighting", "lighting.safetensors"),
                         ("truncated_weights", None), ("bad_conditioning", None), ("diffusion", None)]:
        b = d / f"bundle_{name}"
        shutil.copytree(BUNDLE, b)
        if damage == "unet":
            shutil.rmtree(b / "unet")
        elif damage:
            (b / damage).unlink()
    w = d / "bundle_truncated_weights" / "unet" / "diffusion_pytorch_model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 3])
    meta = json.loads((d / "bundle_bad_conditioning" / "relit.json").read_text())
    meta["conditioning"] = "telepathy"
    (d / "bundle_bad_conditioning" / "relit.json").write_text(json.dumps(meta))
    meta = json.loads((d / "bundle_diffusion" / "relit.json").read_text())
    meta["recipe"]["objective"] = {"name": "diffusion"}  # sampled by steps only: no mean pass to stop at
    meta["recipe"]["steps"] = 1  # a valid recipe: the job's --steps 0 is what must be refused
    (d / "bundle_diffusion" / "relit.json").write_text(json.dumps(meta))
    job = {"bundle": str(BUNDLE), "input": str(d / "good.exr"), "output": str(d / "out"),
           "rig": example_rig().to_json(), "colour": "purple"}
    (d / "job_unknown_key.json").write_text(json.dumps(job))
    job = {"bundle": str(d / "bundle_diffusion"), "input": str(d / "good.exr"), "output": str(d / "out"),
           "rig": example_rig().to_json(), "steps": 0}
    (d / "job_zero_steps.json").write_text(json.dumps(job))
    (d / "capture").mkdir()
    (d / "capture" / "manifest.json").write_text("{ not json")


def _huge_header(data: bytes) -> bytes:
    """good.exr with its dataWindow claiming 2^30 x 2^30 pixels (the file stays a few hundred bytes)."""
    key = b"dataWindow\x00box2i\x00" + (16).to_bytes(4, "little")
    at = data.index(key) + len(key)
    box = np.frombuffer(data[at:at + 16], np.int32).copy()
    box[2:] = 2 ** 30
    return data[:at] + box.tobytes() + data[at + 16:]


def _cases(d: Path) -> dict[str, tuple[list[str], str]]:
    """Each case: (relit arguments, what the error must say). ``d`` holds the inputs; out goes to d/out."""
    out, good = str(d / "out"), str(d / "good.exr")
    relight = ["relight", "--input", good, "--hdri", "forest"]

    def plate(name: str) -> list[str]:
        return ["relight", "--input", str(d / name), "--hdri", "forest", "-o", out]

    def with_bundle(name: str) -> list[str]:
        return [*relight, "--bundle", str(d / name), "-o", out]

    def comp(name: str) -> list[str]:
        return ["comp", str(d / name)]

    return {
        # relit info
        "info_missing": (["info", str(d / "nowhere.exr")], "nowhere.exr: file not found"),
        "info_binary_exr": (["info", str(d / "garbage.exr")], "garbage.exr"),
        "info_empty": (["info", str(d / "empty.exr")], "empty.exr"),
        "info_truncated": (["info", str(d / "truncated.exr")], "truncated.exr"),
        "info_plain_folder": (["info", str(d / "folder")],
                              "folder: neither a capture set (manifest.json) nor a model bundle"),
        "info_bad_manifest": (["info", str(d / "capture")], "manifest.json: not valid JSON"),
        "info_bundle_no_unet": (["info", str(d / "bundle_no_unet")], "bundle_no_unet: the bundle is incomplete"),
        "info_cut_json": (["info", str(d / "cut.json")], "cut.json: not valid JSON"),
        "info_binary_json": (["info", str(d / "binary.bin")], "binary.bin"),
        # relit rig
        "rig_unknown_hdri": (["rig", "--hdri", "moon", "-o", str(d / "out" / "r.json")], "moon"),
        "rig_text_hdri": (["rig", "--hdri", str(d / "text.hdr"), "-o", str(d / "out" / "r.json")], "text.hdr"),
        "rig_missing_hdri": (["rig", "--hdri", str(d / "nowhere.hdr"), "-o", str(d / "out" / "r.json")],
                             "nowhere.hdr: file not found"),
        "rig_bad_rotation": (["rig", "--hdri", "forest", "--rotation", "1,2", "-o", str(d / "out" / "r.json")],
                             "--rotation"),
        "rig_output_is_a_folder": (["rig", "--hdri", "forest", "-o", str(d / "folder")], "folder"),
        # relit relight: plates
        "plate_missing": (plate("nowhere.exr"), "nowhere.exr"),
        "plate_empty": (plate("empty.exr"), "empty.exr"),
        "plate_truncated": (plate("truncated.exr"), "truncated.exr"),
        "plate_garbage": (plate("garbage.exr"), "garbage.exr"),
        "plate_huge_header": (plate("huge.exr"), "huge.exr"),
        "plate_nan": (plate("nan.exr"), "nan.exr: 1 pixel(s) are NaN or Inf (first at x=4, y=3)"),
        "plate_inf": (plate("inf.exr"), "inf.exr: 1 pixel(s) are NaN or Inf (first at x=6, y=5)"),
        "plate_xyz": (plate("xyz.exr"), "has channels ['X', 'Y', 'Z'] and no R, G, B"),
        "plate_1x1": (plate("tiny.exr"), "the plate is 1x1 pixels"),
        "plate_is_a_folder": (plate("folder"), "folder"),
        "plate_binary": (plate("binary.bin"), "binary.bin"),
        "matte_wrong_size": ([*relight, "--matte", str(d / "matte_small.exr"), "-o", out], "matte_small.exr"),
        "matte_missing": ([*relight, "--matte", str(d / "nowhere.exr"), "-o", out], "nowhere.exr"),
        "frames_not_in_plate": (["relight", "--input", str(d / "seq.####.exr"), "--hdri", "forest",
                                 "--frames", "5-6", "-o", out], "seq.####.exr"),
        # relit relight: rigs, bundles, names, outputs, jobs
        "rig_binary": (["relight", "--input", good, "--rig", str(d / "binary.bin"), "-o", out],
                       "binary.bin: not a text file"),
        "rig_folder": (["relight", "--input", good, "--rig", str(d / "folder"), "-o", out],
                       "folder: is a folder; give the JSON file itself"),
        "rig_cut_json": (["relight", "--input", good, "--rig", str(d / "cut.json"), "-o", out],
                         "cut.json: not valid JSON"),
        "rig_not_an_object": (["relight", "--input", good, "--rig", str(d / "list.json"), "-o", out], "list.json"),
        "rig_negative_intensity": (["relight", "--input", good, "--rig", str(d / "negative_rig.json"), "-o", out],
                                   "negative_rig.json"),
        "rig_zero_direction": (["relight", "--input", good, "--rig", str(d / "zero_dir_rig.json"), "-o", out],
                               "zero_dir_rig.json"),
        "hdri_text": ([*relight[:3], "--hdri", str(d / "text.hdr"), "-o", out], "text.hdr"),
        "bundle_is_a_plate": (with_bundle("good.exr"), "a model bundle is a folder"),
        "bundle_missing": (with_bundle("nowhere"), "nowhere"),
        "bundle_no_unet": (with_bundle("bundle_no_unet"), "bundle_no_unet"),
        "bundle_no_lighting": (with_bundle("bundle_no_lighting"), "lighting.safetensors"),
        "bundle_truncated_weights": (with_bundle("bundle_truncated_weights"), "diffusion_pytorch_model.safetensors"),
        "bundle_unknown_conditioning": (with_bundle("bundle_bad_conditioning"), "telepathy"),
        "delight_not_a_delighter": ([*relight, "--delight", str(ROOT / "bundle" / "portrait-olat"), "-o", out],
                                    "is not a delighter"),
        "delight_missing": ([*relight, "--delight", str(d / "nowhere"), "-o", out], "nowhere"),
        "name_escapes": ([*relight, "--name", "../v001/relit", "-o", out], "--name"),
        "name_absolute": ([*relight, "--name", "/tmp/relit", "-o", out], "--name"),
        "output_is_a_file": ([*relight, "-o", str(d / "file")], "is a file; relit writes version folders"),
        "cuda_on_cpu": ([*relight, "--device", "cuda", "-o", out], "--device cuda: this torch has no usable CUDA"),
        "bad_steps": ([*relight, "--steps", "-1", "-o", out], "--steps"),
        "zero_steps_without_a_mean_pass": ([*relight, "--bundle", str(d / "bundle_diffusion"), "--steps", "0", "-o",
                                            out], "the 'diffusion' objective needs at least 1"),
        "job_binary": (["relight", "--job", str(d / "binary.bin")], "binary.bin"),
        "job_unknown_key": (["relight", "--job", str(d / "job_unknown_key.json")], "colour"),
        # relit comp
        "comp_binary": (comp("binary.bin"), "binary.bin: not a text file"),
        "comp_folder": (comp("folder"), "folder: is a folder"),
        "comp_nodes_not_a_list": (comp("g_nodes.json"), "nodes: must be a list"),
        "comp_integer_node_name": (comp("g_name.json"), "nodes[0].name: must be a string"),
        "comp_first_without_last": (comp("g_range.json"), "give both first and last"),
        "comp_read_missing": (comp("g_missing.json"), "nowhere.exr"),
        "comp_unknown_node_type": (comp("g_type.json"), "Blur"),
        "comp_write_over_its_input": (comp("g_over_input.json"), "good.exr is what node 'r' reads"),
        "comp_write_over_a_file": (comp("g_over_file.json"), "nan.exr exists; relit does not replace"),
        "comp_write_into_a_folder": (comp("g_into_folder.json"), "folder is a folder"),
        # the other verbs
        "train_missing_capture": (["train", str(d / "nowhere"), "-o", out], "nowhere"),
        "train_bad_manifest": (["train", str(d / "capture"), "-o", out], "manifest.json: not valid JSON"),
        "train_plate_as_capture": (["train", good, "-o", out], "good.exr"),
        "synth_unknown_layout": (["synth", "--layout", "bogus", "-o", out], "bogus"),
        "synth_zero_resolution": (["synth", "--res", "0", "-o", out], "--res"),
        "plan_binary_job": (["plan", str(d / "binary.bin"), "--chunk", "2", "-o", str(d / "out" / "units.json")],
                            "binary.bin"),
        "plan_zero_steps_without_a_mean_pass": (["plan", str(d / "job_zero_steps.json"), "--chunk", "1", "-o",
                                                 str(d / "out" / "units.json")],
                                                "the 'diffusion' objective needs at least 1"),
        "run_unit_missing_plan": (["run-unit", str(d / "nowhere.json"), "--index", "0"], "nowhere.json"),
        "reconstruct_missing": (["reconstruct", str(d / "nowhere"), "-o", out], "manifest.json: not found"),
        "render_views_missing": (["render-views", str(d / "nowhere"), "-o", out], "nowhere"),
        "check_consistency_bad_plate": (["check-consistency", "--bundle", str(BUNDLE), "--input",
                                         str(d / "garbage.exr")], "garbage.exr"),
        "demo_output_is_a_file": (["demo", "-o", str(d / "file")], "file"),
        "import_stage_binary": (["import-stage", str(d / "binary.bin"), "-o", out], "binary.bin"),
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad_inputs")
    _write_inputs(d)
    return d


def _snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> content hash of every file (and folder) under ``folder``."""
    snap = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        snap[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


CASES = list(_cases(Path("/x")))


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, inputs, case):
    d = tmp_path / "case"
    shutil.copytree(inputs, d, symlinks=True)
    before = _snapshot(d)
    args, says = _cases(d)[case]
    run = run_relit(*args, cwd=tmp_path)
    assert run.returncode == 2, (run.returncode, run.stderr[-3000:])
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert says in run.stderr, run.stderr[-3000:]
    assert run.stderr.count("error:") == 1, run.stderr[-3000:]  # one line: relit's, or argparse's on a flag
    assert _snapshot(d) == before
    assert list(tmp_path.iterdir()) == [d]  # nothing written beside it (the working directory)


def test_bad_jobs_sent_to_the_worker_are_error_events_and_it_keeps_serving(tmp_path, inputs):
    """The same inputs through the worker: each job ends in an error event naming the input, the worker
    answers a ping afterwards, and nothing is written."""
    d = tmp_path / "case"
    shutil.copytree(inputs, d, symlinks=True)
    before = _snapshot(d)
    rig = example_rig().to_json()
    base = {"bundle": str(BUNDLE), "input": str(d / "good.exr"), "output": str(d / "out"), "rig": rig}
    jobs = {
        "w_plate_nan": (dict(base, input=str(d / "nan.exr")), "nan.exr"),
        "w_plate_truncated": (dict(base, input=str(d / "truncated.exr")), "truncated.exr"),
        "w_bundle_no_unet": (dict(base, bundle=str(d / "bundle_no_unet")), "bundle_no_unet"),
        "w_name_escapes": (dict(base, name="../v001/relit"), "name"),
        "w_rig_not_an_object": (dict(base, rig=[1, 2]), "rig"),
        "w_unknown_key": (dict(base, colour="purple"), "colour"),
    }
    lines = [json.dumps({"id": k, "op": "relight", "params": job}) for k, (job, _) in jobs.items()]
    lines.append(json.dumps({"id": "p", "op": "ping"}))
    proc = subprocess.run([sys.executable, "-m", "core.worker"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env=dict(os.environ, PYTHONPATH=PYTHONPATH))
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    errors = {e["id"]: e for e in events if e["type"] == "error"}
    for key, (_, says) in jobs.items():
        assert key in errors, (key, events)
        assert says in errors[key]["message"] and "Traceback" not in errors[key]["message"], errors[key]
    assert any(e["type"] == "result" and e["id"] == "p" for e in events)
    assert _snapshot(d) == before
