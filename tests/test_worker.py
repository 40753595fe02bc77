"""The JSON-lines worker (DESIGN.md contract 5) through the real process and client."""

import os
import re
import sys

import pytest

from core.io.passes import read_passes
from core.worker_client import WorkerClient, WorkerError
from tests.conftest import PYTHONPATH, ROOT, relight_job, write_plates

ENV = {"PYTHONPATH": PYTHONPATH}


@pytest.fixture
def client(tmp_path):
    c = WorkerClient(sys.executable, env=ENV, cwd=str(ROOT), log_path=tmp_path / "worker.log")
    c.handshake()
    yield c
    c.close()


def _events(client):
    out = []
    while (e := client._next(0)) is not None:
        out.append(e)
    return out


def test_a_job_runs_reports_progress_and_writes_a_log(tmp_path, bundle, client):
    assert client.hello["protocol"] == 1 and client.hello["pid"] == client.proc.pid
    plates = write_plates(tmp_path, [1, 2])
    job = client.submit("relight", relight_job(bundle, plates, tmp_path / "out").to_json())
    seen = []
    while not job.finished:
        event = client._next(60)
        assert event is not None and event.get("kind") != "ProtocolError", event  # stdout is pure protocol
        seen.append(event)
        client.update(job, event)
    assert job.error is None, job.error
    frames = [e for e in seen if e["type"] == "progress" and e["stage"] == "frames"]
    assert [e["done"] for e in frames] == [1, 2] and all(e["total"] == 2 for e in frames)
    assert all(set(e) >= {"id", "type", "stage", "done", "total", "eta"} for e in seen if e["type"] == "progress")
    paths = [f["path"] for f in job.result["frames"]]
    layers, _, _ = read_passes(paths[0])
    assert sorted(layers) == ["light_key", "light_soft"]
    logs = list((tmp_path / "out" / "logs").glob("job-*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert f"job {job.id}: relight {plates}" in text and "done, 2 frame(s)" in text


def test_cancel_stops_between_steps_and_the_worker_keeps_serving(tmp_path, bundle, client):
    plates = write_plates(tmp_path, list(range(1, 6)))
    job = client.submit("relight", relight_job(bundle, plates, tmp_path / "out", steps=200, batch_size=1).to_json())
    while job.done == 0 and not job.finished:
        client.update(job, client._next(60))
    client.cancel(job)
    client.wait(job, timeout=60)
    assert job.cancelled and "cancelled" in job.error
    out = tmp_path / "out"  # a run cancelled before its first frame leaves no empty version folder behind
    written = list(out.rglob("relit.*.exr")) if out.exists() else []
    assert len(written) < 5 and not (out.exists() and list(out.rglob("*.partial*")))
    bad = relight_job(bundle, plates, tmp_path / "out2").to_json()
    bad["rig"]["lights"][0]["type"] = "laser"
    job2 = client.wait(client.submit("relight", bad), timeout=60)
    assert "lights[0].type: 'laser' is not a light type" in job2.error and not job2.cancelled
    client.send({"id": "p", "op": "ping"})
    assert any(e.get("result") == {"pong": True} for e in [client._next(30)])


def test_a_crashed_worker_is_reported(tmp_path, bundle, client):
    plates = write_plates(tmp_path, list(range(1, 4)))
    job = client.submit("relight", relight_job(bundle, plates, tmp_path / "out", steps=300, batch_size=1).to_json())
    while job.done == 0 and not job.finished:
        client.update(job, client._next(60))
    client.proc.kill()
    client.wait(job, timeout=30)
    assert "exited" in job.error
    with pytest.raises(WorkerError, match="has exited"):
        client.submit("ping", {})


def test_a_missing_interpreter_is_a_clear_error(tmp_path):
    with pytest.raises(WorkerError, match="cannot start the relit worker with '/nonexistent/python'"):
        WorkerClient("/nonexistent/python")
    with pytest.raises(WorkerError, match="did not say hello.*is relit installed"):
        # the base interpreter of this virtual environment has no relit installed
        WorkerClient(os.path.join(sys.base_prefix, "bin", "python3"), env={"PYTHONPATH": ""}, cwd=str(tmp_path),
                     start_timeout=20).handshake()
    # asynchronously, the same failure reaches the job
    client = WorkerClient(os.path.join(sys.base_prefix, "bin", "python3"), env={"PYTHONPATH": ""}, cwd=str(tmp_path))
    try:
        message = client.wait(client.submit("relight", {}), timeout=30).error
    except WorkerError as e:  # it may already have exited when the request is sent
        message = str(e)
    assert re.search(r"relit (is )?installed", message), message


def test_any_bad_line_is_answered_and_the_worker_keeps_serving(tmp_path, bundle):
    """JSON of the wrong type, invalid UTF-8, a line over the size limit, a cancel for an unknown id:
    each gets an error event; the worker goes on, and a later job with the cancelled id runs."""
    import json
    import subprocess

    from core.worker import MAX_LINE

    plates = write_plates(tmp_path, [1])
    job = {"id": "j9", "op": "relight", "params": relight_job(bundle, plates, tmp_path / "out").to_json()}
    lines = [b"[1, 2]\n", b'"text"\n', b"42\n", b"\xff\xfe not utf-8\n", b"{not json\n",
             b'{"id": "x", "params": {}}\n' + b"x" * (MAX_LINE + 10) + b"\n",
             b'{"id": "j9", "op": "cancel"}\n', (json.dumps(job) + "\n").encode(),
             b'{"id": "p", "op": "ping"}\n']
    proc = subprocess.run([sys.executable, "-m", "core.worker"], input=b"".join(lines), capture_output=True,
                          env=dict(os.environ, **ENV), cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    events = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert events[0]["type"] == "hello"
    errors = [e for e in events if e["type"] == "error"]
    kinds = [e["message"].split(":")[0] for e in errors[:7]]
    assert [e["kind"] for e in errors[:7]] == ["ProtocolError"] * 7, errors
    assert "a request is a JSON object" in errors[0]["message"] and "list" in errors[0]["message"]
    assert "not UTF-8" in kinds and "not JSON" in kinds
    assert any("longer than" in e["message"] for e in errors)
    assert any("no queued or running job has id 'j9'" in e["message"] for e in errors)
    results = {e["id"]: e for e in events if e["type"] == "result"}
    assert results["p"]["result"] == {"pong": True}
    assert len(results["j9"]["result"]["frames"]) == 1  # not poisoned by the earlier cancel


def _run(client, op, params):
    job = client.submit(op, params)
    while not job.finished:
        event = client._next(120)
        assert event is not None
        client.update(job, event)
    assert job.error is None, job.error
    return job.result


def test_a_preview_is_the_job_with_an_hdri_as_four_area_lights_and_a_plain_beauty(tmp_path, bundle, client):
    """The preview op: one folder (OUT/preview) rewritten, never a version; the HDRI fitted as 4 area
    lights (4 inferences, against the stage's one per lit direction in the full render); the
    beauty as a plain RGBA EXR equal to the pass file's; an unchanged preview computes nothing."""
    from core.io.exr import read_channels, read_info
    from core.lighting.hdri import resolve_hdri
    from core.lighting.rig import Environment

    plates = write_plates(tmp_path, [1, 2])
    rig = relight_job(bundle, plates, tmp_path / "out").rig
    rig.environment = Environment(str(resolve_hdri("studio")), (0.0, 0.0, 0.5), 1.0)
    params = relight_job(bundle, plates, tmp_path / "out", rig=rig.to_json(), frames="2-2").to_json()
    full = _run(client, "relight", params)
    preview = _run(client, "preview", params)
    assert full["folder"] == str(tmp_path / "out" / "v001")
    assert preview["folder"] == str(tmp_path / "out" / "preview")
    assert [f["frame"] for f in preview["frames"]] == [2]
    # 4 area lights x 2 steps: the 3 lamps' predictions come from the full render's per-light cache
    assert preview["frames"][0]["evaluations"] == 4 * 2 < full["frames"][0]["evaluations"]
    _, beauty, alpha = read_passes(preview["frames"][0]["path"])
    assert preview["image"] == str(tmp_path / "out" / "preview" / "preview_beauty.0002.exr")
    assert list(read_info(preview["image"]).channels()) == ["R", "G", "B", "A"]  # what Blender can show
    plain = read_channels(preview["image"], ["R", "G", "B", "A"])
    assert (plain[..., :3] == beauty).all() and (plain[..., 3] == alpha).all()
    again = _run(client, "preview", params)
    assert again["frames"][0]["skipped"] and again["folder"] == preview["folder"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith("v")) == ["v001"]


def test_a_bundle_re_exported_into_the_same_folder_is_loaded_again(tmp_path, bundle, client):
    """The worker keeps its model resident between jobs, but not past a change on disk: a bundle
    retrained into the same folder relights the next job with its new weights (and says so)."""
    import shutil

    from core.io.passes import read_metadata
    from core.model.bundle import DEFAULT_BUNDLE, read_info

    folder = tmp_path / "bundle"
    shutil.copytree(bundle, folder)
    plates = write_plates(tmp_path, [1])
    shas = []
    for n in range(2):
        job = client.submit("relight", relight_job(folder, plates, tmp_path / f"out{n}", steps=None,
                                                   allow_other_subject=True).to_json())
        client.wait(job, timeout=120)
        assert job.error is None, job.error
        shas.append(read_metadata(job.result["frames"][0]["path"])["bundle_sha256"])
        shutil.rmtree(folder)
        shutil.copytree(DEFAULT_BUNDLE, folder)  # another bundle exported into the same folder
    assert shas == [read_info(bundle).sha256, read_info(DEFAULT_BUNDLE).sha256]
