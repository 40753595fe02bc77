"""Synthetic people (core.synthetic.person) and ``relit synth --identities``: geometry, identity,
expressions that leave the body alone, and a tiny multi-identity render checked for linearity."""

import json
import math
import shutil

import numpy as np
import pytest
from scipy.spatial import procrustes

from core.synthetic.person import CLOTH, EYE, HAIR, SKIN, person_subject
from core.synthetic.subject import MOTIONS, deform, performance_track
from tests.conftest import run_relit


def test_people_have_head_hair_neck_shoulders_and_clothes():
    for seed in range(6):
        p = person_subject(seed)
        materials = set(np.unique(p.material).tolist())
        assert {SKIN, EYE, CLOTH} <= materials
        assert (HAIR in materials) == (p.look.hair_style != "bald")
        v = p.vertices
        face = v[p.regions["landmarks"]]
        # shoulders: wider than the head and well below the chin; the skull rises above the forehead
        assert np.ptp(v[:, 0]) > 2.0 * np.ptp(face[:, 0])
        assert v[:, 2].min() < face[:, 2].min() - 0.3
        assert v[:, 2].max() > face[:, 2].max() + 0.02
        assert 1 <= p.look.fitzpatrick <= 6


def test_identities_differ_and_are_deterministic():
    landmarks = [person_subject(seed).vertices[:468] for seed in range(4)]
    np.testing.assert_array_equal(person_subject(2).vertices[:468], landmarks[2])
    # shape after removing position, scale and rotation: every pair of identities differs
    disparities = [procrustes(landmarks[i], landmarks[j])[2] for i in range(4) for j in range(i + 1, 4)]
    assert min(disparities) > 2e-3
    looks = {(person_subject(seed).look.albedo, person_subject(seed).look.hair_style) for seed in range(4)}
    assert len(looks) == 4


def test_expressions_move_the_face_and_the_head_turn_spares_the_body():
    p = person_subject(3)
    body = np.ones(len(p.vertices), bool)
    body[p.regions["face"]] = False
    jaw = deform(p, {"jaw_open": 1.0, "smile": 1.0})
    assert np.abs(jaw - p.vertices)[p.regions["face"]].max() > 0.005
    np.testing.assert_allclose(jaw[body], p.vertices[body], atol=1e-12)  # hair, ears, neck, torso stay
    turned = deform(p, {"head_turn": 1.0})
    turn = p.regions["turn"]
    moved = np.linalg.norm(turned - p.vertices, axis=1)
    assert moved[turn == 0].max() < 1e-12 and moved[turn == 1].max() > 0.01
    # the rigid part turns by 12 degrees about the vertical: horizontal distances to the pivot kept
    pivot = np.array([0.0, 0.03])
    rigid = turn == 1
    np.testing.assert_allclose(np.linalg.norm(turned[rigid, :2] - pivot, axis=1),
                               np.linalg.norm(p.vertices[rigid, :2] - pivot, axis=1), atol=1e-9)


def _angle_about(a: np.ndarray, b: np.ndarray, axes: tuple[int, int]) -> float:
    """The angle (degrees) that turns the vector ``a`` into ``b`` in the plane of two axes."""
    i, j = axes
    return math.degrees(math.atan2(a[i] * b[j] - a[j] * b[i], a[i] * b[i] + a[j] * b[j]))


