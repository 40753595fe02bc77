"""compositor_nodes: the graph, its OpenImageIO evaluation, the Relight node, the Nuke script."""

import json

import numpy as np
import pytest

from compositor_nodes.defaults import default_graph
from compositor_nodes.evaluate import evaluate, pixels
from compositor_nodes.graph import Grade, Graph, Merge, Read, Relight, Shuffle, Write
from compositor_nodes.nuke import nuke_script, parse_nuke, write_nuke
from core.errors import RelitError, ValidationError
from core.io.exr import read_channels, write_rgba
from core.io.passes import PassMetadata, RelitPasses, read_passes, write_passes
from core.lighting.camera import front_camera_c2w
from core.lighting.rig import Environment, LightRig
from core.relight_job import run_relight
from tests.conftest import env_from_function
from tests.conftest import relight_job as _job, write_plates as _plates

H, W = 12, 16


def _pass_file(path, names=("key", "rim", "environment"), seed=0):
    rng = np.random.default_rng(seed)
    alpha = np.ones((H, W), np.float32)
    alpha[:, :3] = 0
    layers = {n: (rng.random((H, W, 3)) * 4 * alpha[..., None]).astype(np.float32) for n in names}
    return write_passes(path, RelitPasses(layers, alpha), PassMetadata(rig={}))


