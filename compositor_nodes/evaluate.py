"""Headless evaluation of a comp graph with OpenImageIO's ImageBufAlgo, in float, frame by frame.

Every image is held as a float ImageBuf (pass files store half; ImageBufAlgo keeps the storage
type of its inputs, so reads convert to float first). Writes are atomic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import RelitIOError, ValidationError
from core.io import naming, passes, sequence
from core.io.atomic import atomic_path
from core.lighting import area, camera, hdri
from core.lighting import layout as layout_mod
from core.lighting import rig as rig_mod

from .graph import Grade, Graph, Merge, Read, Relight, Shuffle, Write

log = logging.getLogger(__name__)


@dataclass
class Multi:
    buf: object        # oiio.ImageBuf, float, every channel of the file
    path: Path         # the file it was read from (Relight reads its metadata)


def frame_file(pattern: str, frame: int | None) -> Path:
    if frame is None or not sequence.is_sequence(pattern):
        return Path(pattern)
    return sequence.frame_path(pattern, frame)


def _read(node: Read, frame: int | None) -> Multi:
    import OpenImageIO as oiio

    path = frame_file(node.path, frame)
    if not path.exists():
        raise RelitIOError(f"node {node.name!r} (Read): {path} not found")
    buf = oiio.ImageBuf(str(path))
    if not buf.read(0, 0, True, oiio.FLOAT):
        raise RelitIOError(f"node {node.name!r} (Read): {path} cannot be read ({buf.geterror().strip()})")
    return Multi(buf, path)


def _rgb_channels(node, multi: Multi, layer: str) -> tuple[str, str, str]:
    names = list(multi.buf.spec().channelnames)
    wanted = tuple(f"{layer}.{c}" if layer else c for c in "RGB")
    missing = [c for c in wanted if c not in names]
    if missing:
        layers = sorted({n.rpartition(".")[0] for n in names if "." in n})
        raise ValidationError(f"node {node.name!r} ({node.type}): {multi.path.name} has no layer {layer!r} "
                              f"(missing {missing}); its layers: {layers}")
    return wanted


def _with_alpha(rgb, multi: Multi):
    import OpenImageIO as oiio

    names = list(multi.buf.spec().channelnames)
    if "A" not in names:
        spec = rgb.spec()
        alpha = oiio.ImageBufAlgo.fill((1.0,), roi=oiio.ROI(0, spec.width, 0, spec.height, 0, 1, 0, 1))
    else:
        alpha = oiio.ImageBufAlgo.channels(multi.buf, ("A",))
    out = oiio.ImageBufAlgo.channel_append(rgb, alpha)
    out.specmod().channelnames = ("R", "G", "B", "A")
    return out


def _shuffle(node: Shuffle, multi: Multi):
    import OpenImageIO as oiio

    rgb = oiio.ImageBufAlgo.channels(multi.buf, _rgb_channels(node, multi, node.layer), ("R", "G", "B"))
    return _with_alpha(rgb, multi)


def _grade(node: Grade, img):
    import OpenImageIO as oiio

    return oiio.ImageBufAlgo.mul(img, tuple(node.factors()) + (1.0,))


def _merge(node: Merge, a, b):
    import OpenImageIO as oiio

    sa, sb = a.spec(), b.spec()
    if (sa.width, sa.height) != (sb.width, sb.height):
        raise ValidationError(f"node {node.name!r} (Merge): input A is {sa.width}x{sa.height}, input B is "
                              f"{sb.width}x{sb.height}; merge images of one size")
    if node.op == "over":
        return oiio.ImageBufAlgo.over(a, b)
    # plus and multiply combine RGB and keep B's alpha (Nuke's Merge2 with output rgb), so a sum of
    # light layers keeps the plate's matte instead of adding it up once per light
    rgb = (oiio.ImageBufAlgo.add if node.op == "plus" else oiio.ImageBufAlgo.mul)(
        oiio.ImageBufAlgo.channels(a, (0, 1, 2)), oiio.ImageBufAlgo.channels(b, (0, 1, 2)))
    out = oiio.ImageBufAlgo.channel_append(rgb, oiio.ImageBufAlgo.channels(b, (3,)))
    out.specmod().channelnames = ("R", "G", "B", "A")
    return out


def relight_weights(node: Relight, metadata: dict, source: str) -> tuple[list[str], np.ndarray]:
    """Basis layer names and their RGB weights [N, 3] (W/m² per channel) for the node's lighting.

    An HDRI is projected onto the stage cells stored in the file exactly as ``relit relight
    --hdri-strategy stage`` projects it; a rig's lights go to their nearest stage direction (size 0)
    or spread over the cells as the model's area lights are (size beta).
    """
    basis, stage, c2w = metadata.get("basis"), metadata.get("stage"), metadata.get("camera_c2w")
    if not basis or stage is None or c2w is None:
        raise ValidationError(f"node {node.name!r} (Relight): {source} is not an OLAT-basis file (write one with "
                              "relit relight --basis)")
    layout = layout_mod.layout_from_json(stage, source=f"{source}: relit/stage")
    index = layout.nearest(np.array([b["world_direction"] for b in basis]))
    weights = np.zeros((len(layout), 3))
    rig = rig_mod.LightRig.from_json(node.rig, source=f"node {node.name!r}.rig") if node.rig else None
    env = None
    if node.hdri is not None:
        env = rig_mod.Environment(node.hdri, tuple(node.rotation), node.intensity)
    elif rig is not None:
        env = rig.environment
    if env is not None:
        pixels = hdri.load_environment(env.path)
        weights += hdri.project_to_layout(pixels, layout, tuple(env.rotation), env.intensity, node.missing).weights
    for light in (rig.lights if rig is not None else []):
        world = camera.camera_to_world_directions(np.asarray(light.direction)[None], np.asarray(c2w))[0]
        rgb = np.asarray(light.rgb) * light.intensity
        if light.size > 0:
            spread = area.sg_cell_weights(world, light.size, layout.directions, layout.solid_angles,
                                          layout.olat_radius)
        else:
            spread = np.eye(len(layout))[layout.nearest(world[None])[0]]
        weights += np.outer(spread, rgb)
    return [b["layer"] for b in basis], weights[index]


def _relight(node: Relight, multi: Multi):
    import OpenImageIO as oiio

    layers, weights = relight_weights(node, passes.read_metadata(multi.path), multi.path.name)
    spec = multi.buf.spec()
    total = oiio.ImageBufAlgo.zero(oiio.ROI(0, spec.width, 0, spec.height, 0, 1, 0, 3))
    for layer, w in zip(layers, weights):
        if not np.any(w):
            continue
        rgb = oiio.ImageBufAlgo.channels(multi.buf, _rgb_channels(node, multi, naming.light_layer_name(layer)),
                                         ("R", "G", "B"))
        total = oiio.ImageBufAlgo.mad(rgb, tuple(float(v) for v in w), total)
    return _with_alpha(total, multi)


def _write(node: Write, img, frame: int | None) -> Path:
    import OpenImageIO as oiio

    path = frame_file(node.path, frame)
    out = oiio.ImageBuf(img.spec())
    oiio.ImageBufAlgo.copy(out, img)
    out.specmod().attribute("compression", "zip")
    out.set_write_format(oiio.HALF)
    with atomic_path(path) as tmp:
        if not out.write(str(tmp)):
            raise RelitIOError(f"node {node.name!r} (Write): cannot write {path} ({out.geterror().strip()})")
    return path


def check_writes(graph: Graph, frames: list[int | None], overwrite: bool = False) -> None:
    """Before any frame is evaluated: no Write lands on a file a Read of the graph reads, on a folder,
    on another Write's file, or (unless ``overwrite``) on a file that already exists."""
    reads = {frame_file(n.path, f).resolve(): n.name for n in graph.nodes.values() if isinstance(n, Read)
             for f in frames}
    taken: dict[Path, str] = {}
    for node in graph.outputs():
        for frame in frames:
            path = frame_file(node.path, frame).resolve()
            where = f"node {node.name!r} (Write): {path}"
            if path in reads:
                raise ValidationError(f"{where} is what node {reads[path]!r} reads: a comp never writes over its "
                                      "inputs; give the Write another path")
            if path in taken:
                raise ValidationError(f"{where} is also written by node {taken[path]!r}; give each Write its own path")
            if path.is_dir():
                raise RelitIOError(f"{where} is a folder; give a file path (name.exr or name.####.exr)")
            if path.exists() and not overwrite:
                raise RelitIOError(f"{where} exists; relit does not replace a finished file: give another path, "
                                   "or --overwrite to replace this comp's earlier output")
            taken[path] = node.name