def test_the_performance_turns_nods_and_steps_the_head_by_the_stated_amounts():
    p = person_subject(5)
    turn, rest = p.regions["turn"], p.vertices
    rigid, body = turn == 1, turn == 0
    nose = 1  # MediaPipe's nose tip, the first of the head's vertices
    # +-30 degrees of turn: the nose tip about the turn pivot, measured as an angle in the ground plane
    turned = deform(p, {"head_turn": 2.5})
    pivot = np.array([0.0, 0.03, 0.0])
    assert _angle_about(rest[nose] - pivot, turned[nose] - pivot, (0, 1)) == pytest.approx(30.0, abs=1e-6)
    # a nod of 10 degrees about the neck pivot, chin down: the angle in the side (y, z) plane
    nodded = deform(p, {"head_nod": 10.0 / 12.0})
    pivot = np.array([0.0, 0.03, -0.05])
    assert _angle_about(rest[nose] - pivot, nodded[nose] - pivot, (1, 2)) == pytest.approx(10.0, abs=1e-6)
    assert nodded[nose, 2] < rest[nose, 2]
    for moved in (turned, nodded):  # the torso stays, the head is rigid
        np.testing.assert_allclose(moved[body], rest[body], atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(moved[rigid] - moved[nose], axis=1),
                                   np.linalg.norm(rest[rigid] - rest[nose], axis=1), atol=1e-9)
    # turned and nodded at once, the nod stays about the head's own ear-to-ear axis: the turn adds no
    # roll, so every head point sits as high as when only nodded (a nod after the turn would tilt the
    # eye line by about 4 degrees)
    both = deform(p, {"head_turn": 2.5, "head_nod": 10.0 / 12.0})
    np.testing.assert_allclose(both[rigid, 2], nodded[rigid, 2], atol=1e-12)
    # the step moves everything towards the cameras (-Y) by exactly its length
    np.testing.assert_allclose(deform(p, {"step": 0.12}) - rest, np.tile([0.0, -0.12, 0.0], (len(rest), 1)),
                               atol=1e-12)


def test_the_performance_track_is_large_fast_motion_that_a_longer_sequence_extends():
    frames = list(range(1, 241))
    track = performance_track(frames, seed=4)
    assert MOTIONS["performance"] is performance_track
    assert performance_track(frames[:60], seed=4) == track[:60]  # 60 frames are the first 60 of 240
    assert performance_track(frames, seed=5) != track
    w = {k: np.array([f[k] for f, _ in track]) for k in track[0][0]}
    assert 12.0 * w["head_turn"].max() > 29.5 and 12.0 * w["head_turn"].min() < -29.5
    assert 12.0 * np.abs(w["head_nod"]).max() > 9.5
    assert w["step"].max() == pytest.approx(0.12) and w["step"][:48].max() == 0.0
    assert w["step"][72:144].min() == pytest.approx(0.12) and w["step"][168:].max() == pytest.approx(0.0, abs=1e-12)
    # speech: within spoken phrases the jaw opens and closes once a syllable (5-7 frames), and pauses
    # between phrases keep it shut
    labels = [label for _, label in track]
    assert "speech" in labels and labels.count("speech") < len(labels)
    jaw = w["jaw_open"]
    assert jaw[[i for i, label in enumerate(labels) if label != "speech"]].max() == 0.0
    openings = np.sum((jaw[1:] > 0.4) & (jaw[:-1] <= 0.4))
    assert labels.count("speech") / 7.0 - 8 <= openings <= labels.count("speech") / 5.0 + 8
    # the capture set follows the motion it is given
    from core.synthetic.synth import SynthConfig, _track

    cfg = SynthConfig(subject="person", seed=4, frames=240, motion="performance")
    assert [w for _, (w, _) in _track(cfg)] == [w for w, _ in track]
    # the fastest head turn moves the nose about 3 degrees a frame: the hard case for one deformable model
    assert 12.0 * np.abs(np.diff(w["head_turn"])).max() == pytest.approx(30.0 * 2 * math.pi / 64.0, rel=0.01)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    out = tmp_path_factory.mktemp("people")
    args = ["synth", "--identities", "2", "--views", "1", "--frames", "1", "--layout", "rings16", "--res", "32",
            "--samples", "256", "--quiet", "-o", str(out)]
    run = run_relit(*args)
    assert run.returncode == 0, run.stderr
    return out, args


