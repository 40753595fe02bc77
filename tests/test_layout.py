import json
import math

import numpy as np
import pytest
from scipy.spatial import SphericalVoronoi

from core.errors import ValidationError
from core.lighting.layout import builtin_layout, load_layout, ring_directions


@pytest.mark.parametrize("name", ["default", "fib123"])
def test_builtin_layouts_are_near_uniform_and_tile_the_sphere(name):
    layout = builtin_layout(name)
    assert 120 <= len(layout) <= 160
    np.testing.assert_allclose(np.linalg.norm(layout.directions, axis=1), 1.0, atol=1e-12)
    assert layout.solid_angles.sum() == pytest.approx(4 * math.pi, abs=1e-3)
    assert layout.solid_angles.max() / layout.solid_angles.min() < 1.5
    assert len(set(layout.names)) == len(layout)


@pytest.mark.parametrize("name", ["default", "fib123", "rings64"])
def test_cell_solid_angles_match_exact_spherical_voronoi(name):
    layout = builtin_layout(name)
    exact = SphericalVoronoi(layout.directions).calculate_areas()
    np.testing.assert_allclose(layout.solid_angles, exact, rtol=5e-3)


def test_ring_layout_is_symmetric_under_quarter_turns():
    d = ring_directions(123)
    turned = d @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]]).T
    nearest = np.abs(turned[:, None, :] - d[None, :, :]).sum(-1).min(axis=1)
    assert nearest.max() < 1e-12


def test_dome_layout_covers_above_its_floor():
    dome = builtin_layout("dome123")
    assert dome.floor_z == pytest.approx(math.sin(math.radians(-20)))
    assert dome.directions[:, 2].min() >= dome.floor_z
    assert dome.coverage == pytest.approx(2 * math.pi * (1 - dome.floor_z))
    assert dome.solid_angles.sum() == pytest.approx(dome.coverage, rel=1e-3)


def test_layout_json_round_trip(tmp_path):
    layout = builtin_layout("dome64")
    path = tmp_path / "stage.json"
    path.write_text(json.dumps(layout.to_json()))
    back = load_layout(path)
    np.testing.assert_allclose(back.directions, layout.directions, atol=1e-8)
    np.testing.assert_allclose(back.solid_angles, layout.solid_angles, rtol=1e-9)
    assert back.names == layout.names and back.floor_z == pytest.approx(layout.floor_z)


def test_real_stage_json_without_solid_angles_gets_voronoi_cells(tmp_path):
    d = np.array([[0, 0, 1], [1, 0, 0.2], [-1, 0, 0.2], [0, 1, 0.2], [0, -1, 0.2]], dtype=float)
    path = tmp_path / "stage.json"
    path.write_text(json.dumps({"name": "five", "directions": d.tolist(), "floor_elevation_deg": 0}))
    layout = load_layout(path)
    assert layout.solid_angles.sum() == pytest.approx(2 * math.pi, rel=2e-3)  # the upper hemisphere
    np.testing.assert_allclose(layout.solid_angles[1:], layout.solid_angles[1], rtol=1e-2)


@pytest.mark.parametrize("data, field", [
    ({"directions": [[0, 0, 1]], "colour": 1}, "unknown field"),
    ({"name": "x"}, "'directions' is missing"),
    ({"directions": [[0, 0, 0]]}, r"directions\[0\] is zero"),
    ({"directions": [[0, 0, 1], [1, 0, 0]], "names": ["a"]}, "'names'"),
    ({"directions": [[0, 0, 1], [0, 0, -1]], "floor_elevation_deg": -10}, r"directions\[1\] lies below"),
])
def test_bad_layout_json_names_the_field(tmp_path, data, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValidationError, match=field) as err:
        load_layout(path)
    assert "bad.json" in str(err.value)


def test_unknown_layout_name():
    with pytest.raises(ValidationError, match="unknown layout"):
        builtin_layout("hexagon")
