"""The worker's events (:mod:`core.worker` sends them, :mod:`core.worker_client` reads them): one
definition of each event's fields, serialised as one JSON object per line with its ``type``.
Pure Python (no torch): the Blender add-on's client imports it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

PROTOCOL = 1  # the event protocol's version (the worker says it in its hello; the client checks it)


@dataclass(frozen=True)
class Event:
    type: ClassVar[str]

    def to_json(self) -> dict:
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True)
class Hello(Event):
    type: ClassVar[str] = "hello"
    protocol: int                # PROTOCOL of the worker
    relit: str                   # relit's version
    pid: int                     # the worker's process id


@dataclass(frozen=True)
class Progress(Event):
    type: ClassVar[str] = "progress"
    id: str                      # the request's id
    stage: str                   # "lights" (inferences of a frame) or "frames"
    done: int                    # of ``total`` in this stage
    total: int
    eta: float | None            # seconds left in this stage, None until one item is done
    frame: int | None            # the frame being worked on


@dataclass(frozen=True)
class Log(Event):
    type: ClassVar[str] = "log"
    id: str
    level: str                   # logging level name (warnings and up are relayed)
    message: str


@dataclass(frozen=True)
class Result(Event):
    type: ClassVar[str] = "result"
    id: str | None
    result: dict                 # what the request produced (a relight: folder, frames, warnings, ...)


@dataclass(frozen=True)
class Error(Event):
    type: ClassVar[str] = "error"
    id: str | None               # None: a line that was not a request
    kind: str                    # the exception's class name ("ValidationError", "Cancelled", "ProtocolError")
    message: str                 # what went wrong and the fix, for the artist
    cancelled: bool = False      # the client asked for it


@dataclass(frozen=True)
class Exit(Event):
    """Not sent by the worker: the client queues it when the worker's output ends."""
    type: ClassVar[str] = "exit"
    code: int                    # the worker process's exit status
