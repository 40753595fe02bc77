"""What training does with real photos beside the synthetic pairs (the multi-task share): one
registry that TrainConfig, the trainer and ``relit train --real-task`` read. Pure Python."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RealTask:
    name: str          # TrainConfig.multitask_task, --real-task
    description: str   # help text
    drop_image: bool   # the photo is not given as the input (the sample is image-unconditional)
    drop_light: bool   # no target light is given (the sample is light-unconditional)
    keep_input: bool   # the photo is also the input: the target is the plate given back unchanged


GENERATE = RealTask("generate", "SynthLight's unconditional share: with neither input nor light, the model learns "
                    "to draw real photos", True, True, False)
KEEP = RealTask("keep", "with no target light, the model gives the photo back: the portrait model's unconditional "
                "light branch is the plate as shot (light guidance then moves away from it)", False, True, True)

REAL_TASKS: dict[str, RealTask] = {t.name: t for t in (GENERATE, KEEP)}
DEFAULT_SHARE = 0.25  # share of each batch given to the real photos when none is chosen (SynthLight: 0.3)
