"""The journal: balanced, and as of any date it says what the domain says, to the fen."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from domain.journal import OVERPAYMENTS, RECEIVABLE, balances_as_of, journal_lines
from ledger.commands import command_from_dict
from ledger.config import Settings
from ledger.handlers import handle
from domain.errors import LedgerError
from support.commands import loan_streams

FUNDED = date(2026, 3, 1)


def build(stream):
    loan = None
    for c in stream:
        try:
            loan = handle(loan, command_from_dict(c), Settings())
        except LedgerError:
            pass
    return loan


@given(loan_streams(), st.integers(-5, 260))
def test_journal_as_of_any_date_equals_the_domain_position(stream, offset):
    loan = build(stream)
    as_of = FUNDED + timedelta(days=offset)
    balances = balances_as_of(journal_lines(loan), as_of)
    if as_of < FUNDED:
        assert balances == {}
        return
    p = loan.position(as_of)
    written_off = loan.written_off_on is not None and loan.written_off_on <= as_of
    for part, amount in p.outstanding.as_dict().items():
        # written off: off the book, though the borrower still owes it (recoveries reduce that)
        assert balances.get(RECEIVABLE + part, D(0)) == (D(0) if written_off else amount), part
    if written_off:
        assert balances["write_off_expense"] == p.written_off.total
    assert -balances.get(OVERPAYMENTS, D(0)) == p.overpayment


@given(loan_streams(), st.integers(0, 260))
def test_every_entry_balances_and_the_trial_balance_is_zero_on_every_date(stream, offset):
    lines = journal_lines(build(stream))
    entries = {}
    for line in lines:
        entries.setdefault((line.entry, line.value_date, line.until), D(0))
        entries[(line.entry, line.value_date, line.until)] += line.amount
    assert all(total == 0 for total in entries.values())
    assert sum(balances_as_of(lines, FUNDED + timedelta(days=offset)).values(), D(0)) == 0


def test_the_domain_example_posts_what_finance_expects():
    from support.commands import domain_example, repaid
    lines = journal_lines(build(domain_example() + [repaid()]))
    on = lambda day: balances_as_of(lines, day)  # noqa: E731
    at_funding = on(date(2026, 3, 1))
    assert at_funding["loans_receivable:principal"] == D("1000.00")
    assert at_funding["funding_payable:BANKA"] == D("-1000.00")
    assert at_funding["fee_income"] == D("-5.00")
    after = on(date(2026, 3, 8))
    assert after["cash_in_transit:BANKA"] == D("500.00")
    assert after["interest_income"] == D("-3.50")
    assert after["loans_receivable:interest"] == D("0.00")
    assert after["loans_receivable:principal"] == D("508.50")
    assert on(date(2026, 3, 20))["penalty_income"] == D("-0.51") * 5