def evaluate(graph: Graph, frame: int | None = None, keep: set[str] | None = None) -> dict[str, object]:
    """Evaluate every node for ``frame`` (None: single files); Write nodes write their file.

    Returns the value of each node named in ``keep`` (an ImageBuf, or a Path for a Write).
    """
    values: dict[str, object] = {}
    for node in graph.validate():
        args = [values[name] for name in node.inputs]
        if isinstance(node, Read):
            values[node.name] = _read(node, frame)
        elif isinstance(node, Shuffle):
            values[node.name] = _shuffle(node, *args)
        elif isinstance(node, Grade):
            values[node.name] = _grade(node, *args)
        elif isinstance(node, Merge):
            values[node.name] = _merge(node, *args)
        elif isinstance(node, Relight):
            values[node.name] = _relight(node, *args)
        elif isinstance(node, Write):
            values[node.name] = _write(node, *args, frame)
    return {k: v for k, v in values.items() if keep is None or k in keep}


def pixels(buf) -> np.ndarray:  # [H, W, C] float32
    """An ImageBuf's pixels as a numpy array."""
    import OpenImageIO as oiio

    spec = buf.spec()
    return np.asarray(buf.get_pixels(oiio.FLOAT), np.float32).reshape(spec.height, spec.width, spec.nchannels)
