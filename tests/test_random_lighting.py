"""Random training lightings (core.lighting.random_lighting): unit mean radiance, lamps that keep
their energy, every kind drawn."""

import math

import numpy as np

from core.lighting.hdri import load_environment, project_to_layout
from core.lighting.latlong import pixel_solid_angles
from core.lighting.layout import builtin_layout
from core.lighting.random_lighting import KINDS, lamp_map, mean_radiance, random_lighting
from core.synthetic.hdris import builtin_hdri


def test_a_lamp_map_carries_the_disc_s_energy_towards_its_centre():
    centre = np.array([0.3, -0.5, 0.81])
    centre /= np.linalg.norm(centre)
    for radius in (math.radians(2.0), math.radians(10.0), math.radians(40.0)):
        m = lamp_map(32, centre, radius, np.array([1.0, 0.5, 0.25]))
        omega = pixel_solid_angles(32, 64)[..., None]
        energy = (m * omega).sum(axis=(0, 1))
        disc = 2 * math.pi * (1 - math.cos(radius))  # radiance 1 over the cap's solid angle
        np.testing.assert_allclose(energy, disc * np.array([1.0, 0.5, 0.25]), rtol=1e-5)
        # the stage light nearest the centre receives most of a small lamp's energy
        layout = builtin_layout("default")
        w = project_to_layout(m, layout, (0.0, 0.0, 0.0)).weights
        if radius < math.radians(5):
            assert int(np.argmax(w[:, 0])) == int(layout.nearest(centre[None])[0])


def test_random_lightings_have_unit_mean_radiance_and_every_kind_appears():
    envs = [load_environment(builtin_hdri("forest"))[::8, ::8]]
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(60):
        m, kind = random_lighting(rng, envs, height=16, towards=np.array([0.0, -1.0, 0.0]))
        kinds.add(kind)
        assert m.shape == (16, 32, 3) and m.min() >= 0
        assert abs(mean_radiance(m) - 1.0) < 1e-5
    assert kinds == set(KINDS)
