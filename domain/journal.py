"""A loan's double-entry journal, derived from its facts.

The chart a finance team recognises:
- ``loans_receivable:principal|interest|fee|penalty``  (assets, debit balances)
- ``funding_payable:<bank>``   what the book owes the bank that advanced the principal
- ``cash_in_transit:<bank>``   money received from the borrower (and refunds paid back), through the bank
- ``interest_income``, ``fee_income``, ``penalty_income``, ``recovery_income``
- ``write_off_expense``, ``waiver_expense``
- ``bank_interest_expense``    the funding bank's yield, remitted to it (domain/settlement.py)
- ``overpayments_owed``        excess received, owed back to the borrower
- ``memo:written_off:principal|interest|fee|penalty`` against ``memo:written_off_contra``:
  what a written-off borrower still owes, off the book (the two sides sum to zero)

Amounts are signed: debit positive, credit negative; every posting group (one
``entry``) sums to zero, checked as it is posted.

Accrual is posted as *run lines*: ``amount`` per night for each night
``value_date <= d < until`` (``until`` of FAR_FUTURE: still running). The cost
ceiling's reduction (``ceiling:<component>``: income debited, receivable
credited) is posted as point lines, run lines and *floor runs*, whose balance
after m nights is sign x (floor((offset + |amount| x m) / divisor) - floor(offset / divisor))
with ``amount`` in fen (domain/ceiling.py). The balance as of D is the point
lines valued on or before D plus each run clamped to the nights before D, which
is exactly ``position_as_of(D)``: one derivation, taken as of the end of time,
answers every as-of date. That works because every fact carries its own value
date (movements, waivers, refunds, the write-off), so nothing in the far-future
position depends on the date it is taken at.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from domain.ceiling import REDUCED, floor_run, reduction_lines
from domain.errors import BrokenInvariant
from domain.loan import Loan
from domain.money import ZERO
from domain.position import Position

FAR_FUTURE = date(9999, 12, 31)  # "as of the end of time": every fact the loan has
RECEIVABLE = "loans_receivable:"
OVERPAYMENTS = "overpayments_owed"
RECOVERY = "recovery_income"
WRITE_OFF = "write_off_expense"
WAIVER = "waiver_expense"
BANK_INTEREST = "bank_interest_expense"
MEMO = "memo:written_off:"  # + component: what a written-off borrower still owes
MEMO_CONTRA = "memo:written_off_contra"
PARTS = ("penalty", "interest", "fee", "principal")
_RECEIVABLES = {part: RECEIVABLE + part for part in PARTS}
_MEMOS = {part: MEMO + part for part in PARTS}
_INCOME = {"interest": "interest_income", "penalty": "penalty_income", "fee": "fee_income"}
_CENT = Decimal("0.01")
_CEILING = {part: ("ceiling:" + part, RECEIVABLE + part, _INCOME[part]) for part in REDUCED}


class JournalLine(NamedTuple):
    """One leg of a posting. A tuple, so projections hash and compare whole journals in C."""

    entry: str  # the posting group: funding, fee, accrual:<c>, ceiling:<c>, a fact's key, write_off
    account: str
    value_date: date
    amount: Decimal  # signed (debit +); for a run line, per night; for a floor run, its numerator in fen
    until: date | None = None  # a run line's exclusive end; None for a point line
    offset: int = 0  # a floor run's offset (0 for every other line)
    divisor: int = 1  # a floor run's divisor (1 for every other line)

    def balance_as_of(self, as_of: date) -> Decimal:
        if self.value_date > as_of:
            return ZERO
        if self.until is None:
            return self.amount
        nights = (min(self.until, as_of) - self.value_date).days
        if self.divisor == 1:
            return self.amount * nights
        return floor_run(int(self.amount.scaleb(2)), self.offset, self.divisor, nights) * _CENT


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

    def post(
        entry: str,
        value_date: date,
        legs: Iterable[tuple[str, Decimal]],
        until: date | None = None,
        offset: int = 0,
        divisor: int = 1,
    ) -> None:
        balance = ZERO
        for account, amount in legs:
            if amount:
                lines.append(_line(JournalLine, (entry, account, value_date, amount, until, offset, divisor)))
                balance += amount
        if balance != 0:  # debits equal credits, in every posting group
            raise BrokenInvariant(f"loan {loan.loan_id}: posting {entry} on {value_date} is off by {balance}")

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
    _post_ceiling(position, lines)
    for applied in position.applied:
        m, a = applied.movement, applied.allocation
        paid = a.paid
        if applied.after_write_off:  # a recovery: the receivables left the book at the write-off
            legs = [(cash, m.amount), (RECOVERY, -paid.total), (MEMO_CONTRA, paid.total)]
            legs += [(_MEMOS[part], -paid.get(part)) for part in PARTS]
        else:
            legs = [(cash, m.amount), *((_RECEIVABLES[part], -paid.get(part)) for part in PARTS)]
        legs.append((OVERPAYMENTS, -a.overpayment))
        post(m.key, m.value_date, legs)
    for waiver in position.waivers:
        m, part = waiver.movement, waiver.movement.component
        if part is None:
            raise BrokenInvariant(f"loan {loan.loan_id}: waiver {m.key} names no component")
        if waiver.after_write_off:  # the debt left the book already: only the memo of it changes
            post(m.key, m.value_date, ((MEMO_CONTRA, waiver.amount), (_MEMOS[part], -waiver.amount)))
        else:
            post(m.key, m.value_date, ((WAIVER, waiver.amount), (_RECEIVABLES[part], -waiver.amount)))
    for refund in position.refunds:
        m = refund.movement
        post(m.key, m.value_date, ((OVERPAYMENTS, m.amount), (cash, -m.amount)))
    w = position.written_off
    if w is not None and loan.written_off_on is not None:
        written = [(part, w.get(part)) for part in PARTS]
        post("write_off", loan.written_off_on, [(WRITE_OFF, w.total), *((_RECEIVABLES[p], -v) for p, v in written)])
        post("write_off:memo", loan.written_off_on, [(MEMO_CONTRA, -w.total), *((_MEMOS[p], v) for p, v in written)])
    payable = f"funding_payable:{loan.bank}"
    for r in loan.remittances:  # a settlement with the bank: principal and its yield remitted, or the guarantee
        remitted = r.principal + r.interest
        post(f"remitted:{r.day}", r.day, ((payable, r.principal), (BANK_INTEREST, r.interest), (cash, -remitted)))
        compensation = r.compensation_principal + r.compensation_interest
        guarantee = r.compensation_principal, r.compensation_interest
        paid_out = ((payable, guarantee[0]), (BANK_INTEREST, guarantee[1]), (cash, -compensation))
        post(f"compensated:{r.day}", r.day, paid_out)
    return lines


def _post_ceiling(position: Position, lines: list[JournalLine]) -> None:
    """The reduction of each component (domain/ceiling.py) as lines: its receivable credited, its income
    debited, by the same line shape (point, run or floor run). Each posting is a pair of opposite legs,
    balanced by construction."""
    for component, start, until, fen, offset, divisor in reduction_lines(position.segments):
        entry, receivable, income = _CEILING[component]
        amount = fen * _CENT
        lines.append(_line(JournalLine, (entry, receivable, start, -amount, until, offset, divisor)))
        lines.append(_line(JournalLine, (entry, income, start, amount, until, offset, divisor)))


def balances_as_of(lines: Iterable[JournalLine], as_of: date) -> dict[str, Decimal]:
    """Account balances as of a date (accounts with nothing posted by then are absent)."""
    totals: dict[str, Decimal] = {}
    for line in lines:
        if line.value_date <= as_of:
            totals[line.account] = totals.get(line.account, ZERO) + line.balance_as_of(as_of)
    return totals