def test_default_graph_with_unit_gains_is_the_beauty_and_gains_reweight(tmp_path):
    path = _pass_file(tmp_path / "relit.exr")
    g = default_graph(str(path), str(tmp_path / "comp.exr"))
    evaluate(g)
    out = read_channels(tmp_path / "comp.exr", ["R", "G", "B", "A"])
    layers, beauty, alpha = read_passes(path)
    # the comp sums half layers in float; the file's beauty is the float32 sum rounded to half once
    np.testing.assert_allclose(out[..., :3], beauty, rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(out[..., 3], alpha)
    g.nodes["grade_key"].gain = 0.5
    g.nodes["grade_rim"].tint = (1.0, 0.25, 2.0)
    g.nodes["grade_environment"].exposure = 1.0
    last = g.nodes["write"].inputs[0]  # the last Merge of the chain
    values = evaluate(g, keep={last})
    expected = 0.5 * layers["light_key"] + layers["light_rim"] * np.array([1.0, 0.25, 2.0]) \
        + 2.0 * layers["light_environment"]
    np.testing.assert_allclose(pixels(values[last])[..., :3], expected, rtol=1e-6, atol=1e-6)


def test_merge_over_and_multiply():
    a = np.random.default_rng(1).random((H, W, 4)).astype(np.float32)
    b = np.random.default_rng(2).random((H, W, 4)).astype(np.float32)
    import OpenImageIO as oiio

    from compositor_nodes.evaluate import _merge

    def buf(x):
        out = oiio.ImageBuf(oiio.ImageSpec(W, H, 4, "float"))
        out.set_pixels(oiio.ROI(), x)
        return out

    over = pixels(_merge(Merge("m", ["a", "b"], op="over"), buf(a), buf(b)))
    np.testing.assert_allclose(over, a + b * (1 - a[..., 3:]), rtol=1e-6)
    mul = pixels(_merge(Merge("m", ["a", "b"], op="multiply"), buf(a), buf(b)))
    np.testing.assert_allclose(mul[..., :3], a[..., :3] * b[..., :3], rtol=1e-6)
    np.testing.assert_array_equal(mul[..., 3], b[..., 3])


def test_bad_graphs_name_the_node(tmp_path):
    path = _pass_file(tmp_path / "relit.exr")
    g = Graph()
    g.add(Read("passes", path=str(path)))
    g.add(Shuffle("shuffle_fill", ["passes"], layer="light_fill"))
    g.add(Write("write", ["shuffle_fill"], path=str(tmp_path / "o.exr")))
    with pytest.raises(ValidationError, match=r"node 'shuffle_fill' \(Shuffle\): relit.exr has no layer "
                                              r"'light_fill'.*light_key"):
        evaluate(g)
    cyc = Graph()
    cyc.add(Grade("a", ["b"]))
    cyc.add(Grade("b", ["a"]))
    with pytest.raises(ValidationError, match=r"node 'a': is part of a cycle \(a -> b -> a\)"):
        cyc.validate()
    other = tmp_path / "small.exr"
    write_rgba(other, np.zeros((H // 2, W, 3), np.float32), np.ones((H // 2, W), np.float32))
    g = Graph()
    g.add(Read("passes", path=str(path)))
    g.add(Read("small", path=str(other)))
    g.add(Shuffle("s1", ["passes"], layer="light_key"))
    g.add(Shuffle("s2", ["small"]))
    g.add(Merge("sum", ["s1", "s2"], op="plus"))
    with pytest.raises(ValidationError, match=r"node 'sum' \(Merge\): input A is 16x12, input B is 16x6"):
        evaluate(g)
    wrong = Graph()
    wrong.add(Read("passes", path=str(path)))
    wrong.add(Grade("g", ["passes"]))
    with pytest.raises(ValidationError, match=r"node 'g' \(Grade\): input 0 wants rgba, node 'passes' \(Read\) "
                                              r"gives multi"):
        wrong.validate()
    with pytest.raises(ValidationError, match=r"nodes\[0\].type: 'Blur' is not one of"):
        Graph.from_json({"nodes": [{"name": "b", "type": "Blur"}]})


def test_graph_json_round_trips(tmp_path):
    path = _pass_file(tmp_path / "relit.exr")
    g = default_graph(str(path), str(tmp_path / "comp.exr"), plate=str(path))
    g.nodes["grade_rim"].tint = (0.5, 1.0, 2.0)
    g.save(tmp_path / "g.json")
    again = Graph.load(tmp_path / "g.json")
    assert again.to_json() == g.to_json()
    assert json.loads((tmp_path / "g.json").read_text())["nodes"][0]["type"] == "Read"


def test_relight_node_on_a_basis_file_equals_a_fresh_stage_relight(tmp_path, bundle):
    env = env_from_function(16, lambda d: (0.3 + np.exp(4 * (d @ np.array([-0.5, -0.7, 0.5]) - 1)))[..., None]
                            * np.array([1.0, 0.9, 0.7]))
    write_rgba(tmp_path / "env.exr", env, np.ones(env.shape[:2], np.float32))
    c2w = front_camera_c2w(2.0).tolist()
    plates = _plates(tmp_path, [1])
    # the basis once, with no environment
    basis = run_relight(_job(bundle, plates, tmp_path / "basis", rig=None, basis=True))
    basis_file = basis.folder / "relit_basis.0001.exr"
    # a fresh stage relight of the HDRI, same bundle and seed
    rot = (0.0, 0.0, 0.9)
    rig = LightRig([], Environment(str(tmp_path / "env.exr"), rot, 2.0), c2w)
    fresh = run_relight(_job(bundle, plates, tmp_path / "fresh", rig=rig.to_json()))
    truth = read_passes(fresh.frames[0].path)[0]["light_environment"]
    g = Graph()
    g.add(Read("basis", path=str(basis_file)))
    g.add(Relight("relight", ["basis"], hdri=str(tmp_path / "env.exr"), rotation=rot, intensity=2.0))
    g.add(Write("write", ["relight"], path=str(tmp_path / "relit_in_comp.exr")))
    evaluate(g)
    comp = read_channels(tmp_path / "relit_in_comp.exr", ["R", "G", "B"])
    # exact up to half-float storage of the basis layers and of both outputs
    np.testing.assert_allclose(comp, truth, rtol=4e-3, atol=2e-3 * float(truth.max()))
    # and the Nuke export expands it into Shuffle x weight branches that evaluate to the same image
    write_nuke(g, tmp_path / "relight.nk")
    expanded, _, _ = parse_nuke((tmp_path / "relight.nk").read_text())
    expanded.nodes["write"].path = str(tmp_path / "from_nuke.exr")
    evaluate(expanded)
    np.testing.assert_allclose(read_channels(tmp_path / "from_nuke.exr", ["R", "G", "B"]), comp, rtol=2e-3,
                               atol=1e-3 * float(comp.max()))


def test_relight_node_refuses_a_file_without_a_basis(tmp_path):
    path = _pass_file(tmp_path / "relit.exr")
    g = Graph()
    g.add(Read("passes", path=str(path)))
    g.add(Relight("relight", ["passes"], hdri=str(path)))
    with pytest.raises(RelitError, match="node 'relight' \\(Relight\\): relit.exr is not an OLAT-basis file"):
        evaluate(g)


# A Nuke script for a three-light pass file, written by hand from Nuke's documented syntax: nodes are
# `Class { knob value }`, a node pops `inputs` nodes (top of the stack = input 0) and pushes itself,
# `set N [stack 0]` names the top, `push $N` pushes it again; Merge2's input 0 is B, input 1 is A.
REFERENCE_NK = """#! nuke
version 14.0 v5
Root {
 inputs 0
 name comp.nk
 first_frame 1001
 last_frame 1002
}
add_layer {light_key light_key.red light_key.green light_key.blue}
add_layer {light_rim light_rim.red light_rim.green light_rim.blue}
add_layer {light_environment light_environment.red light_environment.green light_environment.blue}
BackdropNode {
 inputs 0
 name backdrop_key
 label light_key
 xpos -20
 ypos 20
 bdwidth 130
 bdheight 140
}
BackdropNode {
 inputs 0
 name backdrop_rim
 label light_rim
 xpos 130
 ypos 20
 bdwidth 130
 bdheight 140
}
BackdropNode {
 inputs 0
 name backdrop_environment
 label light_environment
 xpos 280
 ypos 20
 bdwidth 130
 bdheight 140
}
Read {
 inputs 0
 file /shots/sh010/relit/v001/relit.####.exr
 first 1001
 last 1002
 origfirst 1001
 origlast 1002
 name passes
 xpos -150
 ypos 0
}
set N_passes [stack 0]
Shuffle {
 in light_environment
 in2 rgba
 alpha alpha2
 name shuffle_environment
 xpos 300
 ypos 60
}
Grade {
 name grade_environment
 xpos 300
 ypos 120
}
push $N_passes
Shuffle {
 in light_rim
 in2 rgba
 alpha alpha2
 name shuffle_rim
 xpos 150
 ypos 60
}
Grade {
 multiply {0.5 0.75 1 1}
 name grade_rim
 xpos 150
 ypos 120
}
push $N_passes
Shuffle {
 in light_key
 in2 rgba
 alpha alpha2
 name shuffle_key
 xpos 0
 ypos 60
}
Grade {
 white 1.5
 whitepoint 0.5
 name grade_key
 xpos 0
 ypos 120
}
Merge2 {
 inputs 2
 operation plus
 output rgb
 name sum_rim
 xpos 150
 ypos 180
}
Merge2 {
 inputs 2
 operation plus
 output rgb
 name sum_environment
 xpos 300
 ypos 240
}
Write {
 file /shots/sh010/comp/comp.####.exr
 file_type exr
 datatype "16 bit half"
 compression "Zip (1 scanline)"
 name write
 xpos 300
 ypos 300
}
"""


def _raw_nodes(text):
    return [(n["class"], n["knobs"], n["inputs"]) for n in parse_nuke(text)[2]]


def test_nuke_script_matches_a_hand_written_reference_and_parses_back():
    g = default_graph("/shots/sh010/relit/v001/relit.####.exr", "/shots/sh010/comp/comp.####.exr",
                      first=1001, last=1002, layers=["light_key", "light_rim", "light_environment"])
    g.nodes["grade_key"].gain, g.nodes["grade_key"].exposure = 1.5, 1.0
    g.nodes["grade_rim"].tint = (0.5, 0.75, 1.0)
    text = nuke_script(g)
    # node for node, knob for knob, wired the same
    assert _raw_nodes(text) == _raw_nodes(REFERENCE_NK)
    parsed, layers, _ = parse_nuke(REFERENCE_NK)
    assert layers == ["light_key", "light_rim", "light_environment"]
    by_name = lambda graph: {n["name"]: n for n in graph.to_json()["nodes"]}  # noqa: E731
    assert by_name(parsed) == by_name(g)
    # Merge2 wiring: B (input 0) is the running sum, A (input 1) the new light
    assert parsed.nodes["sum_environment"].inputs == ["grade_environment", "sum_rim"]


def test_nuke_layer_names_follow_nukes_channel_rules(tmp_path):
    from core.io.naming import light_layer_name

    for raw in ("Key Light", "2nd-fill", "rim.left"):
        layer = light_layer_name(raw)
        text = nuke_script(default_graph("/p.exr", "/o.exr", layers=[layer]))
        declared = parse_nuke(text)[1]
        assert declared == [layer]
        assert layer.replace("light_", "")[0].isalpha() or layer.replace("light_", "")[0] == "_"
        assert all(c.isalnum() or c == "_" for c in layer)
        assert f"add_layer {{{layer} {layer}.red {layer}.green {layer}.blue}}" in text


def test_relit_comp_streams_a_sequence_and_writes_the_nuke_script(tmp_path):
    from tests.conftest import run_relit

    for f in (1001, 1002):
        _pass_file(tmp_path / f"relit.{f:04d}.exr", seed=f)
    run = run_relit("comp", "--default", str(tmp_path / "relit.####.exr"), "-o", str(tmp_path / "comp.####.exr"),
                    "--nuke", str(tmp_path / "comp.nk"), "--save-graph", str(tmp_path / "g.json"))
    assert run.returncode == 0, run.stderr
    for f in (1001, 1002):
        _, beauty, _ = read_passes(tmp_path / f"relit.{f:04d}.exr")
        out = read_channels(tmp_path / f"comp.{f:04d}.exr", ["R", "G", "B"])
        np.testing.assert_allclose(out, beauty, rtol=2e-3, atol=2e-3)
    graph, layers, _ = parse_nuke((tmp_path / "comp.nk").read_text())
    assert layers == ["light_environment", "light_key", "light_rim"] and graph.nodes["passes"].first == 1001
    before = (tmp_path / "comp.1002.exr").read_bytes()
    refused = run_relit("comp", str(tmp_path / "g.json"), "--frames", "1002")
    assert refused.returncode == 2 and "comp.1002.exr exists; relit does not replace a finished file" in refused.stderr
    assert (tmp_path / "comp.1002.exr").read_bytes() == before
    rerun = run_relit("comp", str(tmp_path / "g.json"), "--frames", "1002", "--overwrite")
    assert rerun.returncode == 0 and "comp: 1 frame(s)" in rerun.stdout
