"""Interest and penalty accrual: derived from the facts, never stored as events.

Rules (DOMAIN.md): for each night d,
- interest accrues round_half_up(P(d) x daily_rate) when funded_on <= d < due_date,
- penalty accrues round_half_up(P(d) x penalty_daily_rate) when due_date + grace <= d,
where P(d) is principal outstanding after every repayment valued on or before d.
Accrual stops on the write-off date. Rounding is per night, never on totals.

Between two money movements P(d) is constant, so a run of n nights accrues
exactly n x round_half_up(P x rate): the same fen as a day-by-day loop, in
O(movements) rather than O(days).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from domain.money import ZERO, round_half_up
from domain.terms import Terms


def nights_in(start: date, end: date, lo: date, hi: date | None) -> int:
    """How many nights d satisfy start <= d < end and lo <= d < hi (hi None: no bound)."""
    first = max(start, lo)
    last = end if hi is None else min(end, hi)
    return max(0, (last - first).days)


def accrue(principal: Decimal, rate: Decimal, nights: int) -> Decimal:
    if nights <= 0 or principal <= 0:
        return ZERO
    return round_half_up(principal * rate) * nights


def accrue_run(
    terms: Terms,
    funded_on: date,
    principal: Decimal,
    start: date,
    end: date,
    stop_on: date | None = None,
) -> tuple[Decimal, Decimal]:
    """Interest and penalty for the nights start <= d < end at constant principal.

    ``stop_on`` (a write-off date) ends all accrual from that night on.
    """
    due = terms.due_date(funded_on)
    interest_end = due if stop_on is None else min(due, stop_on)
    interest_nights = nights_in(start, end, funded_on, interest_end)
    penalty_from = due + timedelta(days=terms.grace_days)
    penalty_nights = nights_in(start, end, penalty_from, stop_on)
    return (
        accrue(principal, terms.daily_rate, interest_nights),
        accrue(principal, terms.penalty_daily_rate, penalty_nights),
    )
