"""A funded loan's position as of a value date, re-derived from its money movements.

Movements are taken in value-date order (then in the order the ledger recorded
them), so a backdated repayment re-derives every allocation after it. Nothing
here is stored: the same facts always give the same position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from domain.accrual import AccrualRun, accrual_runs_between
from domain.allocation import Allocation, allocate
from domain.components import Components
from domain.delinquency import bucket, days_past_due
from domain.money import ZERO
from domain.terms import Terms


@dataclass(frozen=True)
class Movement:
    """Money received from the borrower (a repayment or an agency collection)."""

    key: str
    value_date: date
    amount: Decimal
    kind: str = "repayment"
    seq: int = 0  # the ledger's recording order, breaks ties on one value date


@dataclass(frozen=True)
class AppliedMovement:
    movement: Movement
    allocation: Allocation
    after_write_off: bool


@dataclass(frozen=True)
class Position:
    as_of: date
    due_date: date
    outstanding: Components
    overpayment: Decimal
    accrued: Components  # interest and penalty accrued so far, fee and principal as booked
    paid: Components
    applied: tuple[AppliedMovement, ...] = field(default=())
    settled_on: date | None = None
    written_off: Components | None = None  # what was written off, when it was
    accrual_runs: tuple[AccrualRun, ...] = field(default=())

    @property
    def total(self) -> Decimal:
        return self.outstanding.total

    @property
    def dpd(self) -> int:
        o = self.outstanding
        unpaid_due = (o.principal + o.interest + o.fee) > 0
        return days_past_due(self.as_of, self.due_date, unpaid_due)

    @property
    def bucket(self) -> str:
        return bucket(self.dpd)


def position_as_of(
    terms: Terms,
    funded_on: date,
    movements: list[Movement] | tuple[Movement, ...],
    as_of: date,
    written_off_on: date | None = None,
) -> Position:
    """Balances at the end of ``as_of``: movements valued on or before it, accrual for nights before it.

    A write-off on W takes what is owed at the end of W (after W's own
    movements); accrual stops from night W; money valued after W is recovery.
    """
    stop_on = written_off_on if written_off_on is not None and written_off_on <= as_of else None
    accrued = {"interest": ZERO, "penalty": ZERO}
    paid = {"penalty": ZERO, "interest": ZERO, "fee": ZERO, "principal": ZERO}
    overpayment = ZERO
    cursor = funded_on
    applied: list[AppliedMovement] = []
    runs: list[AccrualRun] = []
    settled_on: date | None = None
    written_off: Components | None = None

    def outstanding() -> Components:
        return Components(
            penalty=accrued["penalty"] - paid["penalty"],
            interest=accrued["interest"] - paid["interest"],
            fee=terms.fee - paid["fee"],
            principal=terms.principal - paid["principal"],
        )

    # Neither closure refers to itself: a self-referring closure is a reference cycle, which only the
    # cyclic garbage collector frees (a rebuild derives a position per money event).
    def accrue(to: date) -> None:
        nonlocal cursor
        if to <= cursor:
            return
        principal = terms.principal - paid["principal"]
        for run in accrual_runs_between(terms, funded_on, principal, cursor, to, stop_on):
            accrued[run.component] += run.amount
            runs.append(run)
        cursor = to

    def advance(to: date) -> None:
        nonlocal written_off
        if stop_on is not None and written_off is None and to > stop_on:
            accrue(stop_on)
            written_off = outstanding()
        accrue(to)

    for m in sorted(movements, key=lambda m: (m.value_date, m.seq)):
        if m.value_date > as_of:
            break
        assert m.value_date >= funded_on, (m, funded_on)
        advance(m.value_date)
        allocation = allocate(m.amount, outstanding(), terms.allocation_order)
        for name, amount in allocation.paid.as_dict().items():
            paid[name] += amount
        overpayment += allocation.overpayment
        recovery = stop_on is not None and m.value_date > stop_on
        applied.append(AppliedMovement(m, allocation, after_write_off=recovery))
        if settled_on is None and outstanding().total == 0:
            settled_on = m.value_date
    advance(as_of)
    if stop_on is not None and written_off is None:
        written_off = outstanding()

    out = outstanding()
    assert min(out.as_dict().values()) >= 0 and overpayment >= 0, out  # never negative
    return Position(
        as_of=as_of,
        due_date=terms.due_date(funded_on),
        outstanding=out,
        overpayment=overpayment,
        accrued=Components(accrued["penalty"], accrued["interest"], terms.fee, terms.principal),
        paid=Components(**paid),
        applied=tuple(applied),
        settled_on=settled_on,
        written_off=written_off,
        accrual_runs=tuple(runs),
    )
