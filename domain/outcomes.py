"""What became of a funded loan: each figure the reports and the datasets show, defined once.

"Ever N+ days past due" is DPD >= N at some point. DPD grows by one a day from
the due date while principal, interest or fee is unpaid (docs/decisions.md), so
a loan reaches N+ exactly on due date + N, and did so if and only if it is still
past due at the end of that day. Money received after a write-off recovers the
written-off principal; what it pays beyond the debt is an overpayment owed back
to the borrower, never a recovery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from domain.loan import Loan
from domain.money import ZERO
from domain.position import Position

EVER_DPD = 30  # "ever 30+": the delinquency every vintage figure and label counts
FPD_DAYS = 7  # first-payment default: not repaid in full by due date + 7 (7+ days past due)
EVER_WINDOW_DAYS = 60  # ever 30+ is judged within 60 days after the due date


def past_due_after(
    position_on: Callable[[date], Position], due: date, days: int, settled_on: date | None = None
) -> bool:
    """Ever ``days``+ days past due: still past due at the end of ``due + days``.

    ``position_on`` values the loan on a day; ``settled_on``, when the caller already knows
    the loan was settled by then, spares valuing it (nothing owed: nothing past due).
    """
    day = due + timedelta(days=days)
    if settled_on is not None and settled_on <= day:
        return False
    return position_on(day).dpd >= days


def reached_dpd(loan: Loan, by: date, threshold: int = EVER_DPD) -> date | None:
    """The day the loan reached ``threshold``+ days past due, if it had by ``by``; else None."""
    if loan.terms is None or loan.funded_on is None:
        return None
    due = loan.terms.due_date(loan.funded_on)
    day = due + timedelta(days=threshold)
    if day > by:
        return None
    return day if past_due_after(loan.position, due, threshold) else None


@dataclass(frozen=True)
class Loss:
    written_off: Decimal  # principal written off
    recovered: Decimal  # received after the write-off and applied to the debt (not overpayment), up to that principal
    waived: Decimal = ZERO  # principal forgiven while the loan was on the book (before or on the write-off date)

    @property
    def net(self) -> Decimal:
        return self.written_off - self.recovered + self.waived


def loss(position: Position) -> Loss:
    """The principal lost on a loan as of the position's date: written off and not recovered, plus waived.

    A principal waiver after the write-off forgives debt already counted as written off, so it adds nothing.
    """
    waived = sum(
        (w.amount for w in position.waivers if w.movement.component == "principal" and not w.after_write_off), ZERO
    )
    if position.written_off is None:
        return Loss(ZERO, ZERO, waived)
    principal = position.written_off.principal
    paid = sum((a.allocation.paid.total for a in position.applied if a.after_write_off), ZERO)
    return Loss(principal, min(principal, paid), waived)
