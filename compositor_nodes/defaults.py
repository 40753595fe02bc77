"""The default comp of a relit pass file: one branch per light layer (Shuffle -> Grade), summed with
Merge plus into a Write, and the original plate read alongside for reference. What the add-on builds
after a relight and what ``relit comp --default`` writes."""

from __future__ import annotations

from core.errors import ValidationError
from core.io import exr, sequence
from core.io.naming import LIGHT_PREFIX

from .graph import Grade, Graph, Merge, Read, Shuffle, Write

PASSES, PLATE, OUTPUT = "passes", "plate", "write"


def light_layers(path: str) -> list[str]:
    """The ``light_*`` layers of a pass file, in the file's order."""
    return [layer for layer in exr.read_info(path).layers() if layer.startswith(LIGHT_PREFIX)]


def branch_name(layer: str) -> str:
    """``light_key`` -> ``key`` (node names of a light's branch: shuffle_key, grade_key)."""
    return layer[len(LIGHT_PREFIX):]


def default_graph(passes: str,              # pass file or sequence pattern
                  output: str,              # where the comp writes (file or pattern)
                  plate: str | None = None,  # the flat-lit plate, read for reference
                  first: int | None = None, last: int | None = None,  # frame range of a sequence
                  layers: list[str] | None = None,  # light layers (default: read from the first frame)
                  ) -> Graph:
    if layers is None:
        sample = sequence.frame_path(passes, first) if first is not None else passes
        layers = light_layers(str(sample))
    if not layers:
        raise ValidationError(f"{passes}: has no light_* layers; is it a relit pass file?")
    g = Graph()
    g.add(Read(PASSES, path=passes, first=first, last=last))
    if plate is not None:
        g.add(Read(PLATE, path=plate, first=first, last=last))
    total = None
    for layer in layers:
        b = branch_name(layer)
        g.add(Shuffle(f"shuffle_{b}", [PASSES], layer=layer))
        graded = g.add(Grade(f"grade_{b}", [f"shuffle_{b}"]))
        if total is None:
            total = graded.name
        else:
            total = g.add(Merge(f"sum_{b}", [graded.name, total], op="plus")).name
    g.add(Write(OUTPUT, [total], path=output))
    return g
