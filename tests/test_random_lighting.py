"""Random training lightings (core.lighting.random_lighting): lamps land where they are aimed and
deliver their irradiance, lightings have unit mean radiance, lamps favour the camera's side."""

import math

import numpy as np

from core.lighting.hdri import load_environment, project_to_layout
from core.lighting.latlong import pixel_directions, pixel_solid_angles
from core.lighting.layout import builtin_layout
from core.lighting.random_lighting import KINDS, LightingMix, lamp_map, mean_radiance, random_lighting
from core.lighting.hdri import resolve_hdri


def test_a_lamp_map_lights_a_surface_facing_it_with_its_irradiance():
    centre = np.array([0.3, -0.5, 0.81])
    centre /= np.linalg.norm(centre)
    dirs = pixel_directions(64, 128)
    omega = pixel_solid_angles(64, 128)[..., None]
    rgb = np.array([1.0, 0.5, 0.25])
    for degrees in (2.0, 10.0, 40.0):
        radius = math.radians(degrees)
        disc = 2 * math.pi * (1 - math.cos(radius))
        m = lamp_map(64, centre, radius, rgb / disc)  # radiance x the disc's solid angle = irradiance rgb
        facing = (m * omega * np.clip(dirs @ centre, 0, None)[..., None]).sum(axis=(0, 1))
        away = (m * omega * np.clip(dirs @ -centre, 0, None)[..., None]).sum(axis=(0, 1))
        # a surface facing the lamp receives its irradiance (times the cosine over the disc), one
        # facing away receives nothing
        np.testing.assert_allclose(facing, rgb * (1 + math.cos(radius)) / 2, rtol=0.06)
        assert np.all(away == 0)
        if degrees < 5:  # a small lamp's energy lands on the stage light nearest its centre
            layout = builtin_layout("default")
            w = project_to_layout(m, layout, (0.0, 0.0, 0.0)).weights
            hit = layout.directions[int(np.argmax(w[:, 0]))]
            assert math.acos(min(1.0, float(hit @ centre))) < 1.5 * layout.olat_radius


def test_random_lightings_have_unit_mean_radiance_and_lamps_favour_the_camera_side():
    envs = [load_environment(resolve_hdri("forest"))[::8, ::8]]
    rng = np.random.default_rng(0)
    towards = np.array([0.0, -1.0, 0.0])
    kinds, facing = set(), []
    dirs = pixel_directions(16, 32)
    omega = pixel_solid_angles(16, 32)[..., None]
    for _ in range(80):
        m, kind = random_lighting(rng, envs, height=16, towards=towards)
        kinds.add(kind)
        assert m.shape == (16, 32, 3) and m.min() >= 0 and abs(mean_radiance(m) - 1.0) < 1e-5
    lamps_only = LightingMix(hdri=0.0, lamps=1.0, flat=0.0, mixed=0.0)
    for _ in range(60):
        m, _ = random_lighting(rng, envs, height=16, towards=towards, mix=lamps_only)
        energy = (m * omega).sum(axis=-1)
        facing.append(float((energy * (dirs @ towards)).sum() / energy.sum()))
    assert kinds == set(KINDS)
    assert np.mean(np.array(facing) > 0) > 0.75  # most lamp lightings come from the camera's hemisphere
