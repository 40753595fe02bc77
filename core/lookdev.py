"""Look-dev previews: the artist's quick look at one frame while placing lights.

A preview is the artist's job with three things changed: it writes into ``OUTPUT/preview`` (one
folder, rewritten by each preview, never a new version), an HDRI on an olat bundle becomes at most
:data:`LOOKDEV_CLUSTERS` fitted area lights instead of the stage projection (an env-map bundle already
relights it in one pass), and one sample per light. The per-light cache (``OUTPUT/.cache``) is the
same as the full render's, so a preview after a tweak of intensities, colours or grouping, or of one
lamp, recomputes only what changed. The beauty is also written as a plain RGBA EXR
(``preview/preview_beauty.NNNN.exr``), which Blender's Image Editor shows as it is (it cannot show a
multi-layer pass file's plain channels).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .io.exr import write_exr
from .io.passes import read_passes
from .jobs import RelightJob
from .relight.strategies import AREA, ENVMAP, hdri_strategy

LOOKDEV_CLUSTERS = 4      # area lights an HDRI becomes in a preview (olat bundles)
LOOKDEV_FOLDER = "preview"  # under the job's output folder, rewritten by every preview
LOOKDEV_NAME = "preview"  # file stem of the preview's pass files


def lookdev_job(job: RelightJob, conditioning: str) -> RelightJob:
    """The preview of ``job`` for a bundle of ``conditioning``."""
    strategy = hdri_strategy(job.hdri_strategy, conditioning)
    fast = ENVMAP.name if strategy is ENVMAP else AREA.name
    return replace(job, folder=str(Path(job.output) / LOOKDEV_FOLDER), name=LOOKDEV_NAME, hdri_strategy=fast,
                   clusters=min(job.clusters, LOOKDEV_CLUSTERS), samples=1, basis=False)


def write_beauty(pass_file: str | Path) -> Path:
    """The pass file's beauty and alpha as a single-layer RGBA EXR beside it (``<stem>_beauty.exr``)."""
    import numpy as np

    pass_file = Path(pass_file)
    _, beauty, alpha = read_passes(pass_file)
    stem, frame = pass_file.stem.rsplit(".", 1) if "." in pass_file.stem else (pass_file.stem, "")
    out = pass_file.with_name(f"{stem}_beauty{'.' + frame if frame else ''}.exr")
    return write_exr(out, np.concatenate([beauty, alpha[..., None]], -1).astype(np.float32), ["R", "G", "B", "A"])
