"""Scalable dynamic 3DGS training (DifFRelight): a K-frame model, then segments between keyframes.

1. The **K-frame model**: canonical Gaussians plus a deformation field over the whole sequence,
   trained on K keyframes spread over it only.
2. The sequence is split into **segments** between adjacent keyframes. Each starts from the K-frame
   model deformed to its first keyframe (baked into new canonical Gaussians) and a fresh,
   identity deformation field over the segment.
3. **Warm-up**: the Gaussians stay frozen; only the segment's field trains, with an L2 penalty
   tying its deformation at both keyframes to the K-frame model's there.
4. Then densification (gsplat's DefaultStrategy, which runs on CPU with the pure-torch
   rasteriser's screen-space gradients) and joint training.
5. With ``overlap`` each segment also holds (and trains on) a few frames past each of its
   keyframes, and renders there dissolve linearly from one segment to the next
   (:meth:`Reconstruction.blend`) instead of cutting at the keyframe.

``train_deformable`` is the building block; :func:`reconstruct` strings the method together, and
the benchmark also runs it as one model over the whole sequence and as segments without the
K-frame initialisation.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data.capture import CaptureSet
from ..errors import ValidationError
from ..lighting.camera import blender_c2w_to_opencv_w2c
from .deform import DeformConfig, Deformation
from .model import activated, init_params
from .raster import rasterize

log = logging.getLogger(__name__)


# what a segment's anchor views show (ReconConfig.anchor_source)
ANCHOR_SOURCES = {
    "kframe": "the K-frame model's renders of both keyframes; segments stay independent",
    "neighbours": "segments train in two waves: the even-numbered ones first, unanchored; then each odd one is "
                  "tied to its finished neighbours' renders of the keyframes it shares with them",
}


@dataclass
class ReconConfig:
    keyframes: int = 4                 # K: keyframes spread over the sequence (first and last included)
    gaussians: int = 2000              # initial Gaussians (points in the subject's box)
    resolution: int = 64               # training images are box-filtered to this size
    kframe_iterations: int = 30000     # K-frame model
    segment_iterations: int = 20000    # per segment, warm-up included
    warmup: int = 3000                 # per segment: Gaussians frozen, deformation tied at the keyframes
    tie_weight: float = 100.0          # weight of the keyframe L2 tie (squared distance / scene extent²)
    anchor_weight: float = 1.0         # segments: weight of an image tie to renders of the segment's keyframes
                                       # from orbit views (novel views near the training cameras; what renders
                                       # them: anchor_source), kept after the warm-up, when Gaussians densify
                                       # and the L2 tie no longer applies; both segments meeting at a keyframe
                                       # are pulled to the same images there (0: off). Default from three
                                       # seeds on a 120-frame performance (docs/gaussians.md): boundary pops
                                       # 7.6 -> 6.0 %, warping error 2.00 -> 1.88 %, for 0.19 dB of PSNR
    anchor_share: float = 0.25         # share of a segment's iterations after the warm-up spent on an anchor view
    anchor_views: int = 8              # orbit views (each rendered at both keyframes)
    anchor_orbit: float = 20.0         # degrees: an orbit view turns a training camera about the vertical axis
                                       # through the subject by up to this
    anchor_source: str = "neighbours"  # what the anchor views show: a key of ANCHOR_SOURCES
    overlap: int = 0                   # frames a segment also holds past each of its keyframes: it trains on
                                       # them, and renders there dissolve linearly into the next segment,
                                       # centred on the keyframe (0: a cut at the keyframe)
    alpha_weight: float = 0.5          # weight of the matte L1 next to the colour L1
    densify: bool = True               # gsplat DefaultStrategy (its defaults scaled by `refine_scale`)
    refine_scale: float = 1.0          # scales the strategy's iteration counts (tiny runs refine sooner)
    max_gaussians: int = 200_000       # densification stops growing past this
    sh_degree: int = 1
    deform: DeformConfig = field(default_factory=DeformConfig)
    lr_means: float = 1.6e-4           # times the scene extent
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh: float = 2.5e-3
    lr_deform: float = 1.6e-3
    holdout_cameras: list[str] = field(default_factory=list)  # never trained on (novel-view scores)
    frames: list[int] | None = None    # the capture's frames to reconstruct (None: every frame)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if not 0.0 <= self.anchor_share <= 1.0 or self.anchor_views < 1 or self.anchor_weight < 0:
            raise ValidationError(f"anchor views: share {self.anchor_share} must be in [0, 1], views "
                                  f"{self.anchor_views} >= 1 and weight {self.anchor_weight} >= 0")
        if self.overlap < 0:
            raise ValidationError(f"overlap {self.overlap}: give 0 or more frames")
        if self.anchor_source not in ANCHOR_SOURCES:
            raise ValidationError(f"anchor source {self.anchor_source!r}: use one of {sorted(ANCHOR_SOURCES)}")


PRESETS = {
    "tiny": dict(gaussians=1500, resolution=64, kframe_iterations=1500, segment_iterations=1200, warmup=300,
                 refine_scale=0.25, max_gaussians=2000, deform=DeformConfig((8, 16), 6, 8, 32, 1)),
    "production": {},
}


def preset(name: str, **overrides) -> ReconConfig:
    if name not in PRESETS:
        raise ValidationError(f"--preset {name!r}: use one of {sorted(PRESETS)}")
    return ReconConfig(**{**PRESETS[name], **overrides})


@dataclass
class Views:
    """Training images of a capture set at the working resolution, with OpenCV cameras."""
    images: torch.Tensor      # [V, F, H, W, 4] premultiplied RGB + alpha
    viewmats: torch.Tensor    # [V, 4, 4] world-to-camera (OpenCV)
    Ks: torch.Tensor          # [V, 3, 3]
    cameras: list[str]        # [V]
    frames: list[int]         # [F]

    @property
    def size(self) -> tuple[int, int]:
        return self.images.shape[3], self.images.shape[2]  # (width, height)

    def subset(self, frames: list[int]) -> "Views":
        """These views at ``frames`` only (a model's share of the sequence)."""
        idx = [self.frames.index(f) for f in frames]
        return Views(self.images[:, idx], self.viewmats, self.Ks, self.cameras, list(frames))


@dataclass
class CaptureFrames:
    """A capture's frames, read from disk a model's share at a time (:meth:`subset`): the K-frame
    model holds its keyframes, a segment its span, so a reconstruction's memory does not grow with
    the sequence (every frame of 8 cameras at 2K would be ~128 GB). Made by :func:`capture_frames`."""
    capture: CaptureSet       # where the flat-lit images are read from
    resolution: int           # training images are box-filtered to this size
    frames: list[int]         # every frame of the reconstruction

    def subset(self, frames: list[int]) -> Views:
        return _read_views(self.capture, self.resolution, frames)


def capture_frames(capture: CaptureSet, resolution: int, frames: list[int] | None = None) -> CaptureFrames:
    """The capture's ``frames`` (default: all), checked (they exist, at least two), read lazily."""
    have = [f.frame for f in capture.manifest.frames]
    if frames is None:
        frames = have
    elif missing := sorted(set(frames) - set(have)):
        raise ValidationError(f"{capture.root}: has no frame {missing[0]} (it holds frames {have[0]}-{have[-1]}); "
                              "give --frames within them")
    if len(frames) < 2:
        raise ValidationError(f"{capture.root}: frames {frames}: a dynamic reconstruction needs at least two frames")
    for cam in capture.manifest.cameras:  # read later, a model's share at a time: a missing file is refused now
        for f in frames:
            if not (path := capture.path(capture.manifest.flat_images, cam.name, f)).is_file():
                raise ValidationError(f"{path}: not found; the capture's manifest lists camera {cam.name} at frame "
                                      f"{f}: render it again, or give --frames without it")
    return CaptureFrames(capture, resolution, list(frames))


def load_views(capture: CaptureSet, resolution: int, frames: list[int] | None = None) -> Views:
    """The capture's flat-lit images of ``frames`` (default: all) from every camera, all in memory."""
    checked = capture_frames(capture, resolution, frames)
    return checked.subset(checked.frames)


def _read_views(capture: CaptureSet, resolution: int, frames: list[int]) -> Views:
    from ..io.images import box_downsample

    m = capture.manifest
    images, viewmats, Ks = [], [], []
    for cam in m.cameras:
        per_frame = []
        for f in frames:
            img = capture.flat(cam.name, f)
            rgba = np.concatenate([img.rgb, img.alpha[..., None]], axis=-1)
            factor = rgba.shape[0] // resolution
            per_frame.append(box_downsample(rgba, factor) if factor > 1 else rgba)
        images.append(np.stack(per_frame))
        k = np.asarray(cam.K, dtype=np.float64).copy()
        scale = resolution / cam.height
        k[:2] *= scale
        Ks.append(k)
        viewmats.append(blender_c2w_to_opencv_w2c(np.asarray(cam.c2w)))
    return Views(torch.as_tensor(np.stack(images), dtype=torch.float32),
                 torch.as_tensor(np.stack(viewmats), dtype=torch.float32),
                 torch.as_tensor(np.stack(Ks), dtype=torch.float32), [c.name for c in m.cameras], frames)


@dataclass
class DynamicGaussians:
    """Canonical Gaussians and a deformation field between keyframes ``first`` and ``last``, held
    ``reach`` frame numbers past each (the overlap: :func:`overlap_reach`; the field's time axis spans
    [first - reach, last + reach])."""
    params: nn.ParameterDict
    deformation: Deformation
    first: int
    last: int
    reach: int = 0

    def time(self, frame: float) -> float:
        lo, hi = self.first - self.reach, self.last + self.reach
        return 0.0 if hi == lo else (frame - lo) / (hi - lo)

    def at(self, frame: float) -> dict[str, torch.Tensor]:
        """The rasteriser's inputs at ``frame``."""
        p = activated(self.params)
        means, quats, log_scales = self.deformation(self.params["means"], self.params["quats"],
                                                    self.params["scales"], self.time(frame))
        p.update(means=means, quats=torch.nn.functional.normalize(quats, dim=-1), scales=torch.exp(log_scales))
        return p

    def render(self, frame: float, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int):
        p = self.at(frame)
        sh_degree = int(math.isqrt(p["colors"].shape[1])) - 1
        return rasterize(p["means"], p["quats"], p["scales"], p["opacities"], p["colors"], viewmats, Ks, width,
                         height, sh_degree=sh_degree)

    def baked(self, frame: float) -> nn.ParameterDict:
        """New canonical parameters: these Gaussians as they stand at ``frame``."""
        with torch.no_grad():
            means, quats, log_scales = self.deformation(self.params["means"], self.params["quats"],
                                                        self.params["scales"], self.time(frame))
            out = {k: v.detach().clone() for k, v in self.params.items()}
            out.update(means=means.clone(), quats=quats.clone(), scales=log_scales.clone())
        return nn.ParameterDict({k: nn.Parameter(v) for k, v in out.items()})


def initial_points(views: Views, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points in the subject's visual hull (inside every view's matte at the first frame), with the
    colour of the first view they project into."""
    inv = torch.linalg.inv(views.viewmats).numpy()
    centres = inv[:, :3, 3]
    target = np.zeros(3)
    radius = 0.5 * min(np.linalg.norm(centres - target, axis=1)) * math.tan(math.radians(15))
    radius = max(radius, 0.05)
    points, colours = [], []
    width, height = views.size
    for _ in range(50):
        if sum(len(p) for p in points) >= n:
            break
        cand = target + rng.uniform(-2 * radius, 2 * radius, (4 * n, 3))
        inside = np.ones(len(cand), bool)
        colour = np.zeros((len(cand), 3))
        for v in range(len(views.cameras)):
            cam = (views.viewmats[v].numpy() @ np.c_[cand, np.ones(len(cand))].T).T[:, :3]
            uv = (views.Ks[v].numpy() @ cam.T).T
            x, y = uv[:, 0] / uv[:, 2], uv[:, 1] / uv[:, 2]
            ok = (cam[:, 2] > 0) & (x >= 0) & (x < width) & (y >= 0) & (y < height)
            xi, yi = np.clip(x.astype(int), 0, width - 1), np.clip(y.astype(int), 0, height - 1)
            alpha = views.images[v, 0, yi, xi, 3].numpy()
            inside &= ok & (alpha > 0.5)
            if v == 0:
                colour = views.images[v, 0, yi, xi, :3].numpy() / np.maximum(alpha, 1e-3)[:, None]
        points.append(cand[inside])
        colours.append(colour[inside])
    if sum(len(p) for p in points) == 0:
        raise ValidationError("no point falls inside every view's matte; do the cameras look at the subject "
                              "(the world origin)?")
    pts, cols = np.concatenate(points)[:n], np.clip(np.concatenate(colours)[:n], 0, 1)
    return pts, cols


def _optimizers(params: nn.ParameterDict, cfg: ReconConfig, extent: float) -> dict[str, torch.optim.Optimizer]:
    lrs = {"means": cfg.lr_means * extent, "scales": cfg.lr_scales, "quats": cfg.lr_quats,
           "opacities": cfg.lr_opacities, "sh0": cfg.lr_sh, "shN": cfg.lr_sh / 20}
    return {k: torch.optim.Adam([params[k]], lr=lrs[k], eps=1e-15) for k in params}


def _strategy(cfg: ReconConfig, iterations: int):
    from gsplat.strategy import DefaultStrategy

    s = cfg.refine_scale
    return DefaultStrategy(refine_start_iter=int(500 * s), refine_stop_iter=int(iterations * 0.7),
                           reset_every=max(int(3000 * s), 1), refine_every=max(int(100 * s), 1))


def train_deformable(model: DynamicGaussians, views: Views, train_cams: list[int], frames: list[int],
                     cfg: ReconConfig, iterations: int, extent: float, rng: np.random.Generator,
                     warmup: int = 0, tie: tuple[dict, dict] | None = None, log_every: int = 0,
                     anchors: list[tuple] | None = None) -> dict:
    """Optimise ``model`` on (camera, frame) pairs drawn at random; returns training stats.

    ``warmup`` first iterations keep the Gaussians frozen (only the deformation learns) and, with
    ``tie`` = (state at model.first, state at model.last) of another model, add an L2 penalty
    pulling this model's deformation at both ends towards it. ``anchors`` (:func:`segment_anchors`):
    after the warm-up, a share ``cfg.anchor_share`` of the iterations renders one of them instead
    of a training view, weighted ``cfg.anchor_weight``.
    """
    width, height = views.size
    gauss_opt = _optimizers(model.params, cfg, extent)
    deform_opt = torch.optim.Adam(model.deformation.parameters(), lr=cfg.lr_deform)
    strategy, state = None, None
    if cfg.densify:
        strategy = _strategy(cfg, iterations - warmup)
        strategy.check_sanity(model.params, gauss_opt)
        state = strategy.initialize_state(scene_scale=extent)
    frame_index = {f: i for i, f in enumerate(views.frames)}
    start = time.perf_counter()
    losses = []
    for it in range(iterations):
        frozen = it < warmup
        if anchors and not frozen and rng.random() < cfg.anchor_share:
            f, viewmat, K, target = anchors[int(rng.integers(len(anchors)))]
            weight = cfg.anchor_weight
        else:
            v = int(rng.choice(train_cams))
            f = int(rng.choice(frames))
            target, viewmat, K = views.images[v, frame_index[f]], views.viewmats[v:v + 1], views.Ks[v:v + 1]
            weight = 1.0
        img, alpha, info = model.render(f, viewmat, K, width, height)
        loss = weight * ((img[0] - target[..., :3]).abs().mean()
                         + cfg.alpha_weight * (alpha[0, ..., 0] - target[..., 3]).abs().mean())
        if frozen and tie is not None:
            for end, ref in ((model.first, tie[0]), (model.last, tie[1])):
                means, _, _ = model.deformation(model.params["means"], model.params["quats"], model.params["scales"],
                                                model.time(end))
                gap = ((means - ref["means"]) ** 2).sum(dim=-1).mean() / extent ** 2
                loss = loss + cfg.tie_weight * gap
        refine = strategy is not None and not frozen and len(model.params["means"]) < cfg.max_gaussians
        info.update(width=width, height=height, n_cameras=1, gaussian_ids=None)
        if refine:
            strategy.step_pre_backward(model.params, gauss_opt, state, it - warmup, info)
        for opt in list(gauss_opt.values()) + [deform_opt]:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        deform_opt.step()
        if not frozen:
            for opt in gauss_opt.values():
                opt.step()
        if refine:
            if weight != 1.0 and weight > 0:  # densify by the view's own screen gradients, not by its weight
                info["means2d"].grad /= weight
            strategy.step_post_backward(model.params, gauss_opt, state, it - warmup, info, packed=False)
            _cap(model.params, gauss_opt, state, cfg.max_gaussians)
        losses.append(loss.item())
        if log_every and (it + 1) % log_every == 0:
            log.info("it %d: loss %.4f, %d Gaussians", it + 1, np.mean(losses[-log_every:]),
                     len(model.params["means"]))
    return {"iterations": iterations, "seconds": time.perf_counter() - start, "final_loss": float(np.mean(losses[-50:])),
            "gaussians": len(model.params["means"])}


def _cap(params, optimizers, state, limit: int) -> None:
    """Keep at most ``limit`` Gaussians: the least opaque go first (a budget, as on the CPU protocol)."""
    n = len(params["means"])
    if n <= limit:
        return
    from gsplat.strategy.ops import remove

    drop = torch.zeros(n, dtype=torch.bool)
    drop[torch.argsort(params["opacities"].detach())[: n - limit]] = True
    remove(params, optimizers, state, drop)


def scene_bounds(points: np.ndarray, margin: float = 0.25) -> torch.Tensor:  # [2, 3]
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = margin * (hi - lo).max()
    return torch.as_tensor(np.stack([lo - pad, hi + pad]), dtype=torch.float32)


def _train_segment(seg: DynamicGaussians, kframe: DynamicGaussians, views: Views, train_cams: list[int],
                   cfg: ReconConfig, extent: float, rng: np.random.Generator, tie: tuple[dict, dict],
                   sources: tuple) -> dict:
    """A segment of the full method on its frames (``views`` holds them): the warm-up tie and the
    anchor views of ``sources`` (:func:`anchor_sources`); one definition for the in-process run and
    a farm unit's."""
    return train_deformable(seg, views, train_cams, views.frames, cfg, cfg.segment_iterations, extent, rng,
                            warmup=cfg.warmup, tie=tie,
                            anchors=segment_anchors(kframe, sources, views, train_cams, cfg, seg.first, seg.last))


def segment_waves(count: int, cfg: ReconConfig) -> list[list[int]]:
    """The segments (0-based) in the order they can train: one wave of all of them, or with
    ``neighbours`` anchors the even-numbered ones, then the odd ones (tied to them)."""
    if cfg.anchor_weight and cfg.anchor_source == "neighbours":
        return [list(range(0, count, 2)), list(range(1, count, 2))]
    return [list(range(count))]


def anchor_sources(index: int, count: int, kframe: DynamicGaussians, done: dict[int, DynamicGaussians],
                   cfg: ReconConfig) -> tuple:
    """(the model segment ``index`` is tied to at its first keyframe, the one at its last), None
    where it is not tied: the K-frame model at both, or its trained neighbours (odd segments only;
    the sequence's own first and last frame are no boundary). ``done``: trained segments by index."""
    if cfg.anchor_source != "neighbours":
        return kframe, kframe
    if index % 2 == 0:
        return None, None
    wanted = [i for i in (index - 1, index + 1) if 0 <= i < count]
    if missing := [i for i in wanted if i not in done]:
        raise ValidationError(f"segment {index} is tied to its neighbours (anchor source neighbours) but segment(s) "
                              f"{missing} are not trained yet: train the even-numbered segments first")
    return done[index - 1], done.get(index + 1)


def orbit_views(views: Views, cams: list[int], centre: torch.Tensor, n: int, degrees: float,
                rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # [n, 4, 4] w2c, [n, 3, 3]
    """``n`` novel cameras: each a camera of ``cams`` turned about the world's vertical axis (Blender
    Z) through ``centre`` by a random angle within +-``degrees`` (the subject stays in view)."""
    viewmats, Ks = [], []
    for _ in range(n):
        v = int(rng.choice(cams))
        t = math.radians(rng.uniform(-degrees, degrees))
        turn = torch.eye(4, dtype=torch.float64)
        turn[:3, :3] = torch.tensor([[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0],
                                     [0.0, 0.0, 1.0]], dtype=torch.float64)
        c = centre.double()
        turn[:3, 3] = c - turn[:3, :3] @ c  # p -> R (p - c) + c
        viewmats.append(views.viewmats[v].double() @ torch.linalg.inv(turn))  # the camera moved by the turn
        Ks.append(views.Ks[v])
    return torch.stack(viewmats).float(), torch.stack(Ks)


def segment_anchors(kframe: DynamicGaussians, sources: tuple, views: Views, train_cams: list[int],
                    cfg: ReconConfig, a: int, b: int) -> list[tuple] | None:
    """``sources``' renders of keyframes ``a`` and ``b`` (the first renders ``a``, the second
    ``b``; None: that end is not tied) from the orbit views, as (frame, viewmat [1, 4, 4],
    K [1, 3, 3], RGBA [H, W, 4]) for :func:`train_deformable`; the same orbit views for every
    segment (their own random stream, around the K-frame model's box), so two segments meeting at a
    keyframe are tied to the same images. None when ``cfg.anchor_weight`` is 0 or nothing is tied."""
    ends = [(f, model) for f, model in zip((a, b), sources) if model is not None]
    if not cfg.anchor_weight or not ends:
        return None
    bounds = kframe.deformation.bounds
    viewmats, Ks = orbit_views(views, train_cams, bounds.mean(dim=0), cfg.anchor_views, cfg.anchor_orbit,
                               np.random.default_rng([cfg.seed, ANCHOR_STREAM]))
    width, height = views.size
    out = []
    with torch.no_grad():
        for f, model in ends:
            for i in range(len(viewmats)):
                img, alpha, _ = model.render(f, viewmats[i:i + 1], Ks[i:i + 1], width, height)
                out.append((f, viewmats[i:i + 1], Ks[i:i + 1], torch.cat([img[0], alpha[0]], dim=-1)))
    return out


ANCHOR_STREAM = 7919  # the orbit views' random stream (beside the models' streams 0..segments)


def keyframes(frames: list[int], k: int) -> list[int]:
    """K frames spread evenly over the sequence, first and last included."""
    if k < 2:
        raise ValueError("at least two keyframes (the first and the last frame)")
    idx = np.round(np.linspace(0, len(frames) - 1, min(k, len(frames)))).astype(int)
    return [frames[i] for i in sorted(set(idx))]


@dataclass
class Reconstruction:
    """What ``reconstruct`` makes: the K-frame model and one model per segment."""
    kframe: DynamicGaussians
    segments: list[DynamicGaussians]
    keyframes: list[int]
    stats: dict

    def model_for(self, frame: int) -> DynamicGaussians:
        """The segment ``frame`` lies in between keyframes (a keyframe: the segment it starts; the last
        frame: the last)."""
        if not self.keyframes[0] <= frame <= self.keyframes[-1]:
            raise ValidationError(f"frame {frame}: the reconstruction holds frames {self.keyframes[0]}-"
                                  f"{self.keyframes[-1]}; give frames within them")
        for seg in self.segments:
            if seg.first <= frame < seg.last:
                return seg
        return self.segments[-1]

    def blend(self, frame: int) -> list[tuple[DynamicGaussians, float]]:
        """(segment, weight) pairs whose weighted renders make ``frame``: one segment, or within
        ``reach`` frames of a keyframe both segments meeting there, the weight moving linearly from
        the earlier to the later (half each at the keyframe itself)."""
        seg = self.model_for(frame)
        for left, right in zip(self.segments[:-1], self.segments[1:]):
            key, reach = right.first, min(left.reach, right.reach)
            if key - reach < frame < key + reach:
                w = (frame - (key - reach)) / (2 * reach)
                return [(left, 1.0 - w), (right, w)]
        return [(seg, 1.0)]

    def render(self, frame: int, viewmats: torch.Tensor, Ks: torch.Tensor, width: int, height: int
               ) -> tuple[torch.Tensor, torch.Tensor, list]:  # [C, H, W, 3], [C, H, W, 1], rasteriser infos
        """``frame`` from cameras ``viewmats`` [C, 4, 4] / ``Ks`` [C, 3, 3]: the renders of
        :meth:`blend`'s segments, weighted (premultiplied colour and alpha alike)."""
        img = alpha = 0.0
        infos = []
        for model, w in self.blend(frame):
            i, a, info = model.render(frame, viewmats, Ks, width, height)
            img, alpha = img + w * i, alpha + w * a
            infos.append(info)
        return img, alpha, infos


def new_model(points, colours, bounds, cfg: ReconConfig, first: int, last: int, extent: float,
              reach: int = 0) -> DynamicGaussians:
    params = init_params(points, colours, scale=0.01 * extent, sh_degree=cfg.sh_degree)
    return DynamicGaussians(params, Deformation(cfg.deform, bounds), first, last, reach)


def check_overlap(frames: list[int], keys: list[int], cfg: ReconConfig) -> None:
    """Refuse an overlap wider than half the shortest segment between ``keys`` (two dissolves would
    meet), counted in frames of the sequence ``frames``."""
    at = [frames.index(k) for k in keys]
    if 2 * cfg.overlap > min(b - a for a, b in zip(at[:-1], at[1:])):
        raise ValidationError(f"overlap {cfg.overlap}: keyframes {keys} leave a segment shorter than twice the "
                              "overlap; give fewer keyframes or a smaller overlap")


def overlap_reach(frames: list[int], keys: list[int], cfg: ReconConfig) -> int:
    """``cfg.overlap`` in frame numbers (:attr:`DynamicGaussians.reach`): how far that many frames of
    the sequence reach on both sides of every inner keyframe, at least (the frames of a stepped
    range, ``1-120x4``, are 4 numbers apart). 0 without an overlap or an inner keyframe."""
    check_overlap(frames, keys, cfg)
    if not cfg.overlap:
        return 0
    at = {f: i for i, f in enumerate(frames)}
    return min((min(frames[at[k] + cfg.overlap] - k, k - frames[at[k] - cfg.overlap]) for k in keys[1:-1]),
               default=0)


def segment_frames(frames: list[int], keys: list[int], index: int, cfg: ReconConfig) -> list[int]:
    """The frames segment ``index`` (from 0) trains on: those between its keyframes and ``cfg.overlap``
    frames past each (:func:`overlap_reach`)."""
    reach = overlap_reach(frames, keys, cfg)
    a, b = keys[index], keys[index + 1]
    return [f for f in frames if a - reach <= f <= b + reach]


def _setup(views: Views | CaptureFrames, cfg: ReconConfig):
    """Seeded start of a run: (rng, training cameras, initial points, their colours, scene box, extent)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    first = views.subset(views.frames[:1])  # the points start in the first frame's visual hull
    train_cams = [i for i, c in enumerate(first.cameras) if c not in cfg.holdout_cameras]
    points, colours = initial_points(first, cfg.gaussians, rng)
    bounds = scene_bounds(points)
    return rng, train_cams, points, colours, bounds, float((bounds[1] - bounds[0]).max())


def reconstruct(views: Views | CaptureFrames, cfg: ReconConfig, kframe_init: bool = True,
                store: str | Path | None = None, progress=None, segments: bool = True) -> Reconstruction:
    """The full method (``kframe_init=False``: independent segments trained from scratch).

    With ``store``, each model is saved there as it finishes and a rerun loads the finished ones
    instead of training them again (each model draws from its own random stream, so a resumed run
    trains the rest exactly as an uninterrupted one). ``progress(done, total, name)`` per model.
    ``segments=False`` stops after the K-frame model (the segments then run elsewhere:
    :func:`train_segment`). Each model is given only its frames (``views.subset``): with
    :class:`CaptureFrames` only those are in memory.
    """
    keys = keyframes(views.frames, cfg.keyframes)
    reach = overlap_reach(views.frames, keys, cfg)  # refuses a too-wide overlap before the K-frame model trains
    rng, train_cams, points, colours, bounds, extent = _setup(views, cfg)
    stats: dict = {"keyframes": keys}
    store = None if store is None else Path(store)
    total = len(keys) - 1 + int(kframe_init)

    finished = [0]  # models done, for progress

    def trained(name: str, index: int, build, train) -> DynamicGaussians:
        path = None if store is None else store / f"{name}.safetensors"
        if path is not None and path.exists():
            model = load_model(path, cfg)
            stats[name] = "loaded"
        else:
            torch.manual_seed(cfg.seed + index)
            model = build()
            stats[name] = train(model, np.random.default_rng([cfg.seed, index]))
            if path is not None:
                save_model(model, path)
        finished[0] += 1
        if progress is not None:
            progress(finished[0], total, name)
        return model

    kframe = new_model(points, colours, bounds, cfg, views.frames[0], views.frames[-1], extent)
    if kframe_init:
        kframe = trained("kframe", 0, lambda: kframe, lambda m, r: train_deformable(
            m, views.subset(keys), train_cams, keys, cfg, cfg.kframe_iterations, extent, r))
    count = len(keys) - 1 if segments else 0
    done: dict[int, DynamicGaussians] = {}  # trained segments by index (0-based)
    for j in [j for wave in segment_waves(count, cfg) for j in wave] if kframe_init else range(count):
        i, a, b = j + 1, keys[j], keys[j + 1]
        span = segment_frames(views.frames, keys, j, cfg)
        if kframe_init:
            with torch.no_grad():
                tie = (kframe.at(a), kframe.at(b))
            sources = anchor_sources(j, count, kframe, done, cfg)
            done[j] = trained(f"segment_{j:03d}", i,
                              lambda a=a, b=b: DynamicGaussians(kframe.baked(a), Deformation(cfg.deform, bounds), a, b,
                                                                reach),
                              lambda m, r, span=span, tie=tie, sources=sources: _train_segment(
                                  m, kframe, views.subset(span), train_cams, cfg, extent, r, tie, sources))
        else:
            done[j] = trained(f"segment_{j:03d}", i, lambda a=a, b=b: new_model(points, colours, bounds, cfg, a, b,
                                                                                 extent, reach),
                              lambda m, r, span=span: train_deformable(m, views.subset(span), train_cams, span, cfg,
                                                                       cfg.segment_iterations, extent, r))
    return Reconstruction(kframe, [done[j] for j in range(count)], keys, stats)


def load_reconstruction(store: str | Path, cfg: ReconConfig) -> Reconstruction:
    """The models ``reconstruct`` saved under ``store``."""
    store = Path(store)
    segments = [load_model(p, cfg) for p in sorted(store.glob("segment_*.safetensors"))]
    if not segments:
        raise ValidationError(f"{store}: no segment_*.safetensors; run relit reconstruct into it first")
    keys = [s.first for s in segments] + [segments[-1].last]
    has_kframe = (store / "kframe.safetensors").exists()  # independent segments have none
    kframe = load_model(store / "kframe.safetensors", cfg) if has_kframe else segments[0]
    whole = (kframe.first, kframe.last) if has_kframe else (keys[0], keys[-1])  # the sequence's first and last
    # a reconstruction still training (its segments train in waves) has gaps: never render across one
    gaps = [f"{a.last}-{b.first}" for a, b in zip(segments[:-1], segments[1:]) if a.last != b.first]
    if gaps or (keys[0], keys[-1]) != whole:
        raise ValidationError(f"{store}: the reconstruction is not finished (its segments cover frames "
                              f"{keys[0]}-{keys[-1]} of {whole[0]}-{whole[1]}"
                              + (f", none between frames {', '.join(gaps)}" if gaps else "")
                              + "); rerun relit reconstruct into it to finish it")
    return Reconstruction(kframe, segments, keys, {})


def single_model(views: Views | CaptureFrames, cfg: ReconConfig, iterations: int) -> Reconstruction:
    """One deformable model over the whole sequence (the baseline DifFRelight improves on)."""
    rng, train_cams, points, colours, bounds, extent = _setup(views, cfg)
    model = new_model(points, colours, bounds, cfg, views.frames[0], views.frames[-1], extent)
    every = views.subset(views.frames)
    stats = train_deformable(model, every, train_cams, views.frames, cfg, iterations, extent, rng)
    return Reconstruction(model, [model], [views.frames[0], views.frames[-1]], {"single": stats})


def save_model(model: DynamicGaussians, path: str | Path) -> Path:
    """One dynamic model (parameters, deformation, frame span) as safetensors, atomically."""
    from safetensors.torch import save_file

    from ..io.atomic import atomic_path

    tensors = {f"params.{k}": v.detach().contiguous() for k, v in model.params.items()}
    tensors.update({f"deform.{k}": v.detach().contiguous() for k, v in model.deformation.state_dict().items()})
    with atomic_path(path) as tmp:
        span = {"first": str(model.first), "last": str(model.last)}
        save_file(tensors, tmp, metadata={**span, "reach": str(model.reach)} if model.reach else span)
    return Path(path)


def load_model(path: str | Path, cfg: ReconConfig) -> DynamicGaussians:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    params = nn.ParameterDict({k[len("params."):]: nn.Parameter(v) for k, v in tensors.items()
                               if k.startswith("params.")})
    deform = {k[len("deform."):]: v for k, v in tensors.items() if k.startswith("deform.")}
    deformation = Deformation(cfg.deform, deform["bounds"])
    deformation.load_state_dict(deform)
    return DynamicGaussians(params, deformation, int(meta["first"]), int(meta["last"]), int(meta.get("reach", 0)))


RECON_JSON = "reconstruction.json"


def save_config(store: str | Path, cfg: ReconConfig, capture: str) -> None:
    import json
    from dataclasses import asdict

    from ..io.atomic import atomic_write_text

    Path(store).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(store) / RECON_JSON, json.dumps({"capture": capture, "config": asdict(cfg)}, indent=1) + "\n")


def load_config(store: str | Path) -> tuple[ReconConfig, str]:
    """(config, capture folder) a reconstruction folder was made with."""
    from ..validation import load_json

    data = load_json(Path(store) / RECON_JSON, "give a folder relit reconstruct wrote")
    cfg = dict(data["config"])
    d = cfg.pop("deform")
    d["resolutions"] = tuple(d["resolutions"])
    return ReconConfig(**cfg, deform=DeformConfig(**d)), data["capture"]


def train_segment(store: str | Path, index: int) -> str:
    """Train segment ``index`` (from 0) of a reconstruction folder whose K-frame model is done, and
    save it there: the unit a farm or Ray runs once the K-frame model exists (the segments of a
    wave are independent of each other: :func:`segment_waves`). Deterministic: the same as the
    in-process run."""
    store = Path(store)
    cfg, capture = load_config(store)
    path = store / f"segment_{index:03d}.safetensors"
    if path.exists():
        return str(path)
    every = capture_frames(CaptureSet(capture), cfg.resolution, cfg.frames)
    keys = keyframes(every.frames, cfg.keyframes)
    if not 0 <= index < len(keys) - 1:
        raise ValidationError(f"segment {index}: the reconstruction has segments 0-{len(keys) - 2}")
    kframe = load_model(store / "kframe.safetensors", cfg)
    a, b = keys[index], keys[index + 1]
    views = every.subset(segment_frames(every.frames, keys, index, cfg))  # this segment's frames only
    train_cams = [i for i, c in enumerate(views.cameras) if c not in cfg.holdout_cameras]
    bounds = kframe.deformation.bounds
    extent = float((bounds[1] - bounds[0]).max())
    count = len(keys) - 1
    done = {i: load_model(p, cfg) for i in (index - 1, index + 1)
            if 0 <= i < count and (p := store / f"segment_{i:03d}.safetensors").exists()}
    sources = anchor_sources(index, count, kframe, done, cfg)  # refuses a segment whose neighbours are missing
    torch.manual_seed(cfg.seed + index + 1)
    seg = DynamicGaussians(kframe.baked(a), Deformation(cfg.deform, bounds), a, b,
                           overlap_reach(every.frames, keys, cfg))
    with torch.no_grad():
        tie = (kframe.at(a), kframe.at(b))
    _train_segment(seg, kframe, views, train_cams, cfg, extent, np.random.default_rng([cfg.seed, index + 1]), tie,
                   sources)
    save_model(seg, path)
    return str(path)
