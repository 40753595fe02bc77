"""A comp graph as a Nuke script (``.nk``) and back.

Nuke scripts are Tcl: each node is ``Class { knob value ... }``; a node pops its ``inputs``
(default 1) from a stack of nodes, the top becoming input 0, and pushes itself; ``set N [stack 0]``
names the top and ``push $N`` pushes a named node again (how one Read feeds several branches).
Merge2's input 0 is B and input 1 is A.

Mapping (only knobs that differ from Nuke's defaults are written):

    Read    -> Read     file, first, last, origfirst, origlast
    Shuffle -> Shuffle  in <layer>, in2 rgba, alpha alpha2 (RGB from the layer, A from rgba.alpha)
    Grade   -> Grade    white <gain>, multiply {tint 1}, whitepoint 2^-exposure
                        (Grade computes multiply * white / whitepoint * x with the other knobs at default)
    Merge   -> Merge2   operation plus|multiply (+ output rgb) or over (the default)
    Relight -> expanded: Shuffle + Multiply per basis layer, summed by Merge2 plus (Nuke has no
               Relight node; the weights come from the basis file's header)
    Write   -> Write    file, file_type exr, datatype "16 bit half", compression Zip (1 scanline)

EXR layers are declared with ``add_layer`` and Nuke's channel names: ``light_key.R`` is read as
``light_key.red``. relit's layer names are already ``[A-Za-z0-9_]`` with no leading digit.
A BackdropNode frames each light's branch.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from core.errors import ValidationError
from core.io.atomic import atomic_write_text

from .expand import expand_relight
from .graph import Grade, Graph, Merge, Read, Relight, Shuffle, Write

NUKE_CHANNELS = ("red", "green", "blue")
COLUMN, ROW = 150, 60  # node spacing in the node graph
_HEADER = "#! nuke\nversion 14.0 v5\n"


def _fmt(value: float) -> str:
    return repr(float(value)).removesuffix(".0") if float(value).is_integer() else repr(float(value))


def _quote(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_./#%:-]+", text) else "\"" + text.replace("\"", "\\\"") + "\""


def write_nuke(graph: Graph, path: str | Path, layers: list[str] | None = None, frame: int | None = None) -> Path:
    """Write ``graph`` as a Nuke script; ``layers`` are the EXR layers to declare (default: every
    layer the Shuffles use)."""
    graph.validate()
    if any(isinstance(n, Relight) for n in graph.nodes.values()):
        graph = expand_relight(graph, frame)
    text = nuke_script(graph, layers, Path(path).name)
    atomic_write_text(path, text)
    return Path(path)


def _knobs(node) -> list[tuple[str, str]]:
    if isinstance(node, Read):
        k = [("file", _quote(node.path))]
        if node.first is not None:
            k += [("first", str(node.first)), ("last", str(node.last)), ("origfirst", str(node.first)),
                  ("origlast", str(node.last))]
        return k
    if isinstance(node, Shuffle):
        return [("in", node.layer or "rgba"), ("in2", "rgba"), ("alpha", "alpha2")]
    if isinstance(node, Grade):
        k = []
        if float(node.gain) != 1.0:
            k.append(("white", _fmt(node.gain)))
        if tuple(node.tint) != (1.0, 1.0, 1.0):
            k.append(("multiply", "{" + " ".join(_fmt(v) for v in node.tint) + " 1}"))
        if float(node.exposure) != 0.0:
            k.append(("whitepoint", _fmt(2.0 ** -float(node.exposure))))
        return k
    if isinstance(node, Merge):
        return [] if node.op == "over" else [("operation", node.op), ("output", "rgb")]
    if isinstance(node, Write):
        return [("file", _quote(node.path)), ("file_type", "exr"), ("datatype", "\"16 bit half\""),
                ("compression", "\"Zip (1 scanline)\"")]
    raise ValidationError(f"node {node.name!r}: {node.type} has no Nuke equivalent")


NUKE_CLASS = {"Read": "Read", "Shuffle": "Shuffle", "Grade": "Grade", "Merge": "Merge2", "Write": "Write"}


def nuke_script(graph: Graph, layers: list[str] | None = None, name: str = "comp.nk") -> str:
    order = graph.validate()
    consumers: dict[str, int] = {n: 0 for n in graph.nodes}
    for node in order:
        for up in node.inputs:
            consumers[up] += 1
    reads = [n for n in order if isinstance(n, Read) and n.first is not None]
    lines = [_HEADER.rstrip("\n"), "Root {", " inputs 0", f" name {_quote(name)}"]
    if reads:
        lines += [f" first_frame {reads[0].first}", f" last_frame {reads[0].last}"]
    lines.append("}")
    declared = layers if layers is not None else [n.layer for n in order if isinstance(n, Shuffle) and n.layer]
    for layer in dict.fromkeys(declared):
        lines.append("add_layer {" + " ".join([layer] + [f"{layer}.{c}" for c in NUKE_CHANNELS]) + "}")
    # backdrops: one per light branch (a Shuffle and the Grade right after it)
    column = {n.name: i for i, n in enumerate(n for n in order if isinstance(n, Shuffle))}
    for node in order:
        if isinstance(node, Shuffle):
            c = column[node.name]
            lines += ["BackdropNode {", " inputs 0", f" name backdrop_{node.name.removeprefix('shuffle_')}",
                      f" label {_quote(node.layer or 'rgba')}", f" xpos {c * COLUMN - 20}", f" ypos {ROW - 40}",
                      f" bdwidth {COLUMN - 20}", f" bdheight {2 * ROW + 20}", "}"]
    emitted: set[str] = set()
    named: dict[str, str] = {}
    depth = {n.name: 0 for n in order}
    for node in order:
        for up in node.inputs:
            depth[node.name] = max(depth[node.name], depth[up] + 1)

    def xpos(node) -> int:
        if node.name in column:
            return column[node.name] * COLUMN
        ups = [xpos(graph.nodes[u]) for u in node.inputs]
        return ups[0] if ups else -COLUMN * (1 + [n for n in order if not n.inputs].index(node))

    def emit(name: str) -> None:
        node = graph.nodes[name]
        if name in emitted:
            lines.append(f"push ${named[name]}")
            return
        for up in node.inputs:  # Merge: A first (deeper), then B on top = input 0
            emit(up)
        lines.append(f"{NUKE_CLASS[node.type]} {{")
        lines.append(f" inputs {len(node.inputs)}" if len(node.inputs) != 1 else None)
        lines.extend(f" {k} {v}" for k, v in _knobs(node))
        lines.extend([f" name {node.name}", f" xpos {xpos(node)}", f" ypos {depth[name] * ROW}", "}"])
        emitted.add(name)
        if consumers[name] > 1:
            named[name] = f"N_{name}"
            lines.append(f"set N_{name} [stack 0]")

    for node in order:
        if consumers[node.name] == 0:
            emit(node.name)
    return "\n".join(line for line in lines if line is not None) + "\n"


# --- parsing ------------------------------------------------------------------------------------

_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\{)|(\})|([^\s{}"]+)')


def _tokens(text: str):
    for m in _TOKEN.finditer(text):
        if m.group(1) is not None:
            yield ("word", m.group(1).replace("\\\"", "\""))
        elif m.group(2):
            yield ("open", "{")
        elif m.group(3):
            yield ("close", "}")
        else:
            yield ("word", m.group(4))


def _braced(tokens) -> str:
    """The words inside a {...} value (already past the opening brace), space-joined."""
    words, level = [], 1
    for kind, value in tokens:
        if kind == "open":
            level += 1
        elif kind == "close":
            level -= 1
            if level == 0:
                return " ".join(words)
        else:
            words.append(value)
    raise ValidationError("unbalanced braces in the Nuke script")


def parse_nuke(text: str) -> tuple[Graph, list[str], list[dict]]:
    """(graph, declared layers, raw nodes [{class, knobs, inputs}]) of a script ``write_nuke`` wrote
    (or a hand-written one using the same node classes)."""
    lines = [line.strip() for line in text.splitlines()]
    stack: list[str | None] = []
    named: dict[str, str | None] = {}
    layers: list[str] = []
    raw: list[dict] = []
    graph = Graph()
    tokens = _tokens("\n".join(line for line in lines if not line.startswith("#")))
    for kind, word in tokens:
        if kind != "word":
            continue
        if word == "version":
            next(tokens), next(tokens)
            continue
        if word == "set":
            label, _ = next(tokens)[1], _braced_stack(tokens)
            named[label] = stack[-1]
            continue
        if word == "push":
            ref = next(tokens)[1]
            stack.append(None if ref == "0" else named[ref.lstrip("$")])
            continue
        if word == "add_layer":
            assert next(tokens)[0] == "open"
            layers.append(_braced(tokens).split()[0])
            continue
        # a node: Class { knobs }
        if next(tokens)[0] != "open":
            raise ValidationError(f"Nuke script: expected '{{' after {word}")
        knobs: dict[str, str] = {}
        while True:
            kind, key = next(tokens)
            if kind == "close":
                break
            kind, value = next(tokens)
            knobs[key] = _braced(tokens) if kind == "open" else value
        if word in ("Root", "BackdropNode"):
            raw.append({"class": word, "knobs": knobs, "inputs": []})
            continue
        n = int(knobs.get("inputs", 1))
        inputs = [stack.pop() for _ in range(n)]  # top of the stack is input 0
        raw.append({"class": word, "knobs": knobs, "inputs": inputs})
        graph.add(_node(word, knobs, inputs))
        stack.append(knobs["name"])
    graph.validate()
    return graph, layers, raw


def _braced_stack(tokens) -> str:
    """``[stack 0]`` after ``set NAME``."""
    parts = []
    for _, value in tokens:
        parts.append(value)
        if value.endswith("]"):
            return " ".join(parts)
    raise ValidationError("Nuke script: unterminated [stack 0]")


def _node(cls: str, knobs: dict[str, str], inputs: list[str | None]):
    name = knobs["name"]
    if cls == "Read":
        first = int(knobs["first"]) if "first" in knobs else None
        last = int(knobs["last"]) if "last" in knobs else None
        return Read(name, [], path=knobs["file"], first=first, last=last)
    if cls == "Shuffle":
        layer = knobs.get("in", "rgba")
        return Shuffle(name, inputs, layer="" if layer == "rgba" else layer)
    if cls == "Grade":
        tint = tuple(float(v) for v in knobs.get("multiply", "1 1 1 1").split()[:3])
        if len(tint) == 1:
            tint = tint * 3
        exposure = -math.log2(float(knobs.get("whitepoint", 1.0)))
        return Grade(name, inputs, gain=float(knobs.get("white", 1.0)), tint=tint, exposure=exposure + 0.0)
    if cls == "Merge2":
        b, a = inputs  # Nuke's input 0 is B, input 1 is A
        return Merge(name, [a, b], op=knobs.get("operation", "over"))
    if cls == "Write":
        return Write(name, inputs, path=knobs["file"])
    raise ValidationError(f"Nuke script: node {name!r} of class {cls} is not one relit reads")
