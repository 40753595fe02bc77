"""Outputs of a reconstruction: flat-lit renders of any camera (EXRs ``relit relight`` takes) and
per-frame PLY files in the standard 3DGS layout (:mod:`core.io.ply`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ValidationError
from ..io.ply import write_ply


def export_frame_ply(model, frame: float, path: str | Path) -> Path:
    """A dynamic model's Gaussians as they stand at ``frame``."""
    import torch

    with torch.no_grad():
        baked = model.baked(frame)
        sh = torch.cat([baked["sh0"], baked["shN"]], dim=1).numpy()
        quats = torch.nn.functional.normalize(baked["quats"], dim=-1).numpy()
        return write_ply(path, baked["means"].numpy(), quats, baked["scales"].numpy(), baked["opacities"].numpy(), sh)


def render_view(model, frame: float, K: np.ndarray, c2w: np.ndarray, width: int, height: int
                ) -> tuple[np.ndarray, np.ndarray]:  # [H, W, 3] premultiplied flat-lit, [H, W] alpha
    """``model`` (a dynamic model, or a Reconstruction, which blends its segments) at ``frame``."""
    import torch

    from ..lighting.camera import blender_c2w_to_opencv_w2c

    viewmat = torch.as_tensor(blender_c2w_to_opencv_w2c(np.asarray(c2w)), dtype=torch.float32)[None]
    Ks = torch.as_tensor(np.asarray(K), dtype=torch.float32)[None]
    with torch.no_grad():
        img, alpha, _ = model.render(frame, viewmat, Ks, width, height)
    return img[0].numpy(), alpha[0, ..., 0].numpy()


def render_sequence(recon_folder: str | Path,
                    K: np.ndarray,          # [3, 3] intrinsics of the output size
                    c2w: np.ndarray,        # [4, 4] Blender camera-to-world
                    width: int, height: int,
                    frames: list[int] | None,  # None: every frame reconstructed
                    output: str | Path,
                    ply: bool = False,
                    progress=None,          # progress(done, total, frame)
                    ) -> tuple[int, int]:
    """Render a reconstruction folder from one camera into OUTPUT/flat.####.exr (flat-lit RGBA,
    premultiplied, the subject named in the header; frames already there are kept) and, with
    ``ply``, OUTPUT/ply/gaussians.####.ply (the Gaussians of the segment the frame lies in: two sets
    of Gaussians do not dissolve in one file). Returns (rendered, kept)."""
    from ..data.capture import CaptureSet
    from ..io.exr import write_exr
    from ..io.plates import SUBJECT_ATTRIBUTE
    from .train import load_config, load_reconstruction

    cfg, capture_path = load_config(recon_folder)
    recon = load_reconstruction(recon_folder, cfg)
    capture = CaptureSet(capture_path)
    frames = frames or cfg.frames or [f.frame for f in capture.manifest.frames]
    if outside := [f for f in frames if not recon.keyframes[0] <= f <= recon.keyframes[-1]]:
        raise ValidationError(f"{recon_folder}: reconstructs frames {recon.keyframes[0]}-{recon.keyframes[-1]}, "
                              f"not {outside[0]}; give --frames within them")
    out = Path(output)
    rendered = 0
    for n, f in enumerate(frames, start=1):
        path = out / f"flat.{f:04d}.exr"
        if not path.exists():
            rgb, alpha = render_view(recon, f, K, c2w, width, height)  # dissolving between segments near keyframes
            write_exr(path, np.concatenate([rgb, alpha[..., None]], -1), ["R", "G", "B", "A"],
                      attributes={SUBJECT_ATTRIBUTE: capture.manifest.subject})
            rendered += 1
        if ply and not (out / "ply" / f"gaussians.{f:04d}.ply").exists():
            export_frame_ply(recon.model_for(f), f, out / "ply" / f"gaussians.{f:04d}.ply")
        if progress is not None:
            progress(n, len(frames), f)
    return rendered, len(frames) - rendered
