"""Temporal stability: optical flow between frames, flow-warped noise, blending and metrics."""