def test_each_identity_is_a_linear_capture_set_with_its_cost_recorded(people):
    from core.data.capture import CaptureSet
    from core.lighting.layout import builtin_layout

    out, args = people
    index = json.loads((out / "identities.json").read_text())
    names = [e["name"] for e in index["identities"]]
    assert names == ["person-0000", "person-0001"]
    flats = []
    for entry in index["identities"]:
        assert entry["complete"] and entry["seconds"] > 0
        assert entry["look"]["hair_style"] == person_subject(entry["seed"]).look.hair_style
        cs = CaptureSet(out / entry["folder"])
        assert entry["lights"] == len(cs.manifest.layout) == len(builtin_layout("rings16"))
        assert cs.manifest.subject == entry["name"] and cs.missing_files() == []
        cam, frame = cs.manifest.cameras[0].name, cs.manifest.frames[0].frame
        olats, alpha = cs.olats(cam, frame)
        flat = cs.flat(cam, frame)
        m = flat.alpha > 0.999
        # linearity: the OLATs add up to the flat-lit render within Cycles' noise at 256 spp
        mean = flat.rgb[m].mean()
        assert np.abs(olats.sum(0) - flat.rgb)[m].mean() < 0.03 * mean
        assert olats.sum(0)[m].mean() == pytest.approx(mean, rel=0.01)
        # head and shoulders: the matte reaches the bottom edge and leaves the top corners empty
        assert alpha[-1].mean() > 0.3 and alpha[0, 0] == 0 and alpha[0, -1] == 0
        assert 0.2 < (alpha > 0.5).mean() < 0.8
        flats.append(flat.rgb)
    assert np.abs(flats[0] - flats[1]).mean() > 0.1 * np.abs(flats[0]).mean()  # two different people
    # a rerun renders nothing: the index and the files stay as they are
    before = (out / "identities.json").read_text()
    run = run_relit(*args)
    assert run.returncode == 0, run.stderr
    assert (out / "identities.json").read_text() == before
    # a set made before landmarks were recorded gets them from a rerun, without a render
    folder = out / index["identities"][0]["folder"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["images"].pop("landmarks") == "landmarks/{camera}/landmarks.{frame:04d}.json"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    recorded = CaptureSet(folder).manifest
    shutil.rmtree(folder / "landmarks")
    images = {p: p.stat().st_mtime_ns for p in folder.rglob("*.exr")}
    run = run_relit(*args)
    assert run.returncode == 0, run.stderr
    cs = CaptureSet(folder)
    assert cs.missing_files() == [] and cs.manifest.landmark_images and not recorded.landmark_images
    assert cs.landmarks(cam, frame).shape == (468, 3)
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*.exr")} == images
    assert (out / "identities.json").read_text() == before


def test_a_face_detector_finds_the_synthetic_people(tmp_path):
    """Lips, brows and open lids make a synthetic person a face to MediaPipe, as a real plate is (on plain
    skin it found 1 of 12 flat-lit views): the portrait model's face mesh and mattes then work on the
    training renders the same way as on photos."""
    from core.data.capture import open_captures
    from core.io.framing import PORTRAIT_FRAMING, subject_framing, to_model
    from core.io.images import resize
    from core.portrait.face_geometry import face_landmarks
    from core.portrait.matte import display_rgb8, face_boxes

    run = run_relit("synth", "--identities", "3", "--views", "1", "--frames", "1", "--layout", "rings16",
                    "--res", "128", "--samples", "32", "--no-olats", "--quiet", "-o", str(tmp_path / "p"))
    assert run.returncode == 0, run.stderr
    found, framed = 0, []
    for cs in open_captures([str(tmp_path / "p")]):
        cam, frame = cs.manifest.cameras[0], cs.manifest.frames[0].frame
        flat = cs.flat(cam.name, frame)
        landmarks = face_landmarks(display_rgb8(flat.rgb))
        if landmarks is not None:
            found += 1
            x, y = landmarks[:, 0].astype(int).clip(0, 127), landmarks[:, 1].astype(int).clip(0, 127)
            assert (flat.alpha[y, x] > 0.5).mean() > 0.95  # the landmarks lie on the person
        # the face sits in the model's square where relit frames a plate's face for a portrait bundle
        square = to_model(flat.rgb, subject_framing(flat.alpha, 64))  # as training sees it
        up = resize(square, 256, 256, "triangle")
        boxes = face_boxes(display_rgb8(up / max(float(np.percentile(up, 99)), 1e-6)), 0.3)
        if boxes:
            x0, y0, x1, y1 = (v / 256 for v in boxes[0])
            framed.append((x1 - x0, (x0 + x1) / 2, (y0 + y1) / 2))
    assert found >= 2, found
    assert framed, "no face found on the model-size squares"
    width, cx, cy = np.mean(framed, axis=0)
    assert width == pytest.approx(PORTRAIT_FRAMING.width, abs=0.06)
    assert cx == pytest.approx(PORTRAIT_FRAMING.centre_x, abs=0.06)
    assert cy == pytest.approx(PORTRAIT_FRAMING.centre_y, abs=0.05)


def test_portrait_cameras_vary_the_focal_length_and_frame_the_same_extent():
    from core.synthetic.cameras import portrait_cameras

    cams = portrait_cameras(8, 128, seed=5)
    fovs = [2 * math.degrees(math.atan(64 / c.K[0, 0])) for c in cams]
    assert max(fovs) - min(fovs) > 8 and 18 <= min(fovs) and max(fovs) <= 40
    for c, fov in zip(cams, fovs):
        distance = np.linalg.norm(c.c2w[:3, 3] - np.array([0.0, 0.0, -0.07]))
        assert 2 * distance * math.tan(math.radians(fov) / 2) == pytest.approx(0.5, rel=1e-6)


def test_a_camera_seed_films_the_same_person_from_new_viewpoints_named_after_the_first_set():
    from core.errors import RelitError
    from core.synthetic.cameras import portrait_cameras
    from core.synthetic.synth import SynthConfig, plan_manifest, synthesize, synthesize_identities

    first = plan_manifest(SynthConfig(subject="person", seed=100, views=8), "person-0100", ["neutral"])
    more = plan_manifest(SynthConfig(subject="person", seed=100, views=8, camera_seed=1100, first_view=8),
                         "person-0100", ["neutral"])
    assert [c.name for c in first.cameras] == [f"cam{i:02d}" for i in range(8)]
    assert [c.name for c in more.cameras] == [f"cam{i:02d}" for i in range(8, 16)]
    # without --camera-seed the cameras are the subject seed's, as every capture set made before
    for a, b in zip(first.cameras, portrait_cameras(8, 128, 100)):
        np.testing.assert_array_equal(a.c2w, b.c2w)
        np.testing.assert_array_equal(a.K, b.K)
    # and with it, the same rig's pattern at new positions: every new camera looks from at least a degree
    # away from every old one's direction (towards the subject)

    def looking(cams):
        return np.array([c.c2w[:3, 2] / np.linalg.norm(c.c2w[:3, 2]) for c in cams])  # +Z: away from the view
    cosines = looking(more.cameras) @ looking(first.cameras).T
    assert np.degrees(np.arccos(np.clip(cosines.max(), -1, 1))) > 1.0
    with pytest.raises(RelitError, match="fixed arc of cameras.*--subject person"):
        synthesize(SynthConfig(subject="face", camera_seed=3), "/nonexistent/never-written")
    with pytest.raises(RelitError, match="camera numbers start at 0"):
        synthesize(SynthConfig(subject="person", first_view=-1), "/nonexistent/never-written")
    for seed in (None, 100):  # new names for the first set's viewpoints
        with pytest.raises(RelitError, match="film the first set's viewpoints again"):
            synthesize(SynthConfig(subject="person", seed=100, first_view=8, camera_seed=seed), "/nonexistent/x")
    with pytest.raises(RelitError, match="each person's own seed places their cameras"):
        synthesize_identities(SynthConfig(subject="person", camera_seed=3), 2, "/nonexistent/never-written")
