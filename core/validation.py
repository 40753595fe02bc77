"""Field checks shared by the JSON contracts; each error names where the bad value is."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .errors import RelitIOError, ValidationError


def load_json(path: str | Path, missing: str) -> object:
    """A JSON file's content; ``missing`` says what the file is, for the not-found error."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RelitIOError(f"{p}: not found; {missing}") from None
    except IsADirectoryError:
        raise RelitIOError(f"{p}: is a folder; give the JSON file itself") from None
    except NotADirectoryError:
        raise RelitIOError(f"{p}: a path through a file, not a folder; {missing}") from None
    except UnicodeDecodeError:
        raise ValidationError(f"{p}: not a text file (it is not UTF-8); give a JSON file") from None
    except json.JSONDecodeError as e:
        raise ValidationError(f"{p}: not valid JSON ({e})") from None
    except OSError as e:
        raise RelitIOError(f"{p}: cannot be read ({e.strerror or e})") from None


def check_fields(data, where: str, known: set[str], required: tuple[str, ...] = ()) -> None:
    """``data`` is an object with only ``known`` keys and every ``required`` one."""
    if not isinstance(data, dict):
        raise ValidationError(f"{where}: must be a JSON object")
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValidationError(f"{where}: unknown field(s) {unknown}; known fields: {sorted(known)}")
    for key in required:
        if key not in data:
            raise ValidationError(f"{where}.{key}: missing")


def as_numbers(value, where: str, shape: tuple[int, ...]) -> np.ndarray:
    """Finite float64 array of exactly ``shape``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: must be numbers of shape {shape}") from None
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise ValidationError(f"{where}: must be finite numbers of shape {shape}, got {value!r}")
    return arr


def as_number(value, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    """A finite number in [lo, hi] (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(f"{where}: must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise ValidationError(f"{where}: must be in [{lo}, {hi}], got {value!r}")
    return float(value)
