"""A compositor_nodes graph as a Blender 5 compositor node group (``scene.compositing_node_group``).

Read -> Image node (sequences as image sequences); Shuffle -> the Image node's layer output with
the file's alpha set on it; Grade -> an instance of the "relit Grade" group (Gain, Tint, Exposure
inputs, keyframeable); Merge plus/multiply -> Mix (clamping off) keeping B's alpha, over -> Alpha
Over; Write -> the group's Image output. Relight nodes are spelled out first (Shuffle x weight,
summed), as for Nuke. Each light's branch sits in a Frame named after its layer.
"""

from __future__ import annotations

import bpy

from compositor_nodes.evaluate import frame_file
from compositor_nodes.expand import expand_relight
from compositor_nodes.graph import Grade, Merge, Read, Relight, Shuffle, Write
from core.errors import ValidationError

GRADE_GROUP = "relit Grade"
COLUMN, ROW = 260.0, 220.0


def _sockets(node, kind: str, out: bool = False) -> list:
    """Sockets of a given type (``ShaderNodeMix`` repeats names across its data types)."""
    return [s for s in (node.outputs if out else node.inputs) if s.type == kind and s.enabled]


def _mix(tree, blend: str):
    mix = tree.nodes.new("ShaderNodeMix")
    mix.data_type, mix.blend_type, mix.clamp_result, mix.clamp_factor = "RGBA", blend, False, False
    mix.inputs[0].default_value = 1.0
    return mix


def _set_alpha(tree, image_socket, alpha_socket):
    node = tree.nodes.new("CompositorNodeSetAlpha")
    node.inputs["Type"].default_value = "Replace Alpha"
    tree.links.new(image_socket, node.inputs["Image"])
    tree.links.new(alpha_socket, node.inputs["Alpha"])
    return node


def _alpha_of(tree, image_socket):
    sep = tree.nodes.new("CompositorNodeSeparateColor")
    tree.links.new(image_socket, sep.inputs["Image"])
    return sep.outputs["Alpha"]


def grade_group() -> bpy.types.NodeTree:
    """The shared group behind every Grade node: RGB x Tint x 2^Exposure x Gain, alpha kept."""
    group = bpy.data.node_groups.get(GRADE_GROUP)
    if group is not None:
        return group
    group = bpy.data.node_groups.new(GRADE_GROUP, "CompositorNodeTree")
    iface = group.interface
    iface.new_socket(name="Image", in_out="INPUT", socket_type="NodeSocketColor")
    gain = iface.new_socket(name="Gain", in_out="INPUT", socket_type="NodeSocketFloat")
    gain.default_value = 1.0
    tint = iface.new_socket(name="Tint", in_out="INPUT", socket_type="NodeSocketColor")
    tint.default_value = (1.0, 1.0, 1.0, 1.0)
    iface.new_socket(name="Exposure", in_out="INPUT", socket_type="NodeSocketFloat")
    iface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    nodes, links = group.nodes, group.links
    inp, out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    tinted = _mix(group, "MULTIPLY")
    links.new(inp.outputs["Image"], _sockets(tinted, "RGBA")[0])
    links.new(inp.outputs["Tint"], _sockets(tinted, "RGBA")[1])
    exposure = nodes.new("CompositorNodeExposure")
    links.new(_sockets(tinted, "RGBA", out=True)[0], exposure.inputs["Image"])
    links.new(inp.outputs["Exposure"], exposure.inputs["Exposure"])
    scale = nodes.new("ShaderNodeVectorMath")
    scale.operation = "SCALE"
    links.new(exposure.outputs["Image"], scale.inputs[0])
    links.new(inp.outputs["Gain"], scale.inputs["Scale"])
    alpha = _set_alpha(group, scale.outputs["Vector"], _alpha_of(group, inp.outputs["Image"]))
    links.new(alpha.outputs["Image"], out.inputs["Image"])
    for i, node in enumerate((inp, tinted, exposure, scale, alpha, out)):
        node.location = (i * 200.0, 0.0)
    return group


def _load_image(read, frame_file) -> bpy.types.Image:
    path = frame_file(read.path, read.first)
    image = bpy.data.images.load(str(path), check_existing=True)
    if read.first is not None:
        image.source = "SEQUENCE"
    return image


GRADE_INPUTS = ("Gain", "Tint", "Exposure")  # what an artist sets on a light's grade (kept across rebuilds)


