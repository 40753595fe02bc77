"""The client side of the worker protocol (:mod:`core.worker`): spawn ``python -m core.worker``
with a chosen interpreter, send jobs, collect events. Pure Python (no torch): the Blender add-on
uses it inside Blender, where a timer drains :meth:`WorkerClient.events` on the main thread.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RelitError
from .worker_protocol import PROTOCOL, Error, Exit, Hello, Log, Progress, Result


class WorkerError(RelitError):
    """The worker could not be started, broke the protocol, crashed or hung."""


@dataclass
class JobState:
    id: str
    done: int = 0                     # of the stage in ``stage``
    total: int = 0
    stage: str = ""
    eta: float | None = None
    frame: int | None = None
    result: dict | None = None        # set when the job succeeded
    error: str | None = None          # set when it failed (or was cancelled)
    cancelled: bool = False
    logs: list[str] = field(default_factory=list)
    last_event: float = field(default_factory=time.monotonic)

    @property
    def finished(self) -> bool:
        return self.result is not None or self.error is not None


class WorkerClient:
    """One worker process. ``python`` is the interpreter of an environment where relit is installed;
    ``cwd``/``env`` let a checkout (PYTHONPATH) stand in for an install."""

    def __init__(self, python: str, env: dict | None = None, cwd: str | None = None, start_timeout: float = 120.0,
                 log_path: str | Path | None = None):
        """Spawn the worker; returns at once (the hello is checked by :meth:`handshake` or among the
        events), so an operator can start a job without waiting for torch to import."""
        self.events: queue.Queue = queue.Queue()  # decoded events, in arrival order
        self._ids = itertools.count(1)
        stderr = open(log_path, "ab") if log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen([python, "-m", "core.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=stderr, text=True, bufsize=1, cwd=cwd,
                                         env={**os.environ, **(env or {})})
        except OSError as e:
            raise WorkerError(f"cannot start the relit worker with {python!r} ({e}); set the add-on's Python "
                              "interpreter to an environment where relit is installed") from None
        finally:
            if log_path:
                stderr.close()
        self.python, self.start_timeout = python, start_timeout
        self.hello: dict | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def handshake(self, timeout: float | None = None) -> dict:
        """Block until the worker's hello (the asynchronous path never blocks: it sees the hello
        among the events)."""
        if self.hello is None:
            event = self._next(self.start_timeout if timeout is None else timeout)
            self._hello(event)
        return self.hello

    def _hello(self, event: dict | None) -> None:
        if event is None or event.get("type") != Hello.type:
            code = self.proc.poll()
            self.close()
            raise WorkerError(f"the worker ({self.python}) did not say hello"
                              + (f" (it exited with code {code})" if code is not None else "")
                              + "; is relit installed in that environment?")
        if event.get("protocol") != PROTOCOL:
            self.close()
            raise WorkerError(f"the worker speaks protocol {event.get('protocol')}, this client {PROTOCOL}; "
                              "update relit on one side")
        self.hello = event

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except json.JSONDecodeError:
                self.events.put(Error(None, "ProtocolError", f"not JSON: {line[:200]!r}").to_json())
        self.events.put(Exit(self.proc.wait()).to_json())

    def _next(self, timeout: float | None) -> dict | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def send(self, request: dict) -> None:
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise WorkerError(f"the worker has exited (code {self.proc.poll()}); see its log, and check that relit "
                              f"is installed for {self.python}") from None

    def submit(self, op: str, params: dict) -> JobState:
        rid = f"j{next(self._ids)}"
        self.send({"id": rid, "op": op, "params": params})
        return JobState(rid)

    def cancel(self, job: JobState) -> None:
        self.send({"id": job.id, "op": "cancel"})

    def update(self, job: JobState, event: dict) -> None:
        """Apply one event to the job's state (events of other jobs are ignored)."""
        kind = event.get("type")
        if kind == Hello.type and self.hello is None:
            try:
                self._hello(event)
            except WorkerError as e:
                job.error = str(e)
            return
        if kind == Exit.type:
            if not job.finished:
                job.error = (f"the worker exited (code {event.get('code')}) before the job finished"
                             + ("" if self.hello else f"; it never said hello: is relit installed for {self.python}?"))
            return
        if event.get("id") != job.id:
            return
        job.last_event = time.monotonic()
        if kind == Progress.type:
            job.stage, job.done, job.total = event["stage"], event["done"], event["total"]
            job.eta, job.frame = event.get("eta"), event.get("frame")
        elif kind == Log.type:
            job.logs.append(f"{event.get('level')}: {event.get('message')}")
        elif kind == Result.type:
            job.result = event["result"]
        elif kind == Error.type:
            job.error, job.cancelled = event.get("message", "error"), bool(event.get("cancelled"))

    def poll(self, job: JobState, hang_after: float | None = None) -> JobState:
        """Apply every pending event; a job silent for ``hang_after`` seconds is reported as hung."""
        while (event := self._next(0)) is not None:
            self.update(job, event)
        self._check_hung(job, hang_after)
        return job

    def _check_hung(self, job: JobState, hang_after: float | None) -> None:
        if not job.finished and hang_after is not None and time.monotonic() - job.last_event > hang_after:
            job.error = f"the worker sent nothing for {hang_after:.0f} s; it is hung and was stopped"
            self.close()

    def wait(self, job: JobState, timeout: float = 3600.0, hang_after: float | None = None) -> JobState:
        """Block until the job finishes (the synchronous dispatch of tests and farms)."""
        deadline = time.monotonic() + timeout
        while not job.finished:
            event = self._next(min(1.0, max(0.0, deadline - time.monotonic())))
            if event is not None:
                self.update(job, event)
            self._check_hung(job, hang_after)
            if time.monotonic() > deadline and not job.finished:
                job.error = f"the job did not finish within {timeout:.0f} s"
        return job

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send({"op": "shutdown"})
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (WorkerError, subprocess.TimeoutExpired, OSError):
                self.proc.kill()
                self.proc.wait()
