"""Relight nodes spelled out as plain comp nodes, for hosts without a Relight node (Nuke, Blender):
one Shuffle per basis layer, a Grade whose tint is the layer's RGB weight, summed by Merge plus.
The weights come from the basis file's header, so the expansion is for one frame's file (the
stage and camera a basis file stores do not change over a sequence)."""

from __future__ import annotations

from core.io import naming, passes

from .graph import Grade, Graph, Merge, Relight, Shuffle


def expand_relight(graph: Graph, frame: int | None) -> Graph:
    """A copy of ``graph`` with each Relight node replaced by Shuffle + Grade (multiply) + Merge plus."""
    from .evaluate import frame_file, relight_weights

    out = Graph()
    rename: dict[str, str] = {}
    for node in graph.order():
        if not isinstance(node, Relight):
            copy = type(node)(**{**node.params(), "name": node.name,
                                 "inputs": [rename.get(i, i) for i in node.inputs]})
            out.add(copy)
            continue
        read = graph.nodes[node.inputs[0]]
        path = frame_file(read.path, frame if frame is not None else read.first)
        layers, weights = relight_weights(node, passes.read_metadata(path), path.name)
        total = None
        for layer, w in zip(layers, weights):
            if not any(w):
                continue
            b = f"{node.name}_{layer}"
            out.add(Shuffle(f"shuffle_{b}", [rename.get(read.name, read.name)],
                            layer=naming.light_layer_name(layer)))
            graded = out.add(Grade(f"weight_{b}", [f"shuffle_{b}"], tint=tuple(float(v) for v in w)))
            total = graded.name if total is None else out.add(Merge(f"sum_{b}", [graded.name, total])).name
        rename[node.name] = total
    return out
