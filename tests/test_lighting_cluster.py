"""Median-cut area lights: energy, where the lights go, their sizes, rotation."""

import math

import numpy as np

from core.lighting.area import beta_from_radius
from core.lighting.cluster import cluster_environment
from core.lighting.layout import builtin_layout
from core.lighting.rotation import world_directions
from tests.conftest import env_from_function

SUN = np.array([0.48, -0.6, 0.64])


def _sunny(d):  # a dim blue sky and a small bright sun (about 5 degrees across)
    sky = np.array([0.2, 0.3, 0.5]) * (d[..., 2:] > 0)
    sun = 2000.0 * (d @ SUN > math.cos(math.radians(2.5)))[..., None] * np.array([1.0, 0.9, 0.8])
    return sky + sun


def test_energy_is_conserved_for_every_k():
    env = env_from_function(64, _sunny)
    for k in (1, 2, 4, 8, 16):
        c = cluster_environment(env, k)
        assert len(c.lights) == k
        np.testing.assert_allclose(sum(a.energy for a in c.lights), c.total, rtol=1e-9)


def test_the_sun_gets_a_small_light_of_its_own():
    env = env_from_function(128, _sunny)
    c = cluster_environment(env, 8)
    sun = c.lights[0]  # brightest first
    assert float(sun.direction @ SUN) > math.cos(math.radians(1.5))
    assert sun.radius < math.radians(6)  # the 2.5-degree sun, rasterised at 1.4 degrees per texel
    # the sky's lights are large and together hold the sky's energy
    assert all(a.radius > math.radians(10) for a in c.lights[1:])


def test_a_uniform_cap_gets_its_own_radius():
    """A uniform cap of radius theta has mean cosine (1 + cos theta) / 2, which the fit inverts."""
    theta = math.radians(40)
    env = env_from_function(256, lambda d: (d[..., 2:] > math.cos(theta)) * np.ones(3))
    (light,) = cluster_environment(env, 1).lights
    np.testing.assert_allclose(light.direction, [0, 0, 1], atol=1e-6)
    assert abs(light.radius - theta) < math.radians(1.0)
    # a uniform sphere is as large as a light gets: beta 1
    (whole,) = cluster_environment(env_from_function(32, lambda d: np.ones(d.shape)), 1).lights
    assert beta_from_radius(whole.radius, 0.2) == 1.0


def test_rotation_turns_the_lights_with_the_environment():
    env = env_from_function(128, _sunny)
    rot = (0.3, -0.2, 1.1)
    turned = cluster_environment(env, 4, rot).lights[0]
    expected = world_directions(SUN[None] / np.linalg.norm(SUN), rot)[0]
    assert float(turned.direction @ expected) > math.cos(math.radians(1.5))


def test_light_below_a_stage_floor_is_dropped_and_reported():
    layout = builtin_layout("dome64")
    env = env_from_function(64, lambda d: np.ones(d.shape))
    c = cluster_environment(env, 4, layout=layout)
    below = (1 + layout.floor_z) / 2  # fraction of a uniform sphere under the floor
    assert abs(c.dropped_fraction - below) < 0.01
    np.testing.assert_allclose(sum(a.energy for a in c.lights) + c.dropped, c.total, rtol=1e-9)
    kept = cluster_environment(env, 4, layout=layout, missing="nearest")
    assert kept.dropped_fraction == 0


def test_light_below_a_stage_floor_kept_as_nearest_comes_from_the_floors_edge():
    """``missing="nearest"``: a ground below a dome stage's floor keeps its energy, and its area
    lights come from the floor's edge at the ground's azimuth, never from below the floor where the
    stage has no lights the model saw."""
    layout = builtin_layout("dome64")
    ground = env_from_function(64, lambda d: 5.0 * (d[..., 2:] < -0.6) * np.ones(3)
                               + 1.0 * (d[..., :1] > 0.9) * (d[..., 2:] < -0.6))  # brighter towards +x
    c = cluster_environment(ground, 4, layout=layout, missing="nearest")
    np.testing.assert_allclose(sum(a.energy for a in c.lights), c.total, rtol=1e-9)
    assert c.dropped_fraction == 0
    for light in c.lights:
        assert light.direction[2] >= layout.floor_z - 1e-6
    brightest = max(c.lights, key=lambda a: float(a.energy.sum()))
    assert brightest.direction @ np.array([1.0, 0.0, 0.0]) > 0.5  # its azimuth kept
