"""Per-light inference cache: each inference's prediction at model resolution, kept on disk beside the
versions (``OUT/.cache``), so that a rerun which changes only what is applied after the model (a
light's intensity or colour, grouping, layer names, the exposure) re-sums stored predictions
without a UNet call and writes the same bytes as a fresh run.

An entry is keyed by everything the prediction depends on: the frame's key (bundle, recipe, steps,
sampler, guidance, seed, samples, device, the pixels the model sees; :func:`frame_key`) and the
inference's own condition and initial noise (its direction and size, or its normalised
environment map, and the noise of each of its samples). Entries are written atomically (a killed
run leaves a whole entry or none; a reader treats an unreadable one as absent), and the folder is
kept under a size bound by removing the least recently used entries; concurrent runs may share it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import PARTIAL, atomic_path

log = logging.getLogger(__name__)

CACHE_DIR = ".cache"          # under the job's output folder, beside v001, v002, ...
DEFAULT_LIMIT_MB = 2048       # a job's default bound on the cache folder
STALE_PARTIAL_SECONDS = 3600  # a temporary entry file this old was left by a killed writer


def frame_key(parts: dict, model_input: np.ndarray,
              normals: np.ndarray | None = None,  # [m, m, 3] the face normals a normals model is given
              ) -> str:
    """What every inference of a frame shares: ``parts`` (JSON-able: bundle hash, resolved recipe,
    guidance, seed, samples, device), the pixels the model sees ([m, m, 3]) and its face normals."""
    import json

    h = hashlib.sha256(json.dumps(parts, sort_keys=True).encode())
    h.update(np.ascontiguousarray(model_input, dtype=np.float32).tobytes())
    if normals is not None:
        h.update(np.ascontiguousarray(normals, dtype=np.float32).tobytes())
    return h.hexdigest()


@dataclass
class LightCache:
    folder: Path                 # the cache folder (OUT/.cache)
    limit_bytes: int             # entries beyond this total are evicted, least recently used first

    def key(self, frame: str, condition: np.ndarray, noise: np.ndarray) -> str:
        """An inference's entry name: the frame's key, its condition (direction and size, or its
        encoded environment) and its initial noise ([S, C, h, w], one per sample)."""
        h = hashlib.sha256(frame.encode())
        h.update(np.ascontiguousarray(condition, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(noise, dtype=np.float32).tobytes())
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:  # [m, m, 3] or None
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                image = np.load(f, allow_pickle=False)
            os.utime(path)  # recently used: evicted last
        except (OSError, ValueError, EOFError):
            return None
        return image

    def put(self, key: str, image: np.ndarray) -> None:
        import io

        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(image, dtype=np.float32), allow_pickle=False)
        with atomic_path(self._path(key), durable=False) as tmp:  # a cache: made again if lost
            tmp.write_bytes(buffer.getvalue())

    def evict(self) -> int:
        """Remove least recently used entries until the folder is within its bound; returns how many.
        Entries another run removes meanwhile are skipped."""
        import time

        entries = []
        for path in self.folder.glob("*.npy"):
            try:
                st = path.stat()
                if PARTIAL in path.name:  # a writer's temporary file: a killed one's after an hour
                    if st.st_mtime < time.time() - STALE_PARTIAL_SECONDS:
                        path.unlink()
                    continue
            except FileNotFoundError:
                continue
            entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in sorted(entries):
            if total <= self.limit_bytes:
                break
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
            total -= size
        if removed:
            log.info("%s: evicted %d cached prediction(s) to stay under %d MB", self.folder, removed,
                     self.limit_bytes >> 20)
        return removed
