import pytest

from core import testing
from projects.transformer import schedules


def test_values_at_known_steps():
    schedule = schedules.WarmupInverseSqrt(peak_learning_rate=1e-3, warmup_steps=4000)
    values = {step: float(schedule(step)) for step in (0, 1999, 3999, 15999, 63999)}
    # Steps count from 1: optimizer iteration 3999 is the 4000th step, the peak.
    assert values[0] == pytest.approx(1e-3 / 4000)
    assert values[1999] == pytest.approx(0.5e-3)
    assert values[3999] == pytest.approx(1e-3)
    assert values[15999] == pytest.approx(0.5e-3)  # 4x the warm-up: sqrt(1/4)
    assert values[63999] == pytest.approx(0.25e-3)


def test_matches_the_papers_formula_for_its_peak():
    d_model, warmup = 512, 4000
    schedule = schedules.WarmupInverseSqrt(d_model**-0.5 * warmup**-0.5, warmup)
    for step in (1, 100, 4000, 10_000, 100_000):  # the paper counts from 1
        paper = d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
        assert float(schedule(step - 1)) == pytest.approx(paper, rel=1e-5)


def test_round_trips_through_config_and_a_saved_optimizer():
    testing.check_schedule(schedules.WarmupInverseSqrt(2e-3, 100), steps=(0, 1, 50, 100, 5000))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="warmup_steps >= 1"):
        schedules.WarmupInverseSqrt(1e-3, 0)
