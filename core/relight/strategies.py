"""The ways an HDRI (a rig's environment) is relit: one registry that the CLI, the job schema, the
planner, the farm and the add-on's menu all read. A new strategy is added here and planned in
``frame.plan_lighting``."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ValidationError
from ..model.conditioning import ENVMAP as ENVMAP_CONDITIONING
from ..model.conditioning import OLAT


@dataclass(frozen=True)
class HdriStrategy:
    name: str              # the value of --hdri-strategy and of a job's hdri_strategy
    label: str             # the add-on's menu label
    description: str       # what it does and costs (help text and tooltip)
    conditioning: str | None  # the bundle conditioning it needs (None: chosen from the bundle)
    light_chunks: bool     # its inferences split across farm units by stage direction


AUTO = HdriStrategy("auto", "Automatic", "stage for an olat bundle, envmap for an env-map bundle", None, True)
STAGE = HdriStrategy("stage", "Lights (stage)", "Each lamp is one inference; an HDRI is projected on the bundle's "
                     "stage, one inference per lit stage direction (the reference)", OLAT.name, True)
AREA = HdriStrategy("area", "Area lights", "Each lamp is one inference; an HDRI becomes K fitted area lights, K "
                    "inferences (the fast path)", OLAT.name, False)
ENVMAP = HdriStrategy("envmap", "Env map", "An env-map bundle relights a whole HDRI in one pass, and each lamp as "
                      "its own environment", ENVMAP_CONDITIONING.name, False)

STRATEGIES: dict[str, HdriStrategy] = {s.name: s for s in (AUTO, STAGE, AREA, ENVMAP)}


def hdri_strategy(name: str, conditioning: str | None = None, where: str = "--hdri-strategy") -> HdriStrategy:
    """The strategy called ``name``; ``auto`` resolved for a bundle of ``conditioning`` when given."""
    if name not in STRATEGIES:
        raise ValidationError(f"{where}: {name!r} is not one of {list(STRATEGIES)}")
    if name == AUTO.name and conditioning is not None:
        return ENVMAP if conditioning == ENVMAP.conditioning else STAGE
    return STRATEGIES[name]
