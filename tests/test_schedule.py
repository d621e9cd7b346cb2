"""Learning-rate schedules: each shape against its closed form, and the trainer's use of `--lr_schedule`."""

import math

import pytest

from liquid.training.schedule import LR_SCHEDULES, lr_multiplier


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
def test_every_shape_starts_at_one_ends_at_zero_and_never_rises(schedule):
    values = [lr_multiplier(i / 200, schedule, 0.3) for i in range(201)]
    assert values[0] == 1.0 and values[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(later <= earlier + 1e-12 for earlier, later in zip(values, values[1:]))
    assert lr_multiplier(-0.5, schedule) == 1.0 and lr_multiplier(1.5, schedule) == pytest.approx(0.0, abs=1e-12)


def test_shapes_match_their_formulas():
    for p in (0.1, 0.25, 0.5, 0.8, 0.95):
        assert lr_multiplier(p, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * p)))
        assert lr_multiplier(p, "linear") == pytest.approx(1 - p)
    # wsd with the last 40% as cooldown: flat until 0.6, then 1 - sqrt of the cooldown's share
    assert lr_multiplier(0.59, "wsd", 0.4) == 1.0
    assert lr_multiplier(0.7, "wsd", 0.4) == pytest.approx(1 - math.sqrt(0.25))
    assert lr_multiplier(0.9, "wsd", 0.4) == pytest.approx(1 - math.sqrt(0.75))
    # decay_share 1: the 1-sqrt shape over the whole run
    assert lr_multiplier(0.25, "wsd", 1.0) == pytest.approx(0.5)


def test_bad_schedule_or_share_is_refused():
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'step'"):
        lr_multiplier(0.5, "step")
    with pytest.raises(ValueError, match="decay_share must be in"):
        lr_multiplier(0.5, "wsd", 0.0)
