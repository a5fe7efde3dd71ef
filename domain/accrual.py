"""Interest and penalty accrual: derived from the facts, never stored as events.

Rules (docs/rules.md): for each night d,
- interest accrues round_half_up(P(d) x daily_rate) when funded_on <= d < due_date,
- penalty accrues round_half_up(P(d) x penalty_daily_rate) when due_date + grace <= d,
where P(d) is principal outstanding after every movement valued on or before d.
Accrual stops on the write-off date. Rounding is per night, never on totals.

Between two facts P(d) is constant, so a run of n nights accrues exactly
n x round_half_up(P x rate): the same fen as a day-by-day loop, in O(facts)
rather than O(days). A run is also how the journal posts accrual: one balanced
line per run answers every as-of date inside it. ``domain.position`` walks the
facts and cuts the runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

_ONE_FEN = Decimal(1)


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


def per_night_fen(principal_fen: int, rate: Decimal) -> int:
    """One night's accrual on ``principal_fen`` at ``rate``, rounded half-up to the fen."""
    return int((principal_fen * rate).quantize(_ONE_FEN, rounding=ROUND_HALF_UP))
