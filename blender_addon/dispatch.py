"""How the add-on runs jobs: in a worker process (``python -m core.worker``) that it spawns with the
interpreter set in the preferences and keeps for later jobs (the bundle stays loaded there).

Dispatch is injectable (:func:`set_dispatcher`): Blender's background mode runs no timers or
modal handlers, so headless tests and scripts drive the same job synchronously through
``bpy.ops.relit.relight()`` (its ``execute``), while the panel's button runs it asynchronously.
"""

from __future__ import annotations

from core.worker_client import WorkerClient

HANG_SECONDS = 600.0  # a worker silent this long (no progress event) is reported as hung

_dispatcher = None
_injected = False


class WorkerDispatcher:
    def __init__(self, python: str, env: dict | None = None, cwd: str | None = None, log_path: str | None = None):
        self.python, self.env, self.cwd, self.log_path = python, env, cwd, log_path
        self.client = None

    def _client(self):
        if self.client is None or self.client.proc.poll() is not None:
            self.client = WorkerClient(self.python, env=self.env, cwd=self.cwd, log_path=self.log_path)
        return self.client

    def start(self, params: dict, op: str = "relight"):
        return self._client().submit(op, params)

    def poll(self, job):
        return self.client.poll(job, hang_after=HANG_SECONDS)

    def wait(self, job, timeout: float = 24 * 3600.0):
        return self.client.wait(job, timeout=timeout, hang_after=HANG_SECONDS)

    def cancel(self, job) -> None:
        self.client.cancel(job)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def set_dispatcher(dispatcher) -> None:
    """Use ``dispatcher`` for the following jobs (tests, pipelines); None goes back to the default."""
    global _dispatcher, _injected
    if _dispatcher is not None and _dispatcher is not dispatcher:
        _dispatcher.close()
    _dispatcher, _injected = dispatcher, dispatcher is not None


def current_dispatcher(python: str):
    """The injected dispatcher, else one spawning workers with ``python`` (the preferences')."""
    global _dispatcher
    if _injected:
        return _dispatcher
    if _dispatcher is None or _dispatcher.python != python:
        if _dispatcher is not None:
            _dispatcher.close()
        _dispatcher = WorkerDispatcher(python)
    return _dispatcher
