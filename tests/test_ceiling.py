"""The cost ceiling's journal lines (domain/ceiling.py) against the rule applied night by night."""

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from domain.ceiling import REDUCED, CapFraction, CeilingSegment, reduction_lines

START = date(2026, 3, 1)


@st.composite
def lives(draw):
    """Consecutive stretches of constant parameters, each starting anywhere (facts jump the figures):
    any cost, principal-days, penalty and fee owed, rates, and one cap for the loan."""
    cap = CapFraction.of(Decimal(draw(st.sampled_from(["0.24", "0.36", "0.1", "0.000001", "1"]))))
    segments, start = [], START
    for _ in range(draw(st.integers(1, 4))):
        penalty_per_night = draw(st.integers(0, 600))
        penalty, fee = draw(st.integers(0, 50_000)), draw(st.integers(0, 10_000))
        end = start + timedelta(days=draw(st.integers(1, 200)))
        segments.append(
            CeilingSegment(
                start=start,
                end=end,
                cost=penalty + fee + draw(st.integers(0, 50_000)),  # the contractual cost covers what is owed
                cost_per_night=penalty_per_night + draw(st.integers(0, 300)),
                numerator=cap.numerator * draw(st.integers(0, 5_000_000)),
                numerator_per_night=cap.numerator * draw(st.sampled_from([0, draw(st.integers(1, 500_000))])),
                penalty=penalty,
                penalty_per_night=penalty_per_night,
                fee=fee,
                divisor=cap.divisor,
            )
        )
        start = end
    return segments


@given(lives())
def test_the_lines_give_the_rule_on_every_night(segments):
    lines = reduction_lines(segments)
    for seg in segments:
        day = seg.start
        while day < seg.end:
            expected = dict(zip(REDUCED, seg.reduction_at((day - seg.start).days), strict=True))
            got = {part: sum(line.at(day) for line in lines if line.component == part) for part in REDUCED}
            assert got == expected, day
            day += timedelta(days=1)


@given(lives())
def test_a_stretch_needs_a_few_lines_never_one_a_night(segments):
    """Per stretch at most four regimes; in each, per component, a point line and a run or floor run."""
    assert len(reduction_lines(segments)) <= len(segments) * 4 * 2 * len(REDUCED)


def test_a_capped_stretch_after_nothing_was_capped_starts_from_zero():
    # the first night of EX1: cost 5.00 (the fee), ceiling round_down(0.36 x 1,000.00 / 365) = 0.98
    cap = CapFraction.of(Decimal("0.36"))
    seg = CeilingSegment(START, START + timedelta(days=1), 500, 50, cap.numerator * 100_000, 0, 0, 0, 500, cap.divisor)
    assert reduction_lines([seg]) == [
        ("fee", START, None, 402, 0, 1),
        ("fee", START, START + timedelta(days=1), 50, 0, 1),
    ]