def _reuse(name: str) -> tuple[bpy.types.NodeTree, dict[str, dict[str, object]]]:
    """The node group called ``name``, emptied to be built again in place (one group per shot, however
    often it is relit), and the grade settings its lights had, by node name; or a new group."""
    tree = bpy.data.node_groups.get(name)
    if tree is None or tree.bl_idname != "CompositorNodeTree":
        return bpy.data.node_groups.new(name, "CompositorNodeTree"), {}
    kept = {n.name: {k: (tuple(n.inputs[k].default_value) if k == "Tint" else n.inputs[k].default_value)
                     for k in GRADE_INPUTS}
            for n in tree.nodes if n.type == "GROUP" and n.node_tree is not None and n.node_tree.name == GRADE_GROUP}
    tree.nodes.clear()
    tree.interface.clear()
    return tree, kept


def build_node_group(graph, scene: bpy.types.Scene, name: str = "relit comp",
                     frame: int | None = None) -> bpy.types.NodeTree:
    """Build ``graph`` as the compositor node group ``name`` and make it the scene's compositor. A group
    of that name is rebuilt in place, and its lights keep the gain, tint and exposure set on them."""
    if any(isinstance(n, Relight) for n in graph.nodes.values()):
        graph = expand_relight(graph, frame)
    order = graph.validate()
    tree, kept = _reuse(name)
    tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    out_node = tree.nodes.new("NodeGroupOutput")
    made: dict[str, object] = {}       # graph node -> Blender node (its main output)
    column: dict[str, float] = {}
    frames: dict[str, bpy.types.Node] = {}
    for i, node in enumerate(order):
        if isinstance(node, Read):
            bnode = tree.nodes.new("CompositorNodeImage")
            bnode.image = _load_image(node, frame_file)
            if node.first is not None:
                bnode.frame_start, bnode.frame_duration = node.first, node.last - node.first + 1
                bnode.frame_offset = node.first - 1
            bnode.location = (0.0, -ROW * len(made))
        elif isinstance(node, Shuffle):
            src = made[node.inputs[0]]
            socket = src.outputs.get(node.layer or "Combined")
            if socket is None:
                layers = [o.name for o in src.outputs if o.name not in ("Combined", "Alpha")]
                raise ValidationError(
                    f"node {node.name!r} (Shuffle): {src.image.filepath} has no layer {node.layer!r}; its layers: "
                    f"{layers}")
            bnode = _set_alpha(tree, socket, src.outputs["Alpha"])
            column[node.name] = COLUMN * (1 + len(column))
            frame_node = tree.nodes.new("NodeFrame")
            frame_node.name = frame_node.label = f"light {node.layer.removeprefix('light_') or 'beauty'}"
            frames[node.name] = frame_node
            bnode.parent = frame_node
        elif isinstance(node, Grade):
            bnode = tree.nodes.new("CompositorNodeGroup")
            bnode.node_tree = grade_group()
            tree.links.new(made[node.inputs[0]].outputs[0], bnode.inputs["Image"])
            bnode.inputs["Gain"].default_value = float(node.gain)
            bnode.inputs["Tint"].default_value = tuple(float(v) for v in node.tint) + (1.0,)
            bnode.inputs["Exposure"].default_value = float(node.exposure)
            for key, value in kept.get(node.name, {}).items():
                bnode.inputs[key].default_value = value
            up = node.inputs[0]
            if up in frames:
                bnode.parent = frames[up]
                column[node.name] = column[up]
        elif isinstance(node, Merge):
            a, b = (made[n].outputs[0] for n in node.inputs)
            if node.op == "over":
                bnode = tree.nodes.new("CompositorNodeAlphaOver")
                tree.links.new(b, bnode.inputs["Background"])
                tree.links.new(a, bnode.inputs["Foreground"])
            else:
                mix = _mix(tree, "ADD" if node.op == "plus" else "MULTIPLY")
                tree.links.new(a, _sockets(mix, "RGBA")[0])
                tree.links.new(b, _sockets(mix, "RGBA")[1])
                bnode = _set_alpha(tree, _sockets(mix, "RGBA", out=True)[0], _alpha_of(tree, b))
                mix.location = (COLUMN * (len(column) + 1), -ROW * i)
        elif isinstance(node, Write):
            tree.links.new(made[node.inputs[0]].outputs[0], out_node.inputs["Image"])
            bnode = out_node
        else:
            raise ValidationError(f"node {node.name!r}: {node.type} has no Blender equivalent")
        bnode.name = bnode.label = node.name
        if node.name in column:
            bnode.location = (column[node.name], -ROW * (2 if isinstance(node, Grade) else 1))
        elif not isinstance(node, Read):
            bnode.location = (COLUMN * (len(column) + 2), -ROW * (3 + i * 0.25))
        made[node.name] = bnode
    scene.compositing_node_group = tree
    return tree
