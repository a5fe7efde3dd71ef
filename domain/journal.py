"""A loan's double-entry journal, derived from its facts.

The chart a finance team recognises:
- ``loans_receivable:principal|interest|fee|penalty``  (assets, debit balances)
- ``funding_payable:<bank>``   what the book owes the bank that advanced the principal
- ``cash_in_transit:<bank>``   money received from the borrower, on its way through the bank
- ``interest_income``, ``fee_income``, ``penalty_income``, ``recovery_income``
- ``write_off_expense``
- ``overpayments_owed``        excess received, owed back to the borrower

Amounts are signed: debit positive, credit negative; every entry sums to zero.
Accrual is posted as *runs*: ``amount`` per night for each night
``value_date <= d < until``. The balance as of D is then the point lines valued
on or before D plus each run clamped to the nights before D, which is exactly
``position_as_of(D)``: one derivation answers every as-of date.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import NamedTuple

from domain.loan import Loan
from domain.money import ZERO
from domain.position import Position

FAR_FUTURE = date(9999, 12, 31)  # "as of the end of time": every fact the loan has
RECEIVABLE = "loans_receivable:"
OVERPAYMENTS = "overpayments_owed"
INCOME = {"interest": "interest_income", "penalty": "penalty_income"}


class JournalLine(NamedTuple):  # a tuple: hashed and compared in C when projections diff journals
    entry: str  # what posted it: funding, fee, accrual:<component>, the movement's key, write_off
    account: str
    value_date: date
    amount: Decimal  # signed; per night for a run
    until: date | None = None  # a run's exclusive end; None for a point line

    def balance_as_of(self, as_of: date) -> Decimal:
        if self.value_date > as_of:
            return ZERO
        if self.until is None:
            return self.amount
        return self.amount * (min(self.until, as_of) - self.value_date).days


def journal_lines(loan: Loan, position: Position | None = None) -> list[JournalLine]:
    """The loan's whole journal as its facts now stand (empty until it is funded).

    ``position`` is ``loan.position(FAR_FUTURE)`` when the caller already has it.
    """
    if loan.terms is None or loan.funded_on is None:
        return []
    terms, bank, funded_on = loan.terms, loan.bank, loan.funded_on
    position = position or loan.position(FAR_FUTURE)
    lines: list[JournalLine] = []

    def post(entry: str, value_date: date, *legs: tuple[str, Decimal], until: date | None = None) -> None:
        legs = tuple((account, amount) for account, amount in legs if amount != 0)
        assert sum(amount for _, amount in legs) == 0, (entry, legs)  # debits equal credits
        lines.extend(JournalLine(entry, account, value_date, amount, until) for account, amount in legs)

    post("funding", funded_on, (RECEIVABLE + "principal", terms.principal), (f"funding_payable:{bank}", -terms.principal))
    post("fee", funded_on, (RECEIVABLE + "fee", terms.fee), ("fee_income", -terms.fee))
    for run in position.accrual_runs:
        post(f"accrual:{run.component}", run.start, (RECEIVABLE + run.component, run.per_night),
             (INCOME[run.component], -run.per_night), until=run.end)
    for applied in position.applied:
        m, a = applied.movement, applied.allocation
        if applied.after_write_off:
            post(m.key, m.value_date, (f"cash_in_transit:{bank}", m.amount),
                 ("recovery_income", -a.paid.total), (OVERPAYMENTS, -a.overpayment))
        else:
            post(m.key, m.value_date, (f"cash_in_transit:{bank}", m.amount),
                 *((RECEIVABLE + part, -paid) for part, paid in a.paid.as_dict().items()),
                 (OVERPAYMENTS, -a.overpayment))
    if position.written_off is not None and loan.written_off_on is not None:
        w = position.written_off
        post("write_off", loan.written_off_on, ("write_off_expense", w.total),
             *((RECEIVABLE + part, -amount) for part, amount in w.as_dict().items()))
    return lines


def balances_as_of(lines: list[JournalLine], as_of: date) -> dict[str, Decimal]:
    """Account balances as of a date (accounts with nothing posted yet are absent)."""
    totals: dict[str, Decimal] = {}
    for line in lines:
        if line.value_date <= as_of:
            totals[line.account] = totals.get(line.account, ZERO) + line.balance_as_of(as_of)
    return totals
