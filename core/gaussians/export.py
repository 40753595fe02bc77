"""Outputs of a reconstruction: flat-lit renders of any camera (EXRs ``relit relight`` takes) and
per-frame PLY files in the standard 3DGS layout (:mod:`core.io.ply`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
    import torch

    from ..lighting.camera import blender_c2w_to_opencv_w2c

    viewmat = torch.as_tensor(blender_c2w_to_opencv_w2c(np.asarray(c2w)), dtype=torch.float32)[None]
    Ks = torch.as_tensor(np.asarray(K), dtype=torch.float32)[None]
    with torch.no_grad():
        img, alpha, _ = model.render(frame, viewmat, Ks, width, height)
    return img[0].numpy(), alpha[0, ..., 0].numpy()
