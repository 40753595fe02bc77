"""Atomic writes: write next to the target under a temporary name, then rename.

A reader never sees a half-written file, and a crash, or a power loss (the data is synced
before the rename, the folder after it), leaves the previous file (or nothing) in place, never
a partial one. The finished file gets the
mode a plain ``open`` would give it (0666 less the umask), not the private
0600 of the temporary file: comp artists and farm users read relit's outputs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from ..errors import RelitIOError

PARTIAL = ".partial"  # marks temporary files; a killed writer may leave one behind
_UMASK_LOCK = threading.Lock()


def file_mode(directory: bool = False) -> int:
    """0666 (0777 for a directory) less the process's umask: the mode ``open(path, "w")`` (``mkdir``)
    would give it."""
    full = 0o777 if directory else 0o666
    try:  # Linux states it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return full & ~int(line.split()[1], 8)
    except OSError:
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return full & ~mask


@contextlib.contextmanager
def atomic_path(target: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (same suffix); rename it over ``target`` on success.
    ``durable``: synced to the disk too (replace_synced); False for files a run can make again (a cache)."""
    target = Path(target)
    if target.is_dir():
        raise RelitIOError(f"{target}: is a folder; give the path of the file to write")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f"{PARTIAL}{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, file_mode())
        if durable:
            replace_synced(tmp_path, target)
        else:
            os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _sync_file(path: Path) -> None:
    """Flush a file's data to the disk: through a writable handle (Windows flushes only those), with
    macOS's full flush where the platform has one (its plain fsync stops at the drive's cache)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except PermissionError:  # a read-only file (a strict umask): POSIX syncs through any handle
        fd = os.open(path, os.O_RDONLY)
    try:
        full = getattr(fcntl, "F_FULLFSYNC", None) if fcntl is not None else None
        if full is not None:
            fcntl.fcntl(fd, full)
        else:
            os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(path: Path) -> None:
    """Flush a folder's entries (a rename into it) where the platform can: Windows cannot open a folder
    (NTFS journals its entries itself), and a file system that refuses (some network mounts, a folder
    without read permission) is left to its own guarantees."""
    if os.name == "nt":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_synced(tmp: Path, target: Path) -> None:
    """Rename a finished temporary file or folder over ``target``, durably: its bytes (every file of a
    folder) are on disk before the name is, so a power loss leaves the old file, not an empty one under
    the new name; then the parent folder's entry (the rename itself)."""
    for path in ([*tmp.rglob("*"), tmp] if tmp.is_dir() else [tmp]):
        _sync_folder(path) if path.is_dir() else _sync_file(path)
    os.replace(tmp, target)
    _sync_folder(target.parent)


def atomic_write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


STALE_AFTER_S = 600.0  # a temporary file untouched this long is a killed writer's (writes take seconds)


def remove_stale_partials(folder: str | Path, older_than_s: float | None = None) -> int:
    """Delete temporary files a killed writer left under ``folder``; returns how many.

    ``older_than_s=None``: every one (call it only when no other writer works in that folder); else
    only those last modified at least that long ago, which another writer still working there (a
    second run sharing a light cache) cannot be.
    """
    import time

    removed, now = 0, time.time()
    for path in Path(folder).rglob(f".*{PARTIAL}.*"):
        try:
            if path.is_file() and (older_than_s is None or now - path.stat().st_mtime >= older_than_s):
                path.unlink()
                removed += 1
        except FileNotFoundError:  # its writer finished (renamed it) meanwhile
            continue
    return removed


def remove_partials_of(target: str | Path) -> int:
    """Delete temporary files a killed writer of ``target`` left beside it; returns how many.

    Safe while other writers work in the same folder, as long as only one writes ``target``.
    """
    target = Path(target)
    removed = 0
    for path in target.parent.glob(f".{target.stem}.*{PARTIAL}{target.suffix}"):
        if path.is_file():
            path.unlink()
            removed += 1
    return removed
