"""A loan's double-entry journal, derived from its facts.

The chart a finance team recognises:
- ``loans_receivable:principal|interest|fee|penalty``  (assets, debit balances)
- ``funding_payable:<bank>``   what the book owes the bank that advanced the principal
- ``cash_in_transit:<bank>``   money received from the borrower, on its way through the bank
- ``interest_income``, ``fee_income``, ``penalty_income``, ``recovery_income``
- ``write_off_expense``
- ``overpayments_owed``        excess received, owed back to the borrower

Amounts are signed: debit positive, credit negative; every posting group (one
``entry``) sums to zero, asserted as it is posted.

Accrual is posted as *run lines*: ``amount`` per night for each night
``value_date <= d < until`` (``until`` of FAR_FUTURE: still running). The
balance as of D is the point lines valued on or before D plus each run clamped
to the nights before D, which is exactly ``position_as_of(D)``: one derivation,
taken as of the end of time, answers every as-of date. That works because
every fact carries its own value date (movements, the write-off), so nothing
in the far-future position depends on the date it is taken at.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from domain.loan import Loan
from domain.money import ZERO
from domain.position import Position

FAR_FUTURE = date(9999, 12, 31)  # "as of the end of time": every fact the loan has
RECEIVABLE = "loans_receivable:"
OVERPAYMENTS = "overpayments_owed"
RECOVERY = "recovery_income"
WRITE_OFF = "write_off_expense"
_RECEIVABLES = {part: RECEIVABLE + part for part in ("penalty", "interest", "fee", "principal")}
_INCOME = {"interest": "interest_income", "penalty": "penalty_income"}


class JournalLine(NamedTuple):
    """One leg of a posting. A tuple, so projections hash and compare whole journals in C."""

    entry: str  # the posting group: funding, fee, accrual:<component>, a movement's key, write_off
    account: str
    value_date: date
    amount: Decimal  # signed (debit +); for a run line, per night
    until: date | None = None  # a run line's exclusive end; None for a point line

    def balance_as_of(self, as_of: date) -> Decimal:
        if self.value_date > as_of:
            return ZERO
        if self.until is None:
            return self.amount
        return self.amount * (min(self.until, as_of) - self.value_date).days


_line = tuple.__new__  # JournalLine's own __new__ is a Python function: five times slower on this path


def journal_lines(loan: Loan, position: Position | None = None) -> list[JournalLine]:
    """The loan's whole journal as its facts now stand (empty until it is funded).

    ``position`` is ``loan.position(FAR_FUTURE)`` when the caller already has it.
    """
    if loan.terms is None or loan.funded_on is None:
        return []
    terms, funded_on = loan.terms, loan.funded_on
    position = position or loan.position(FAR_FUTURE)
    cash, lines = f"cash_in_transit:{loan.bank}", []

    def post(entry: str, value_date: date, legs: Iterable[tuple[str, Decimal]], until: date | None = None) -> None:
        balance = ZERO
        for account, amount in legs:
            if amount:
                lines.append(_line(JournalLine, (entry, account, value_date, amount, until)))
                balance += amount
        assert balance == 0, (loan.loan_id, entry, lines)  # debits equal credits, in every posting group

    principal, fee = terms.principal, terms.fee
    post("funding", funded_on, ((_RECEIVABLES["principal"], principal), (f"funding_payable:{loan.bank}", -principal)))
    post("fee", funded_on, ((_RECEIVABLES["fee"], fee), ("fee_income", -fee)))
    for run in position.accrual_runs:
        post(
            "accrual:" + run.component,
            run.start,
            ((_RECEIVABLES[run.component], run.per_night), (_INCOME[run.component], -run.per_night)),
            run.end,
        )
    for applied in position.applied:
        m, a = applied.movement, applied.allocation
        if applied.after_write_off:  # a recovery: the receivables left the book at the write-off
            legs = [(cash, m.amount), (RECOVERY, -a.paid.total)]
        else:
            paid = a.paid
            legs = [
                (cash, m.amount),
                (_RECEIVABLES["penalty"], -paid.penalty),
                (_RECEIVABLES["interest"], -paid.interest),
                (_RECEIVABLES["fee"], -paid.fee),
                (_RECEIVABLES["principal"], -paid.principal),
            ]
        legs.append((OVERPAYMENTS, -a.overpayment))
        post(m.key, m.value_date, legs)
    w = position.written_off
    if w is not None and loan.written_off_on is not None:
        post(
            "write_off",
            loan.written_off_on,
            (
                (WRITE_OFF, w.total),
                (_RECEIVABLES["penalty"], -w.penalty),
                (_RECEIVABLES["interest"], -w.interest),
                (_RECEIVABLES["fee"], -w.fee),
                (_RECEIVABLES["principal"], -w.principal),
            ),
        )
    return lines


def balances_as_of(lines: Iterable[JournalLine], as_of: date) -> dict[str, Decimal]:
    """Account balances as of a date (accounts with nothing posted by then are absent)."""
    totals: dict[str, Decimal] = {}
    for line in lines:
        if line.value_date <= as_of:
            totals[line.account] = totals.get(line.account, ZERO) + line.balance_as_of(as_of)
    return totals
