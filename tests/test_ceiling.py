"""The cost ceiling's pieces (domain/ceiling.py) against the rule applied night by night."""

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from domain.ceiling import REDUCED, CapFraction, CeilingSegment, reduction_pieces

START = date(2026, 3, 1)


@st.composite
def segments(draw):
    """A stretch of constant parameters: any cost, principal-days, penalty and fee owed, rates and cap."""
    cap = CapFraction.of(Decimal(draw(st.sampled_from(["0.24", "0.36", "0.1", "0.000001", "1"]))))
    penalty_per_night = draw(st.integers(0, 600))
    cost_per_night = penalty_per_night + draw(st.integers(0, 300))
    penalty = draw(st.integers(0, 50_000))
    fee = draw(st.integers(0, 10_000))
    cost = penalty + fee + draw(st.integers(0, 50_000))  # the contractual cost covers what is owed of it
    return CeilingSegment(
        start=START,
        end=START + timedelta(days=draw(st.integers(1, 400))),
        cost=cost,
        cost_per_night=cost_per_night,
        numerator=cap.numerator * draw(st.integers(0, 5_000_000)),
        numerator_per_night=cap.numerator * draw(st.sampled_from([0, draw(st.integers(1, 500_000))])),
        penalty=penalty,
        penalty_per_night=penalty_per_night,
        fee=fee,
        divisor=cap.divisor,
    )


@given(segments())
def test_the_pieces_give_the_rule_on_every_night_of_the_segment(seg):
    intervals = reduction_pieces(seg)
    assert intervals[0][0] == seg.start and intervals[-1][1] == seg.end
    assert all(a[1] == b[0] for a, b in zip(intervals, intervals[1:], strict=False))  # contiguous
    assert len(intervals) <= 4  # each regime boundary is crossed once at most
    for start, end, pieces in intervals:
        by_part = {p.component: p for p in pieces}
        day = start
        while day < end:
            n = (day - seg.start).days
            expected = dict(zip(("penalty", "fee", "interest"), seg.reduction_at(n), strict=True))
            got = {part: by_part[part].at(day) if part in by_part else 0 for part in REDUCED}
            assert got == expected, (day, n)
            day += timedelta(days=1)
