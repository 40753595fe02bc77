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


def blend_frame(relit: np.ndarray,      # [H, W, C] this frame as relit (any layers stacked on C)
                previous: np.ndarray,   # [H, W, C] the previous frame's blended output
                plate_before: np.ndarray,  # [H, W, 3] the previous frame's flat-lit plate
                plate: np.ndarray,      # [H, W, 3] this frame's flat-lit plate
                weight: float,          # share of the carried history in the blended frame
                ) -> np.ndarray:        # [H, W, C] float32
    """One step of the running blend: the previous output carried along the backward flow where the
    flow passes the forward-backward check, this frame as relit elsewhere."""
    flow = backward_flow(plate_before, plate)
    ok = consistent(flow, backward_flow(plate, plate_before))[..., None]
    carried = warp(previous, flow).reshape(relit.shape)
    return np.where(ok, (1.0 - weight) * relit + weight * carried, relit).astype(np.float32)


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
        out.append(blend_frame(relit[f], out[-1], plates[f - 1], plates[f], weight))
    return out
