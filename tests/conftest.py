"""Shared helpers for the tests: quadrature on the sphere and analytic environments."""

from __future__ import annotations

import math
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
# every process the tests start gets the repository and the network guard (tests/no_network)
PYTHONPATH = os.pathsep.join([str(ROOT), str(ROOT / "tests" / "no_network")])
NETWORK_LOG = Path(tempfile.gettempdir()) / f"relit-network-{os.getpid()}.log"
os.environ["RELIT_NETWORK_LOG"] = str(NETWORK_LOG)
runpy.run_path(str(ROOT / "tests" / "no_network" / "sitecustomize.py"))  # guards this process too


def sphere_quadrature(n_z: int = 32, n_phi: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Directions [M, 3] and weights [M]: Gauss-Legendre in z times uniform in phi.

    Exact for polynomials of degree < 2 n_z in z and < n_phi in phi.
    """
    z, wz = np.polynomial.legendre.leggauss(n_z)
    phi = (np.arange(n_phi) + 0.5) * 2 * math.pi / n_phi
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    r = np.sqrt(1 - zz ** 2)
    dirs = np.stack([r * np.cos(pp), r * np.sin(pp), zz], axis=-1).reshape(-1, 3)
    weights = (wz[:, None] * np.full(n_phi, 2 * math.pi / n_phi)[None, :]).reshape(-1)
    return dirs, weights


def env_from_function(height: int, fn) -> np.ndarray:  # [H, 2H, 3] float32
    """A lat-long map whose texel at world direction d holds fn(d) (RGB)."""
    from core.lighting.latlong import pixel_directions

    d = pixel_directions(height, 2 * height)
    return np.asarray(fn(d), dtype=np.float32)


def run_python(code: str, **kwargs) -> subprocess.CompletedProcess:
    """Run Python code in a fresh interpreter with the repository on sys.path."""
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=kwargs.pop("cwd", ROOT), timeout=kwargs.pop("timeout", 120), **kwargs)


def run_relit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the ``relit`` CLI in a subprocess (so bpy, when a verb loads it, stays out of pytest)."""
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    return subprocess.run([sys.executable, "-m", "core.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=300)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# one small capture set rendered by Cycles per test session (about 40 s on 2 cores), shared by the
# stage tests and the training tests; 1024 spp brings the noise-bound linearity error under 1 %
SYNTH_RES, SYNTH_SAMPLES = 32, 1024
SYNTH_ARGS = ["synth", "--subject", "face", "--seed", "2", "--views", "1", "--frames", "2", "--layout", "rings64",
              "--res", str(SYNTH_RES), "--samples", str(SYNTH_SAMPLES), "--batch", "8",
              "--hdris", "forest", "sunset", "--rotations", "30", "20,-35,110", "--quiet"]


@pytest.fixture(scope="session")
def capture(tmp_path_factory):
    from core.data.capture import CaptureSet

    out = tmp_path_factory.mktemp("synth") / "face"
    run = run_relit(*SYNTH_ARGS, "-o", str(out))
    assert run.returncode == 0, run.stderr
    return CaptureSet(out)


# --- relight jobs: a tiny bundle, textured plates, a three-light rig -------------------------
LAYOUT = "rings16"
SUBJECT = "face-0007"


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    """A tiny untrained olat bundle on disk (32 px, a small stage, subject SUBJECT)."""
    from core.lighting.layout import builtin_layout
    from core.model.bundle import BundleInfo, save_bundle
    from tests.test_model import tiny_pipe

    pipe = tiny_pipe()
    layout = builtin_layout(LAYOUT)
    irr = np.repeat(layout.solid_angles[:, None], 3, 1).tolist()
    info = BundleInfo(id="tiny-test", config=pipe.model.config, tone=pipe.tone, exposure_image=pipe.exposure_image,
                      exposure_target=pipe.exposure_target, layout=layout, stage_irradiance=irr, subject=SUBJECT,
                      training={}, licence="")
    return save_bundle(tmp_path_factory.mktemp("bundle") / "b", pipe, info)


def write_plates(folder, frames, size=32, subject=SUBJECT, shift=0):
    """A textured disc per frame (moving ``shift`` px per frame), premultiplied, alpha = the disc."""
    from core.io.exr import write_rgba
    from core.io.plates import SUBJECT_ATTRIBUTE

    rng = np.random.default_rng(0)
    texture = 0.2 + rng.random((size, size + 8 * len(frames), 3)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    for n, f in enumerate(frames):
        alpha = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (0.4 * size) ** 2).astype(np.float32)
        rgb = texture[:, n * shift: n * shift + size] * alpha[..., None]
        write_rgba(folder / f"flat.{f:04d}.exr", rgb, alpha, {SUBJECT_ATTRIBUTE: subject})
    return str(folder / "flat.####.exr")


def example_rig(intensity=2.0):
    from core.lighting.rig import Light, LightRig

    return LightRig([Light("key", "area", (0.3, 0.4, 0.866), 0.2, (1.0, 0.8, 0.6), intensity),
                     Light("fill", "point", (-0.7, 0.0, 0.714), 0.0, (0.5, 0.5, 1.0), 0.5, group="soft"),
                     Light("bounce", "point", (0.0, -0.9, 0.436), 0.5, (1.0, 1.0, 1.0), 0.25, group="soft")])


def relight_job(bundle, plates, out, **kw):
    from core.jobs import RelightJob

    kw = {"rig": example_rig().to_json(), "steps": 2, "seed": 3, **kw}
    return RelightJob(bundle=str(bundle), input=plates, output=str(out), **kw)


@pytest.fixture(scope="session", autouse=True)
def no_network_connection():
    """Fails the session if any process it started tried to reach the network (DESIGN: offline)."""
    NETWORK_LOG.unlink(missing_ok=True)
    yield
    attempts = NETWORK_LOG.read_text() if NETWORK_LOG.exists() else ""
    NETWORK_LOG.unlink(missing_ok=True)
    assert attempts == "", f"network connections attempted during the tests:\n{attempts}"
