"""Names on disk: EXR layer names of relit passes and versioned output folders."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ValidationError

LIGHT_PREFIX = "light_"
_VERSION = re.compile(r"v(\d{3,})")


def sanitise_name(name: str) -> str:
    """A name in ``[A-Za-z0-9_]`` with no leading digit (EXR and Nuke safe)."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", str(name).strip())
    if not clean:
        raise ValidationError(f"light name {name!r} has nothing left after sanitising; give it a name")
    return "_" + clean if clean[0].isdigit() else clean


def light_layer_name(name: str) -> str:
    """The pass layer of a light or light group: ``light_<sanitised name>``."""
    return LIGHT_PREFIX + sanitise_name(name)


def light_layer_names(names: list[str]) -> dict[str, str]:
    """Layer name of each light; two lights that sanitise to one layer name are an error."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for n in names:
        layer = light_layer_name(n)
        if layer in seen and seen[layer] != n:
            raise ValidationError(f"lights {seen[layer]!r} and {n!r} both become layer {layer!r}; rename one")
        seen[layer] = n
        out[n] = layer
    return out


def versions(root: str | Path) -> list[Path]:
    """Existing version folders ``v001``, ``v002``, ... under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _VERSION.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def new_version_dir(root: str | Path) -> Path:
    """Create and return the next version folder under ``root``; earlier versions are never touched."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    existing = versions(root)
    number = int(existing[-1].name[1:]) + 1 if existing else 1
    while True:
        path = root / f"v{number:03d}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # another process took this number
            number += 1
