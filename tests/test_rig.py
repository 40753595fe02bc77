import copy
import json
import math

import numpy as np
import pytest

from core.errors import ValidationError
from core.lighting.camera import front_camera_c2w, look_at_c2w
from core.lighting.hdri import project_to_layout
from core.lighting.layout import builtin_layout
from core.lighting.rig import LightRig, stage_rig
from tests.conftest import env_from_function

RIG = {
    "version": 1,
    "lights": [
        {"name": "key", "type": "area", "direction": [0.5, 0.5, 0.7071], "size": 0.2, "rgb": [1, 0.9, 0.8],
         "intensity": 3.0, "group": "front"},
        {"name": "fill", "type": "point", "direction": [-2, 0, 1], "group": "front"},
        {"name": "rim light", "type": "sun", "direction": [0, 0.3, -1], "intensity": 10},
    ],
    "environment": {"path": "studio.exr", "rotation": [0, 0, 1.0], "intensity": 0.5},
}


def test_round_trip(tmp_path):
    rig = LightRig.from_json(RIG)
    assert rig.lights[1].direction == pytest.approx((-2 / math.sqrt(5), 0, 1 / math.sqrt(5)))
    path = tmp_path / "rig.json"
    rig.save(path)
    back = LightRig.load(path)
    assert back.to_json() == rig.to_json()
    assert list(back.layers()) == ["light_front", "light_rim_light"]
    assert [l.name for l in back.layers()["light_front"]] == ["key", "fill"]


@pytest.mark.parametrize("edit, field", [
    (lambda r: r["lights"][1].update(direction=[0, 0, 0]), r"lights\[1\].direction"),
    (lambda r: r["lights"][0].update(size=1.5), r"lights\[0\].size"),
    (lambda r: r["lights"][2].update(type="laser"), r"lights\[2\].type: 'laser'"),
    (lambda r: r["lights"][0].update(colour=[1, 1, 1]), r"lights\[0\]: unknown field.*colour"),
    (lambda r: r.update(camera="cam1"), r"unknown field.*camera"),
    (lambda r: r["lights"][0].update(intensity=-1), r"lights\[0\].intensity"),
    (lambda r: r["lights"][0].update(rgb=[1, 1]), r"lights\[0\].rgb"),
    (lambda r: r["lights"][1].update(name="key"), "repeated: \\['key'\\]"),
    (lambda r: r["environment"].update(rotation=[0, "x", 0]), r"environment.rotation"),
    (lambda r: r["environment"].pop("path"), r"environment.path: missing"),
    (lambda r: r["lights"][0].update(intensity=float("nan")), r"lights\[0\].intensity"),
    (lambda r: r.update(version=2), "version"),
    (lambda r: r["lights"][2].update(name="environment"), "'environment' names the environment's layer"),
    (lambda r: r["lights"][0].update(group="rim-light"), "'rim light' and 'rim-light' both become layer"),
])
def test_validation_names_the_bad_field(tmp_path, edit, field):
    data = copy.deepcopy(RIG)
    edit(data)
    path = tmp_path / "rig.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match=field) as err:
        LightRig.load(path)
    assert "rig.json" in str(err.value)


def test_empty_rig_is_rejected():
    with pytest.raises(ValidationError, match="no lights and no environment"):
        LightRig.from_json({"lights": []})


def test_stage_rig_carries_projection_weights_in_the_camera_frame():
    layout = builtin_layout("fib123")
    sun = np.array([0.0, -1.0, 0.2]) / math.hypot(1, 0.2)  # towards a camera on -Y
    env = env_from_function(64, lambda d: np.exp(40 * (d @ sun - 1))[..., None] * np.array([1.0, 0.5, 0.25]))
    proj = project_to_layout(env, layout)
    c2w = front_camera_c2w(3.0)
    rig = stage_rig(layout, proj, c2w)
    rgb = np.array([np.array(l.rgb) * l.intensity for l in rig.lights])
    np.testing.assert_allclose(rgb, proj.weights, rtol=1e-12)
    brightest = rig.lights[int(np.argmax(rgb[:, 0]))]
    # the sun is nearly behind the camera, slightly above: camera frame (0, +y small, +z)
    assert brightest.direction[2] > 0.9 and brightest.direction[1] > 0
    back = LightRig.from_json(json.loads(rig.dumps()))
    assert len(back.lights) == 123
    np.testing.assert_allclose(back.camera_c2w, c2w)


def test_look_at_is_a_rotation():
    c2w = look_at_c2w(np.array([1.0, 2.0, 3.0]), np.zeros(3))
    np.testing.assert_allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(c2w[:3, :3]) == pytest.approx(1.0)
