"""Image sequences: ``name.####.exr`` and ``name.%04d.exr``, any start frame, gaps allowed."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import RelitIOError, ValidationError

_HASHES = re.compile(r"#+")
_PRINTF = re.compile(r"%0?(\d*)d")


def _pattern_parts(pattern: str) -> tuple[str, int, str] | None:
    """(prefix, padding, suffix) of a frame pattern, or None for a single file."""
    pattern = str(pattern)
    name_start = len(pattern) - len(Path(pattern).name)
    name = pattern[name_start:]
    spans = list(_HASHES.finditer(name)) + list(_PRINTF.finditer(name))
    if not spans:
        return None
    if len(spans) > 1:
        raise ValidationError(f"{pattern}: more than one frame placeholder; use one '####' or '%04d'")
    m = spans[0]
    pad = len(m.group(0)) if m.group(0).startswith("#") else int(m.group(1) or 1)
    return pattern[: name_start + m.start()], pad, pattern[name_start + m.end():]

def is_sequence(pattern: str) -> bool:
    return _pattern_parts(str(pattern)) is not None


def frame_path(pattern: str, frame: int) -> Path:
    """The file of ``frame`` in ``pattern`` (a plain path is returned as is)."""
    parts = _pattern_parts(str(pattern))
    if parts is None:
        return Path(pattern)
    head, pad, tail = parts
    sign = "-" if frame < 0 else ""
    return Path(f"{head}{sign}{abs(frame):0{pad}d}{tail}")


def find_frames(pattern: str) -> dict[int, Path]:
    """Frames present on disk for ``pattern``, sorted; padding may grow past its width (10000). A
    single file is its own frame: the number in its name (``flat.0001.exr`` is frame 1), else 0."""
    parts = _pattern_parts(str(pattern))
    if parts is None:
        p = Path(pattern)
        if not p.exists():
            raise RelitIOError(f"{p}: file not found")
        numbered = re.search(r"\.(-?\d+)\.[^.]+$", p.name)
        return {int(numbered.group(1)) if numbered else 0: p}
    head, pad, tail = parts
    folder = Path(head).parent
    stem = Path(head).name
    if not folder.is_dir():
        raise RelitIOError(f"{pattern}: folder {folder} not found")
    rx = re.compile(re.escape(stem) + r"(-?\d{%d,})" % pad + re.escape(tail) + "$")
    frames = {int(m.group(1)): folder / f.name for f in folder.iterdir() if (m := rx.match(f.name))}
    if not frames:
        raise RelitIOError(f"{pattern}: no frames found in {folder}")
    return dict(sorted(frames.items()))


def parse_frame_range(text: str) -> list[int]:
    """``1001-1010``, ``1001-1010x2``, ``1001,1005,1009-1010`` -> sorted unique frames."""
    frames: set[int] = set()
    for chunk in str(text).split(","):
        m = re.fullmatch(r"\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*(?:x\s*(\d+))?)?\s*", chunk)
        if not m:
            raise ValidationError(f"frame range {text!r}: use A-B, A-BxSTEP or a comma list like 1001,1003-1005")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        step = int(m.group(3) or 1)
        if b < a or step < 1:
            raise ValidationError(f"frame range {chunk.strip()!r}: end before start or step < 1")
        frames.update(range(a, b + 1, step))
    return sorted(frames)
