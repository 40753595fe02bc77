"""A small Nuke-style comp graph over relit passes (pure Python: no bpy, no OpenImageIO).

Nodes and their sockets:

    Read     (path [, layer])      -> multi   a pass file (or sequence) with all its layers
    Shuffle  (multi, layer)        -> rgba    one layer as RGB, the file's alpha as A
    Grade    (rgba; gain, tint, exposure) -> rgba   RGB x gain x tint x 2^exposure, alpha kept
    Merge    (A, B; op)            -> rgba    plus | over (A over B) | multiply; plus and multiply
                                             combine RGB and keep B's alpha (Nuke: output rgb)
    Relight  (multi basis; rig or hdri, rotation, intensity) -> rgba
                                             re-weights an OLAT-basis file's layers: relighting in
                                             comp, no model, using the directions and cells it stores
    Write    (rgba; path)          -> file    scene-linear EXR, written atomically

A graph is JSON: ``{"version": 1, "nodes": [{"name", "type", "inputs": [...], ...params}]}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from core.errors import ValidationError
from core.io.atomic import atomic_write_text
from core.lighting.rig import LightRig
from core.validation import as_number, as_numbers, check_fields, load_json

GRAPH_VERSION = 1
MULTI, RGBA = "multi", "rgba"
MERGE_OPS = ("plus", "over", "multiply")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Node:
    name: str                                   # unique, [A-Za-z_][A-Za-z0-9_]* (a Nuke node name)
    inputs: list[str] = field(default_factory=list)  # names of the upstream nodes, in socket order

    type: ClassVar[str] = "Node"                  # the node's class name in JSON (and Nuke)
    input_types: ClassVar[tuple[str, ...]] = ()   # socket types of the inputs, in order
    output_type: ClassVar[str | None] = RGBA      # socket type of the output (None: writes a file)

    def params(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("name", "inputs")}

    def check(self, where: str) -> None:
        """Parameter checks; errors name ``where`` (the node)."""


@dataclass
class Read(Node):
    path: str = ""                 # pass file or sequence pattern (name.####.exr)
    first: int | None = None       # first frame of the sequence (None: a single file)
    last: int | None = None        # last frame

    type = "Read"
    output_type = MULTI

    def check(self, where: str) -> None:
        if not self.path:
            raise ValidationError(f"{where}.path: give the pass file or sequence to read")
        if (self.first is None) != (self.last is None):
            raise ValidationError(f"{where}: give both first and last (a frame range) or neither (a single file)")
        for key in ("first", "last"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValidationError(f"{where}.{key}: must be an integer frame number, got {value!r}")
        if self.first is not None and self.last < self.first:
            raise ValidationError(f"{where}: last ({self.last}) is before first ({self.first})")


@dataclass
class Shuffle(Node):
    layer: str = ""                # layer to bring out as RGB ("" = the beauty R, G, B)

    type = "Shuffle"
    input_types = (MULTI,)


@dataclass
class Grade(Node):
    gain: float = 1.0              # multiplies RGB (keyframeable in Blender and Nuke)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel multiplier, linear
    exposure: float = 0.0          # stops: RGB x 2^exposure

    type = "Grade"
    input_types = (RGBA,)

    def check(self, where: str) -> None:
        as_number(self.gain, f"{where}.gain")
        as_numbers(self.tint, f"{where}.tint", (3,))
        as_number(self.exposure, f"{where}.exposure", -64, 64)
        self.tint = tuple(float(v) for v in self.tint)

    def factors(self) -> tuple[float, float, float]:
        s = float(self.gain) * 2.0 ** float(self.exposure)
        return tuple(s * float(t) for t in self.tint)  # type: ignore[return-value]


@dataclass
class Merge(Node):
    op: str = "plus"               # plus | over (A over B) | multiply

    type = "Merge"
    input_types = (RGBA, RGBA)

    def check(self, where: str) -> None:
        if self.op not in MERGE_OPS:
            raise ValidationError(f"{where}.op: {self.op!r} is not one of {MERGE_OPS}")


@dataclass
class Relight(Node):
    rig: dict | None = None        # a LightRig JSON (olat-type or area lights, and/or an environment)
    hdri: str | None = None        # or: a lat-long HDRI ...
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)  # ... turned as Blender's Mapping node (Euler XYZ rad)
    intensity: float = 1.0         # ... times this strength
    missing: str = "drop"          # light below the stage floor: drop | nearest (as relit relight)

    type = "Relight"
    input_types = (MULTI,)

    def check(self, where: str) -> None:
        if (self.rig is None) == (self.hdri is None):
            raise ValidationError(f"{where}: give either an HDRI or a rig")
        if self.rig is not None:
            LightRig.from_json(self.rig, source=f"{where}.rig")
        as_numbers(self.rotation, f"{where}.rotation", (3,))
        self.rotation = tuple(float(v) for v in self.rotation)
        as_number(self.intensity, f"{where}.intensity", 0.0)


@dataclass
class Write(Node):
    path: str = ""                 # output file or pattern (name.####.exr)

    type = "Write"
    input_types = (RGBA,)
    output_type = None

    def check(self, where: str) -> None:
        if not self.path:
            raise ValidationError(f"{where}.path: give the file or pattern to write")


NODE_TYPES: dict[str, type[Node]] = {cls.type: cls for cls in (Read, Shuffle, Grade, Merge, Relight, Write)}


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)  # by name, in insertion order

    def add(self, node: Node) -> Node:
        if node.name in self.nodes:
            raise ValidationError(f"node {node.name!r}: the name is taken")
        self.nodes[node.name] = node
        return node

    def order(self) -> list[Node]:
        """Nodes upstream first; a cycle or a dangling input is an error naming the node."""
        done: dict[str, bool] = {}  # name -> finished (False while on the stack)
        out: list[Node] = []

        def visit(name: str, path: list[str]) -> None:
            state = done.get(name)
            if state is True:
                return
            if state is False:
                loop = " -> ".join(path[path.index(name):] + [name])
                raise ValidationError(f"node {name!r}: is part of a cycle ({loop})")
            done[name] = False
            for up in self.nodes[name].inputs:
                if up not in self.nodes:
                    raise ValidationError(f"node {name!r}: input {up!r} is not a node of the graph")
                visit(up, path + [name])
            done[name] = True
            out.append(self.nodes[name])

        for name in self.nodes:
            visit(name, [])
        return out

    def validate(self) -> list[Node]:
        """Check names, parameters, socket counts and types, cycles; returns the evaluation order."""
        for name, node in self.nodes.items():
            where = f"node {name!r}"
            if not _NAME.fullmatch(name):
                raise ValidationError(f"{where}: names are [A-Za-z_][A-Za-z0-9_]* (Nuke's rule)")
            if len(node.inputs) != len(node.input_types):
                raise ValidationError(f"{where} ({node.type}): takes {len(node.input_types)} input(s), "
                                      f"has {len(node.inputs)}")
            node.check(where)
        order = self.order()
        for node in order:
            for i, (up, want) in enumerate(zip(node.inputs, node.input_types)):
                got = self.nodes[up].output_type
                if got != want:
                    raise ValidationError(f"node {node.name!r} ({node.type}): input {i} wants {want}, node "
                                          f"{up!r} ({self.nodes[up].type}) gives {got or 'nothing'}")
        return order

    def outputs(self) -> list[Write]:
        return [n for n in self.nodes.values() if isinstance(n, Write)]

    # --- JSON -------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"version": GRAPH_VERSION,
                "nodes": [{"name": n.name, "type": n.type, "inputs": list(n.inputs), **_plain(n.params())}
                          for n in self.nodes.values()]}

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Graph":
        return cls.from_json(load_json(path, "give a comp graph JSON file"), source=str(path))

    @classmethod
    def from_json(cls, data: dict, source: str = "graph") -> "Graph":
        check_fields(data, source, {"version", "nodes"}, required=("nodes",))
        if data.get("version", GRAPH_VERSION) != GRAPH_VERSION:
            raise ValidationError(f"{source}: version {data['version']!r} is not supported")
        if not isinstance(data["nodes"], list):
            raise ValidationError(f"{source}.nodes: must be a list of node objects, got "
                                  f"{type(data['nodes']).__name__}")
        graph = cls()
        for i, item in enumerate(data["nodes"]):
            where = f"{source}: nodes[{i}]"
            if not isinstance(item, dict) or item.get("type") not in NODE_TYPES:
                raise ValidationError(f"{where}.type: {item.get('type') if isinstance(item, dict) else item!r} "
                                      f"is not one of {sorted(NODE_TYPES)}")
            cls_ = NODE_TYPES[item["type"]]
            known = {"name", "type", "inputs"} | set(cls_(name="x").params())
            check_fields(item, where, known, required=("name",))
            if not isinstance(item["name"], str):
                raise ValidationError(f"{where}.name: must be a string, got {item['name']!r}")
            kwargs = {k: v for k, v in item.items() if k != "type"}
            graph.add(cls_(**kwargs))
        graph.validate()
        return graph


def _plain(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
