"""Interest and penalty accrual: derived from the facts, never stored as events.

Rules (DOMAIN.md): for each night d,
- interest accrues round_half_up(P(d) x daily_rate) when funded_on <= d < due_date,
- penalty accrues round_half_up(P(d) x penalty_daily_rate) when due_date + grace <= d,
where P(d) is principal outstanding after every repayment valued on or before d.
Accrual stops on the write-off date. Rounding is per night, never on totals.

Between two money movements P(d) is constant, so a run of n nights accrues
exactly n x round_half_up(P x rate): the same fen as a day-by-day loop, in
O(movements) rather than O(days). A run is also how the journal posts accrual:
one balanced line per run answers every as-of date inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from domain.money import round_half_up
from domain.terms import Terms


@dataclass(frozen=True)
class AccrualRun:
    """``per_night`` accrued for each night start <= d < end (one rounding per night)."""

    component: str  # "interest" | "penalty"
    start: date
    end: date
    per_night: Decimal

    @property
    def amount(self) -> Decimal:
        return self.per_night * (self.end - self.start).days


def accrual_runs_between(
    terms: Terms, funded_on: date, principal: Decimal, start: date, end: date, stop_on: date | None
) -> list[AccrualRun]:
    """The interest and penalty runs for nights start <= d < end at constant principal."""
    due = terms.due_date(funded_on)
    interest_end = due if stop_on is None else min(due, stop_on)
    penalty_from = due + timedelta(days=terms.grace_days)
    windows = (
        ("interest", terms.daily_rate, max(start, funded_on), min(end, interest_end)),
        ("penalty", terms.penalty_daily_rate, max(start, penalty_from), end if stop_on is None else min(end, stop_on)),
    )
    runs = []
    for component, rate, first, last in windows:
        per_night = round_half_up(principal * rate)
        if last > first and per_night > 0:
            runs.append(AccrualRun(component, first, last, per_night))
    return runs
