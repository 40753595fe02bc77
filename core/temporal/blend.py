"""Temporal blending of relit frames along optical flow (DifFRelight's last stage).

Each frame is blended with the previous *output* carried along the backward optical flow of the
flat-lit plates (OpenCV DIS), where the flow passes the forward-backward check; elsewhere (occlusions,
the frame edge) the frame is kept as relit. The running blend is an exponential average along the
motion, so per-frame sampling noise (flicker) falls while the lighting, the same on every frame, is
kept. Every ``keyframe_step`` frames the history is reset to the relit frame (0: never).
"""

from __future__ import annotations

import numpy as np

from .flow import backward_flow, consistent, warp


def blend_sequence(relit: list[np.ndarray],   # [F] of [H, W, C] relit frames (any layers stacked on C)
                   plates: list[np.ndarray],  # [F] of [H, W, 3] the flat-lit plates they were relit from
                   weight: float = 0.5,       # share of the carried history in each blended frame
                   keyframe_step: int = 0,    # reset the history every this many frames (0: never)
                   ) -> list[np.ndarray]:
    if len(relit) != len(plates):
        raise ValueError(f"{len(relit)} relit frames for {len(plates)} plates")
    out = [relit[0].astype(np.float32)]
    for f in range(1, len(relit)):
        if keyframe_step and f % keyframe_step == 0:
            out.append(relit[f].astype(np.float32))
            continue
        flow = backward_flow(plates[f - 1], plates[f])
        ok = consistent(flow, backward_flow(plates[f], plates[f - 1]))[..., None]
        carried = warp(out[-1], flow).reshape(relit[f].shape)
        out.append(np.where(ok, (1.0 - weight) * relit[f] + weight * carried, relit[f]).astype(np.float32))
    return out
