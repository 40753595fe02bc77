"""Lighting math: SH, area lights, stage layouts, HDRI projection, LightRig (numpy only)."""
