"""Deformation field and dynamic Gaussian training on a scene whose truth is known."""

import math

import numpy as np
import pytest
import torch

from core.errors import ValidationError
from core.gaussians.deform import DeformConfig, Deformation
from core.gaussians.raster import rasterize_torch
from core.gaussians.train import (ReconConfig, Views, keyframes, new_model, reconstruct,
                                  train_deformable)
from core.lighting.camera import blender_c2w_to_opencv_w2c, look_at_c2w


def test_a_new_deformation_is_the_identity():
    torch.manual_seed(0)
    d = Deformation(DeformConfig((4, 8), 4, 4, 16, 1), torch.tensor([[-1.0, -1, -1], [1, 1, 1]]))
    means, quats, scales = torch.randn(50, 3) * 0.5, torch.randn(50, 4), torch.randn(50, 3)
    for t in (0.0, 0.37, 1.0):
        m, q, s = d(means, quats, scales, t)
        assert torch.equal(m, means) and torch.equal(q, quats) and torch.equal(s, scales)
    # the heads learn: one step on a loss that wants motion moves the points, differently over time
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    for _ in range(20):
        loss = ((d(means, quats, scales, 1.0)[0] - (means + 0.1)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    moved = (d(means, quats, scales, 1.0)[0] - means).detach()
    assert float(moved.mean()) > 0.02


def test_keyframes_are_spread_and_include_the_ends():
    assert keyframes(list(range(1, 25)), 4) == [1, 9, 16, 24]
    assert keyframes([5, 6, 7], 4) == [5, 6, 7]


def _moving_scene(frames=4, cams=5, size=32):
    """Truth: 40 Gaussians drifting along +x by 2 cm per frame, seen by cameras on an arc."""
    g = torch.Generator().manual_seed(1)
    means = torch.randn(40, 3, generator=g) * 0.04
    quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(40, 1)
    scales = torch.full((40, 3), 0.015)
    opac = torch.full((40,), 0.9)
    colors = torch.rand(40, 3, generator=g)
    viewmats, Ks = [], []
    for a in np.linspace(-0.6, 0.6, cams):
        c2w = look_at_c2w(np.array([0.5 * math.sin(a), -0.5 * math.cos(a), 0.05]), np.zeros(3))
        viewmats.append(torch.as_tensor(blender_c2w_to_opencv_w2c(c2w), dtype=torch.float32))
        Ks.append(torch.tensor([[60.0, 0, size / 2], [0, 60.0, size / 2], [0, 0, 1]]))
    viewmats, Ks = torch.stack(viewmats), torch.stack(Ks)
    images = []
    for v in range(cams):
        per = []
        for f in range(frames):
            img, alpha, _ = rasterize_torch(means + torch.tensor([0.02 * f, 0, 0]), quats, scales, opac, colors,
                                            viewmats[v:v + 1], Ks[v:v + 1], size, size)
            per.append(torch.cat([img[0], alpha[0]], dim=-1))
        images.append(torch.stack(per))
    return Views(torch.stack(images), viewmats, Ks, [f"cam{i}" for i in range(cams)], list(range(1, frames + 1)))


def _psnr(model, views, cam, frame):
    w, h = views.size
    with torch.no_grad():
        img, _, _ = model.render(frame, views.viewmats[cam:cam + 1], views.Ks[cam:cam + 1], w, h)
    truth = views.images[cam, views.frames.index(frame), ..., :3]
    return float(10 * torch.log10(truth.max() ** 2 / ((img[0] - truth) ** 2).mean()))


def test_training_learns_the_motion_and_generalises_to_a_held_out_camera():
    views = _moving_scene()
    cfg = ReconConfig(gaussians=150, densify=False, deform=DeformConfig((8,), 4, 8, 32, 1), lr_deform=5e-3,
                      holdout_cameras=["cam2"])
    rng = np.random.default_rng(0)
    pts = rng.normal(0, 0.05, (150, 3))
    model = new_model(pts, np.full((150, 3), 0.5), torch.tensor([[-0.2, -0.2, -0.2], [0.2, 0.2, 0.2]]), cfg, 1, 4,
                      extent=0.4)
    before = [_psnr(model, views, 2, f) for f in (1, 4)]
    train_deformable(model, views, [0, 1, 3, 4], views.frames, cfg, 400, 0.4, rng)
    after = [_psnr(model, views, 2, f) for f in (1, 4)]
    assert min(after) > max(before) + 6, (before, after)
    with torch.no_grad():  # the field moved the Gaussians between the first and last frame, along +x
        shift = (model.at(4)["means"] - model.at(1)["means"]).mean(dim=0)
    assert float(shift[0]) > 0.02 and abs(float(shift[1])) < float(shift[0])


def test_kframe_segments_start_from_the_kframe_model_and_stay_tied_at_keyframes():
    views = _moving_scene(frames=5)
    cfg = ReconConfig(keyframes=3, gaussians=120, densify=False, kframe_iterations=150, segment_iterations=60,
                      warmup=60, deform=DeformConfig((8,), 4, 8, 32, 1), holdout_cameras=["cam2"])
    recon = reconstruct(views, cfg)
    assert recon.keyframes == [1, 3, 5] and [(s.first, s.last) for s in recon.segments] == [(1, 3), (3, 5)]
    with torch.no_grad():
        for seg in recon.segments:  # after a warm-up only, each segment agrees with the K-frame model at its ends
            for end in (seg.first, seg.last):
                gap = (seg.at(end)["means"] - recon.kframe.at(end)["means"]).norm(dim=-1).mean()
                assert float(gap) < 0.004, (seg.first, end, float(gap))
        # frozen during warm-up: the canonical Gaussians are the K-frame model's at the first keyframe
        torch.testing.assert_close(recon.segments[1].params["means"], recon.kframe.at(3)["means"])


def test_ply_round_trip_in_the_standard_layout(tmp_path):
    from core.gaussians.export import export_frame_ply
    from core.io.ply import read_ply

    cfg = ReconConfig(gaussians=30, densify=False, sh_degree=1, deform=DeformConfig((4,), 2, 4, 8, 1))
    model = new_model(np.random.default_rng(0).normal(0, 0.05, (30, 3)), np.full((30, 3), 0.25),
                      torch.tensor([[-0.2, -0.2, -0.2], [0.2, 0.2, 0.2]]), cfg, 1, 2, extent=0.4)
    export_frame_ply(model, 2, tmp_path / "g.ply")
    ply = read_ply(tmp_path / "g.ply")
    assert list(ply)[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    assert [k for k in ply if k.startswith("f_rest")] == [f"f_rest_{i}" for i in range(9)]
    assert list(ply)[-8:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    np.testing.assert_allclose(np.stack([ply["x"], ply["y"], ply["z"]], 1), model.params["means"].detach().numpy(),
                               rtol=1e-6)  # a new field is the identity at every frame
    np.testing.assert_allclose(ply["f_dc_0"], (0.25 - 0.5) / 0.28209479177387814, rtol=1e-5)
    np.testing.assert_allclose(ply["opacity"], model.params["opacities"].detach().numpy(), rtol=1e-6)


def test_reconstruct_resumes_from_saved_models(tmp_path):
    from core.gaussians.train import load_reconstruction

    views = _moving_scene(frames=3, cams=3)
    cfg = ReconConfig(keyframes=2, gaussians=60, densify=False, kframe_iterations=20, segment_iterations=20,
                      warmup=5, deform=DeformConfig((4,), 2, 4, 8, 1))
    first = reconstruct(views, cfg, store=tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == ["kframe.safetensors", "segment_000.safetensors"]
    again = reconstruct(views, cfg, store=tmp_path)
    assert again.stats["kframe"] == "loaded" and again.stats["segment_000"] == "loaded"
    loaded = load_reconstruction(tmp_path, cfg)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model_for(2).at(2)["means"], first.model_for(2).at(2)["means"])
    for outside in (0, 4):  # no segment holds them: refused, not extrapolated
        with pytest.raises(ValidationError, match="holds frames 1-3"):
            loaded.model_for(outside)
    (tmp_path / "segment_000.safetensors").unlink()  # a run killed before the segment finished
    resumed = reconstruct(views, cfg, store=tmp_path)
    assert resumed.stats["kframe"] == "loaded" and isinstance(resumed.stats["segment_000"], dict)
    with torch.no_grad():  # the segment is trained again exactly as the first time
        torch.testing.assert_close(resumed.segments[0].params["means"], first.segments[0].params["means"])


def test_orbit_views_turn_a_camera_about_the_vertical_through_the_subject():
    """Each orbit view is the camera moved along a circle about the vertical axis through the
    centre (height and distance kept, within the angle asked) and turned with it, so a camera
    looking at the centre still does."""
    from core.gaussians.train import orbit_views

    views = _moving_scene(frames=2, cams=3)
    centre = torch.tensor([0.1, -0.05, 0.02])
    turned, Ks = orbit_views(views, [1], centre, 12, 20.0, np.random.default_rng(0))

    def position(w2c):  # [4, 4] -> camera centre [3]
        return -w2c[:3, :3].T @ w2c[:3, 3]

    c0 = position(views.viewmats[1].double()) - centre.double()
    angles = []
    for w2c in turned.double():
        c = position(w2c) - centre.double()
        assert float(c[2]) == pytest.approx(float(c0[2]), abs=1e-5)
        assert float(c[:2].norm()) == pytest.approx(float(c0[:2].norm()), abs=1e-5)
        angles.append(math.degrees(math.atan2(float(c[1]), float(c[0])) - math.atan2(float(c0[1]), float(c0[0]))))
        # the centre is seen where the original camera saw it, turned along with it
        seen = w2c[:3, :3] @ centre.double() + w2c[:3, 3]
        before = views.viewmats[1].double()[:3, :3] @ centre.double() + views.viewmats[1].double()[:3, 3]
        torch.testing.assert_close(seen, before, atol=1e-6, rtol=0)
    angles = [(a + 180) % 360 - 180 for a in angles]
    assert max(abs(a) for a in angles) <= 20.0 and max(angles) - min(angles) > 10.0
    torch.testing.assert_close(Ks, views.Ks[[1] * 12])


def test_anchor_views_pull_two_segments_to_agree_at_their_keyframe():
    """The image tie kept after the warm-up, to the K-frame model's keyframe renders or (two waves)
    to the finished neighbour's, makes the two segments meeting at the middle keyframe render it
    more alike from the held-out camera."""
    views = _moving_scene(frames=5)
    base = dict(keyframes=3, gaussians=120, densify=False, kframe_iterations=150, segment_iterations=200,
                warmup=20, deform=DeformConfig((8,), 4, 8, 32, 1), holdout_cameras=["cam2"], anchor_share=0.5)
    gaps = {}
    for weight, source in ((0.0, "kframe"), (1.0, "kframe"), (1.0, "neighbours")):
        recon = reconstruct(views, ReconConfig(**base, anchor_weight=weight, anchor_source=source))
        w, h = views.size
        with torch.no_grad():
            a, b = (s.render(3, views.viewmats[2:3], views.Ks[2:3], w, h)[0][0] for s in recon.segments)
        gaps[weight, source] = float((a - b).abs().mean())
    assert gaps[1.0, "kframe"] < 0.7 * gaps[0.0, "kframe"], gaps
    assert gaps[1.0, "neighbours"] < 0.7 * gaps[0.0, "kframe"], gaps


def test_neighbour_anchors_train_in_two_waves():
    """With neighbours as the anchor source the even-numbered segments train first, untied; an odd one
    is tied to both neighbours (one at the sequence's end) and refuses to start before they exist."""
    from core.gaussians.train import anchor_sources, segment_waves

    cfg = ReconConfig(anchor_weight=1.0, anchor_source="neighbours")
    assert segment_waves(5, cfg) == [[0, 2, 4], [1, 3]] and segment_waves(4, cfg) == [[0, 2], [1, 3]]
    assert ReconConfig() == cfg  # the default (docs/gaussians.md, three seeds)
    assert segment_waves(5, ReconConfig(anchor_source="kframe")) == [[0, 1, 2, 3, 4]]
    assert segment_waves(5, ReconConfig(anchor_weight=0.0)) == [[0, 1, 2, 3, 4]]  # no anchors: one wave
    k, s0, s2 = object(), object(), object()
    assert anchor_sources(2, 4, k, {}, cfg) == (None, None)
    assert anchor_sources(1, 4, k, {0: s0, 2: s2}, cfg) == (s0, s2)
    assert anchor_sources(3, 4, k, {2: s2}, cfg) == (s2, None)  # the last segment: its end is no boundary
    with pytest.raises(ValidationError, match=r"segment\(s\) \[2\] are not trained yet"):
        anchor_sources(1, 4, k, {0: s0}, cfg)
    assert anchor_sources(1, 4, k, {}, ReconConfig(anchor_source="kframe")) == (k, k)
    with pytest.raises(ValidationError, match="anchor source"):
        ReconConfig(anchor_source="elsewhere")


class _Counting:
    """Views that record which frames are asked of them (what CaptureFrames would read)."""

    def __init__(self, views: Views):
        self.views, self.frames, self.asked = views, views.frames, []

    def subset(self, frames):
        self.asked.append(list(frames))
        return self.views.subset(frames)


def test_each_model_is_given_only_its_frames_and_trains_the_same():
    """A reconstruction asks its views for one model's share at a time (the first frame to seed the
    points, the keyframes, each segment's span), which is all CaptureFrames then holds in memory;
    the models are those trained from every frame in memory."""
    views = _moving_scene(frames=7)
    counting = _Counting(views)
    cfg = ReconConfig(keyframes=3, gaussians=60, densify=False, kframe_iterations=20, segment_iterations=20,
                      warmup=5, deform=DeformConfig((8,), 4, 8, 32, 1), holdout_cameras=["cam2"], anchor_weight=1.0)
    lazy, full = reconstruct(counting, cfg), reconstruct(views, cfg)
    asked = counting.asked
    assert asked == [[1], [1, 4, 7], [1, 2, 3, 4], [4, 5, 6, 7]]
    for a, b in zip([lazy.kframe] + lazy.segments, [full.kframe] + full.segments):
        for k in a.params:
            torch.testing.assert_close(a.params[k], b.params[k])


def test_overlapping_segments_train_past_their_keyframes_and_dissolve_there(tmp_path, rng):
    """With an overlap of 2 frames, each segment trains on 2 frames past each keyframe (read once per
    model), and a render at a frame within 2 of the middle keyframe is the two segments' renders
    weighted linearly from the earlier to the later (half each at the keyframe); further away one
    segment renders alone. The overlap survives saving, render-views writes the dissolve, a folder
    whose segments do not yet cover the sequence is refused, and an overlap too wide for the
    keyframes is refused before anything is read or trained."""
    from core.gaussians.export import render_sequence, render_view
    from core.gaussians.train import load_reconstruction, save_config, save_model
    from core.io.exr import read_channels
    from tests.test_capture import make_capture

    views = _moving_scene(frames=9)
    counting = _Counting(views)
    cfg = ReconConfig(keyframes=3, gaussians=60, densify=False, kframe_iterations=20, segment_iterations=20,
                      warmup=5, deform=DeformConfig((8,), 4, 8, 32, 1), holdout_cameras=["cam2"], overlap=2)
    recon = reconstruct(counting, cfg)
    assert counting.asked == [[1], [1, 5, 9], [1, 2, 3, 4, 5, 6, 7], [3, 4, 5, 6, 7, 8, 9]]
    left, right = recon.segments
    assert (left.first, left.last, left.reach) == (1, 5, 2) and left.time(-1) == 0.0 and left.time(7) == 1.0
    expected = {3: [(left, 1.0)], 4: [(left, 0.75), (right, 0.25)], 5: [(left, 0.5), (right, 0.5)],
                6: [(left, 0.25), (right, 0.75)], 7: [(right, 1.0)], 9: [(right, 1.0)]}
    for frame, pairs in expected.items():
        assert recon.blend(frame) == pairs, frame
    w, h = views.size
    cam = (views.viewmats[2:3], views.Ks[2:3], w, h)
    with torch.no_grad():
        (img, alpha, _), (li, la, _), (ri, ra, _) = (m.render(4, *cam) for m in (recon, left, right))
    torch.testing.assert_close(img, 0.75 * li + 0.25 * ri)
    torch.testing.assert_close(alpha, 0.75 * la + 0.25 * ra)
    assert float((li - ri).abs().mean()) > 1e-4  # the two segments differ, so the weights are seen
    make_capture(tmp_path / "capture", rng)  # render-views names the capture's subject in its headers
    save_config(tmp_path, cfg, str(tmp_path / "capture"))
    for i, seg in enumerate(recon.segments):
        save_model(seg, tmp_path / f"segment_{i:03d}.safetensors")
    loaded = load_reconstruction(tmp_path, cfg)
    assert [s.reach for s in loaded.segments] == [2, 2] and loaded.keyframes == [1, 5, 9]
    # render-views: the frame before the keyframe is the dissolve, not the segment it lies in
    K, c2w = views.Ks[2].numpy(), look_at_c2w(np.array([0.3, -0.45, 0.05]), np.zeros(3))
    render_sequence(tmp_path, K, c2w, w, h, [4], tmp_path / "views")
    written = read_channels(tmp_path / "views" / "flat.0004.exr", ["R", "G", "B", "A"])
    blended, only_left = render_view(recon, 4, K, c2w, w, h), render_view(left, 4, K, c2w, w, h)
    np.testing.assert_allclose(written[..., :3], blended[0], atol=2e-3)  # half-float storage
    assert np.abs(blended[0] - only_left[0]).max() > 0.02
    # a folder still training: its K-frame model spans 1-9, its segments only 1-5
    save_model(recon.kframe, tmp_path / "kframe.safetensors")
    (tmp_path / "segment_001.safetensors").unlink()
    with pytest.raises(ValidationError, match="not finished .*cover frames 1-5 of 1-9.*rerun relit reconstruct"):
        load_reconstruction(tmp_path, cfg)
    wide = _Counting(views)
    with pytest.raises(ValidationError, match="shorter than twice the overlap"):
        reconstruct(wide, ReconConfig(**{**cfg.__dict__, "overlap": 3}))
    assert wide.asked == []  # refused before the K-frame model read (or trained on) anything


def test_the_overlap_counts_frames_of_the_sequence_not_frame_numbers():
    """A stepped range (1-41x4) holds frames 4 numbers apart: an overlap of 2 frames reaches 8 frame
    numbers past each keyframe, and the segments' lengths are counted in frames. Where frames are
    irregular the reach is the least that many frames span on either side of any inner keyframe."""
    from core.gaussians.train import check_overlap, overlap_reach, segment_frames

    stepped = list(range(1, 42, 4))  # 11 frames
    keys = keyframes(stepped, 3)
    cfg = ReconConfig(keyframes=3, overlap=2)
    assert keys == [1, 21, 41] and overlap_reach(stepped, keys, cfg) == 8
    assert segment_frames(stepped, keys, 0, cfg) == [1, 5, 9, 13, 17, 21, 25, 29]
    assert segment_frames(stepped, keys, 1, cfg) == [13, 17, 21, 25, 29, 33, 37, 41]
    check_overlap(stepped, keys, ReconConfig(keyframes=3, overlap=2))  # segments of 5 frames hold 2 x 2
    with pytest.raises(ValidationError, match="overlap 3: keyframes"):
        check_overlap(stepped, keys, ReconConfig(keyframes=3, overlap=3))
    irregular = [1, 2, 3, 4, 5, 10, 11, 12, 13]
    assert overlap_reach(irregular, [1, 5, 13], ReconConfig(keyframes=3, overlap=1)) == 1  # 4 before, 10 after
    assert segment_frames(irregular, [1, 5, 13], 1, ReconConfig(keyframes=3, overlap=1)) == [4, 5, 10, 11, 12, 13]
    assert overlap_reach(stepped, keys, ReconConfig(keyframes=3)) == 0
