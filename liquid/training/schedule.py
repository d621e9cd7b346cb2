"""Learning-rate schedules after the warm-up: the multiplier of the peak rate as a function of progress.

``progress`` p in [0, 1] is the share of the run done (the trainer's `progress`: the larger of the step share
and the time share, so a time budget ends the schedule exactly at the budget). Every shape starts at 1 and
reaches 0 at p = 1:

    cosine:  f(p) = (1 + cos(pi p)) / 2                                   (Loshchilov & Hutter 2017)
    linear:  f(p) = 1 - p                                                 (linear decay to zero)
    wsd:     f(p) = 1                                  for p <= 1 - d     (warmup-stable-decay,
             f(p) = 1 - sqrt((p - (1 - d)) / d)        for p >  1 - d      Hägele et al. 2024, "1-sqrt" cooldown)

with d = `decay_share`, the share of the run spent in the final decay (wsd only). Compared with the cosine,
`linear` and `wsd` keep the rate higher through the middle of the run and spend a different share of it near
the floor; which shape teaches the arithmetic best at a fixed budget is measured in docs/experiments.md.
"""

from __future__ import annotations

import math

LR_SCHEDULES = ("cosine", "linear", "wsd")
# wsd (half the run at the peak, then the 1-sqrt decay) beat the linear decay at equal steps on all 7 seeds
# measured, on an Intel Xeon and an AMD EPYC (docs/experiments.md, sessions 16-17); linear had beaten the cosine
# on both seeds of session 10
DEFAULT_LR_SCHEDULE = "wsd"
DEFAULT_DECAY_SHARE = 0.5


def lr_multiplier(progress: float, schedule: str = DEFAULT_LR_SCHEDULE,
                  decay_share: float = DEFAULT_DECAY_SHARE) -> float:
    """f(progress) of `schedule` (see the module docstring); progress is clamped to [0, 1]."""
    p = min(1.0, max(0.0, progress))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule == "linear":
        return 1.0 - p
    if schedule == "wsd":
        if not 0.0 < decay_share <= 1.0:
            raise ValueError(f"decay_share must be in (0, 1], got {decay_share}")
        start = 1.0 - decay_share
        return 1.0 if p <= start else 1.0 - math.sqrt((p - start) / decay_share)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; expected one of {', '.join(LR_SCHEDULES)}")
