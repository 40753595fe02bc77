"""Learning-rate schedules for ``relit train``: one registry, read by the trainer and the CLI.

Each maps the share of the run's steps done (0..1) to a multiplier of the peak rate. They are
functions of the step alone, so a resumed run takes the same rates as a straight one.
"""

from __future__ import annotations

import math
from typing import Callable

LR_FLOOR = 0.05  # the cosine schedule ends at this share of the peak learning rate

LR_SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda done: 1.0,
    "cosine": lambda done: LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * min(max(done, 0.0), 1.0))),
}

# schedules whose rates do not depend on the run's length: a resumed run may raise --steps with these alone
LENGTH_FREE = frozenset({"constant"})
