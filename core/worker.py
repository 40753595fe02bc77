"""``python -m core.worker``: the JSON-lines worker the Blender add-on and farms talk to (DESIGN.md
contract 5). No sockets, no ports: requests on stdin, events on stdout, one JSON object per line.

    worker -> {"type": "hello", "protocol": 1, "relit": "0.1.0", "pid": 123}
    client -> {"id": "j1", "op": "relight", "params": {...RelightJob...}}
    worker -> {"id": "j1", "type": "progress", "stage": "lights", "done": 3, "total": 60, "eta": 4.2, "frame": 1}
    worker -> {"id": "j1", "type": "log", "level": "WARNING", "message": "..."}
    worker -> {"id": "j1", "type": "result", "result": {"folder": ..., "frames": [...]}}
    worker -> {"id": "j1", "type": "error", "kind": "ValidationError", "message": "...", "cancelled": false}
    client -> {"id": "j1", "op": "cancel"}          (stops the job between denoising steps)
    client -> {"id": "p1", "op": "preview", "params": {...RelightJob...}}   (look-dev: core.lookdev;
                                                the result adds "image", a plain RGBA EXR of the beauty)
    client -> {"id": "r1", "op": "render-views", "params": {"recon", "camera": {K, c2w, width, height},
                                                          "frames", "output", "ply"}}
    client -> {"op": "shutdown"}

Any line that is not a request (not UTF-8, not JSON, not an object, over 16 MB) and a cancel for an
id no job has are answered with a ``ProtocolError`` event; the worker keeps serving.

stdout carries only the protocol: at start the worker keeps a private copy of file descriptor 1
for itself and points descriptor 1 at stderr, so prints and C libraries cannot corrupt the stream.
Each job writes a log file ``OUTPUT/logs/job-<id>.log`` (removed again, with any folder made
for it, when the job fails before its first frame: the error event says why). A loaded bundle is kept for later jobs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path

from ._version import __version__
from .errors import RelitError
from .worker_protocol import PROTOCOL, Error, Event, Hello, Log, Progress, Result

MAX_LINE = 16 * 1024 * 1024  # bytes: a longer request line is refused (and skipped), not read into memory
log = logging.getLogger("relit.worker")


class Cancelled(InterruptedError):
    """The client asked to stop the job."""


class Worker:
    def __init__(self, out=None, inp=None):
        self.out = out          # protocol stream (text, line-buffered)
        self.inp = inp          # request stream (binary: a line that is not UTF-8 is answered, not fatal)
        self.lock = threading.Lock()
        self.cancel: dict[str, threading.Event] = {}
        self.jobs: queue.Queue = queue.Queue()
        self.models: dict[tuple[str, str], tuple] = {}  # (bundle, device) -> (pipeline, info)
        self.frames_written: dict[str, int] = {}  # job id -> frames it has written so far

    def send(self, event: Event) -> None:
        with self.lock:
            self.out.write(json.dumps(event.to_json()) + "\n")
            self.out.flush()

    # --- requests ---------------------------------------------------------------------------
    def serve(self) -> None:
        """Read requests until stdin closes or a shutdown; jobs run one at a time on a thread."""
        runner = threading.Thread(target=self._run_jobs, daemon=True)
        runner.start()
        self.send(Hello(PROTOCOL, __version__, os.getpid()))
        while (request := self._next_request()) is not _EOF:
            if request is None:
                continue
            op, rid = request.get("op"), request.get("id")
            if op == "shutdown":
                break
            if op == "cancel":
                event = self.cancel.get(str(rid))
                if event is None:  # answered, and never remembered: a later job with this id runs
                    self._protocol_error(rid, f"cancel: no queued or running job has id {rid!r}")
                else:
                    event.set()
            elif op == "ping":
                self.send(Result(rid, {"pong": True}))
            elif op in ("relight", "preview", "render-views"):
                self.cancel.setdefault(str(rid), threading.Event())
                self.jobs.put(request)
            else:
                self._protocol_error(rid, f"unknown op {op!r}: use relight, preview, render-views, cancel, ping "
                                          "or shutdown")
        self.jobs.put(None)
        runner.join()

    def _protocol_error(self, rid, message: str) -> None:
        self.send(Error(rid, "ProtocolError", message))

    def _next_request(self):
        """The next request object; None for a line answered with an error event; _EOF at the end."""
        raw = self.inp.readline(MAX_LINE + 1)
        if not raw:
            return _EOF
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while (rest := self.inp.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass  # skip the rest of the line without holding it
            self._protocol_error(None, f"request line longer than {MAX_LINE} bytes: skipped")
            return None
        if not raw.strip():
            return None
        try:
            request = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            self._protocol_error(None, f"not UTF-8: {e}")
            return None
        except json.JSONDecodeError as e:
            self._protocol_error(None, f"not JSON: {e}")
            return None
        if not isinstance(request, dict):
            self._protocol_error(None, f"a request is a JSON object {{id, op, params}}, got {type(request).__name__}")
            return None
        return request

    def _run_jobs(self) -> None:
        while (request := self.jobs.get()) is not None:
            rid = str(request.get("id"))
            try:
                if request.get("op") == "render-views":
                    self.run_render(rid, request.get("params") or {})
                else:
                    self.run_job(rid, request.get("params") or {}, lookdev=request.get("op") == "preview")
            except Exception as e:  # a bug in the job's own clean-up: still an answer, and the worker goes on
                self._fail(rid, e)
            finally:
                self.cancel.pop(rid, None)  # the id is free again

    def run_render(self, rid: str, params: dict) -> None:
        """Render a reconstruction from one camera: params {recon, camera: {K, c2w, width, height},
        frames (optional "A-B"), output, ply (optional)}."""
        import numpy as np

        from .gaussians.export import render_sequence
        from .io.sequence import parse_frame_range
        from .validation import check_fields

        try:
            check_fields(params, f"render-views {rid}", {"recon", "camera", "frames", "output", "ply"},
                         required=("recon", "camera", "output"))
            cam = params["camera"]
            check_fields(cam, f"render-views {rid}.camera", {"K", "c2w", "width", "height"},
                         required=("K", "c2w", "width", "height"))
            frames = parse_frame_range(params["frames"]) if params.get("frames") else None

            def progress(done, total, frame):
                if self.cancel[rid].is_set():
                    raise Cancelled("cancelled by the client")
                self.send(Progress(rid, "frames", done, total, None, frame))

            rendered, kept = render_sequence(params["recon"], np.asarray(cam["K"]), np.asarray(cam["c2w"]),
                                             int(cam["width"]), int(cam["height"]), frames, params["output"],
                                             bool(params.get("ply")), progress)
            pattern = str(Path(params["output"]) / "flat.####.exr")
            self.send(Result(rid, {"pattern": pattern, "rendered": rendered, "kept": kept}))
        except Exception as e:
            self._fail(rid, e)

    def _fail(self, rid: str, e: Exception) -> None:
        """An error event: cancellation, a domain error with its message, or a bug with its type
        (logged with its traceback); the worker keeps serving."""
        _log_failure(rid, e)
        self._send_failure(rid, e)

    def _send_failure(self, rid: str, e: Exception) -> None:
        if isinstance(e, Cancelled):
            self.send(Error(rid, "Cancelled", str(e) or "cancelled", cancelled=True))
            return
        message = str(e) if isinstance(e, RelitError) else f"{type(e).__name__}: {e}"
        self.send(Error(rid, type(e).__name__, message))

    # --- one job --------------------------------------------------------------------------------
    def run_job(self, rid: str, params: dict, lookdev: bool = False) -> None:
        from .jobs import RelightJob

        handlers: list[logging.Handler] = []
        made: list[Path] = []  # the log file and the folders made for it, innermost first
        self.frames_written[rid] = 0
        failure: Exception | None = None
        try:
            if self.cancel[rid].is_set():
                raise Cancelled("cancelled before it started")
            job = RelightJob.from_json(params, source=f"job {rid}")
            handlers, made = self._attach_logs(job, rid)
            log.info("job %s: relight %s with %s -> %s", rid, job.input, job.bundle, job.output)
            result = self._relight(rid, job, lookdev)
            log.info("job %s: done, %d frame(s) in %s", rid, len(result["frames"]), result["folder"])
            self.send(Result(rid, result))
            made = []
        except Exception as e:
            _log_failure(rid, e)  # into the job's own log while it is attached
            failure = e
        finally:
            for handler in handlers:
                logging.getLogger().removeHandler(handler)
                handler.close()
            if made and not self.frames_written.pop(rid, 0):
                _remove_made(made)  # a job that wrote no frame leaves nothing behind (the error event says why)
        if failure is not None:  # only once the clean-up is done: a client that sees the error sees the final files
            self._send_failure(rid, failure)

    def _attach_logs(self, job, rid: str) -> tuple[list[logging.Handler], list[Path]]:
        """The job's log file (everything) and its relay to the client (warnings and up); and the
        paths made for the log (the file, then any folders created for it), innermost first."""
        folder = Path(job.output) / "logs"
        made = [p for p in (folder, folder.parent) if not p.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"job-{rid}.log"
        if not path.exists():
            made.insert(0, path)
        to_file = logging.FileHandler(path)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        relay = _Relay(self, rid)
        relay.setLevel(logging.WARNING)
        for handler in (to_file, relay):
            logging.getLogger().addHandler(handler)
        return [to_file, relay], made

    def _relight(self, rid: str, job, lookdev: bool = False) -> dict:
        from .model.bundle import load_bundle
        from .lookdev import lookdev_job, write_beauty
        from .relight_job import choose_bundle, run_relight

        job, choice = choose_bundle(job)  # also logged to the job's log file
        # the folder's files as they are now: a bundle re-exported into the same folder is loaded again
        folder = Path(job.bundle).resolve()
        stamp = tuple((str(f.relative_to(folder)), (st := f.stat()).st_size, st.st_mtime_ns)
                      for f in sorted(folder.rglob("*")) if f.is_file())
        key = (str(folder), job.device, stamp)
        if key not in self.models:
            self.models = {key: load_bundle(job.bundle, job.device)}  # keep one model resident
        if lookdev:
            job = lookdev_job(job, self.models[key][1].config.conditioning)
        job_start = frame_start = time.perf_counter()

        def progress(event) -> None:
            nonlocal frame_start
            if self.cancel[rid].is_set():
                raise Cancelled("cancelled by the client")
            now = time.perf_counter()
            elapsed = now - (job_start if event.stage == "frames" else frame_start)
            if event.stage == "frames":
                frame_start = now
                self.frames_written[rid] = event.done
            eta = elapsed / event.done * (event.total - event.done) if event.done else None
            self.send(Progress(rid, event.stage, event.done, event.total, eta, event.frame))

        report = run_relight(job, progress, pipe_and_info=self.models[key])
        result = {"folder": str(report.folder), "warnings": report.warnings, "bundle": job.bundle,
                  "bundle_choice": choice,
                  "frames": [{"frame": f.frame, "path": str(f.path), "skipped": f.skipped,
                              "evaluations": f.evaluations, "seconds": f.seconds} for f in report.frames]}
        if lookdev and report.frames:
            result["image"] = str(write_beauty(report.frames[0].path))
        return result


_EOF = object()  # the request stream ended


def _log_failure(rid: str, e: Exception) -> None:
    """A bug's traceback goes to the log; a cancellation or a domain error is said by its event."""
    if not isinstance(e, (Cancelled, RelitError)):
        log.exception("job %s failed", rid, exc_info=e)


def _remove_made(paths: list[Path]) -> None:
    """Remove a file and then folders that this process created (a folder only while empty)."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink() if path.is_file() else path.rmdir()


class _Relay(logging.Handler):
    """Warnings of a job, sent to the client as log events."""

    def __init__(self, worker: Worker, rid: str):
        super().__init__()
        self.worker, self.rid = worker, rid

    def emit(self, record: logging.LogRecord) -> None:
        self.worker.send(Log(self.rid, record.levelname, record.getMessage()))


def main() -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol's private copy of stdout
    os.dup2(2, 1)                                      # everything else writes to stderr
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Worker(protocol, sys.stdin.buffer).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
