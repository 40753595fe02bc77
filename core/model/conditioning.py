"""How the target lighting reaches the model: one registry that the model config, the network,
the pipeline, training, the HDRI strategies and the CLI read. Pure Python (no torch): the job
schema and the add-on read it too. A new conditioning mode is added here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Conditioning:
    name: str           # ModelConfig.conditioning, --conditioning, a strategy's bundle kind
    description: str    # help text
    image_latents: int  # latents stacked on the UNet's input channels (noisy, flat-lit, [environment])
    environment: bool   # the light is an env map (channels + optional SH token); else direction tokens
    real_task: str      # core.model.real_tasks: what the multi-task's real photos teach it by default


OLAT = Conditioning("olat", "a subject-specific model lit by light directions, one per inference (DifFRelight)",
                    2, False, "generate")
ENVMAP = Conditioning("envmap", "the general portrait model lit by camera-frame environments, a whole HDRI in one "
                      "inference (SynthLight)", 3, True, "keep")

CONDITIONINGS: dict[str, Conditioning] = {c.name: c for c in (OLAT, ENVMAP)}
