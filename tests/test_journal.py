"""The journal: every posting balances, and as of any date it says what the domain says, to the fen."""

from __future__ import annotations

import contextlib
import functools
from datetime import date, timedelta
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st
from support.commands import applied, approved, declined, domain_example, funded, repaid

from domain.errors import LedgerError
from domain.journal import OVERPAYMENTS, RECEIVABLE, RECOVERY, WRITE_OFF, balances_as_of, journal_lines
from domain.terms import DEFAULT_ALLOCATION_ORDER, CostCaps
from ledger.commands import command_from_dict
from ledger.config import Settings
from ledger.handlers import handle

FUNDED = date(2026, 3, 1)
PARTS = ("principal", "interest", "fee", "penalty")


@st.composite
def loans(draw):
    """A funded loan with random terms and allocation order, then random money movements
    (many backdated), reversals and maybe a write-off, applied through the real handlers."""
    order = draw(st.permutations(DEFAULT_ALLOCATION_ORDER).map(tuple))
    settings = Settings(
        cost_caps=CostCaps.flat(D(100)), allocation_orders={"payday": order}
    )  # pricing is not under test here
    principal = draw(st.integers(50_000, 500_000))  # fen
    terms = {
        "principal": f"{principal / 100:.2f}",
        "term_days": draw(st.integers(7, 30)),
        "daily_rate": f"{draw(st.integers(0, 150)) / 100_000:.5f}",
        "fee": f"{draw(st.integers(0, 9_999)) / 100:.2f}",
        "penalty_daily_rate": f"{draw(st.integers(0, 300)) / 100_000:.5f}",
        "grace_days": draw(st.integers(0, 5)),
    }
    stream = [
        applied(principal=terms["principal"], term_days=terms["term_days"]),
        approved(**terms),
        funded(amount=terms["principal"]),
    ]
    moves: list[dict] = []
    for i in range(draw(st.integers(0, 7))):
        kind = draw(st.sampled_from(["repaid", "repaid", "collected", "reversed"]))
        day = (FUNDED + timedelta(days=draw(st.integers(0, 150)))).isoformat()
        amount = f"{draw(st.integers(1, principal + 20_000)) / 100:.2f}"
        if kind == "repaid":
            moves.append(repaid(ref=f"R{i}", amount=amount, value_date=day))
        elif kind == "collected":
            moves.append(
                {
                    "type": "collected",
                    "loan_id": "L1",
                    "idempotency_key": f"C{i}",
                    "agency": "inhouse",
                    "occurred_at": "2026-05-01T12:00:00+08:00",
                    "amount": amount,
                    "value_date": day,
                }
            )
        elif moves:
            moves.append(
                {
                    "type": "reversed",
                    "loan_id": "L1",
                    "idempotency_key": f"X{i}",
                    "reason": "bounced",
                    "occurred_at": "2026-05-02T12:00:00+08:00",
                    "reverses": draw(st.sampled_from(moves))["idempotency_key"],
                }
            )
    if draw(st.booleans()):
        day = (FUNDED + timedelta(days=draw(st.integers(0, 130)))).isoformat()
        at = draw(st.integers(0, len(moves)))  # the write-off arrives anywhere among the movements
        moves.insert(
            at,
            {
                "type": "written_off",
                "loan_id": "L1",
                "idempotency_key": "W",
                "reason": "test",
                "occurred_at": "2026-07-10T23:59:59+08:00",
                "value_date": day,
            },
        )
    return build(stream + moves, settings)


def build(stream, settings=None):
    settings = settings or Settings()
    loan = None
    for c in stream:
        # a rule that says no (e.g. a write-off of nothing owed) changes nothing, as in the ledger
        with contextlib.suppress(LedgerError):
            loan = handle(loan, command_from_dict(c), settings)
    return loan


def entries(lines):
    groups: dict = {}
    for line in lines:
        groups.setdefault((line.entry, line.value_date), []).append(line)
    return groups


@given(loans())
def test_the_journal_as_of_every_date_is_the_domain_position(loan):
    lines = journal_lines(loan)
    for as_of in (FUNDED + timedelta(days=d) for d in range(-2, 200)):
        balances = balances_as_of(lines, as_of)
        get = functools.partial(lambda b, account: b.get(account, D(0)), balances)
        if as_of < FUNDED:
            assert balances == {}
            continue
        p = loan.position(as_of)
        off_book = loan.written_off_on is not None and loan.written_off_on <= as_of
        for part in PARTS:
            # written off: off the book, though the borrower still owes it (recoveries reduce that)
            assert get(RECEIVABLE + part) == (D(0) if off_book else p.outstanding.get(part)), (as_of, part)
        assert -get(OVERPAYMENTS) == p.overpayment
        assert -get("interest_income") == p.accrued.interest and -get("penalty_income") == p.accrued.penalty
        assert -get("fee_income") == loan.terms.fee
        assert -get(f"funding_payable:{loan.bank}") == loan.terms.principal
        assert get(f"cash_in_transit:{loan.bank}") == sum((a.movement.amount for a in p.applied), D(0))
        assert get(WRITE_OFF) == (p.written_off.total if off_book else D(0))
        assert -get(RECOVERY) == sum((a.allocation.paid.total for a in p.applied if a.after_write_off), D(0))
        assert sum(balances.values(), D(0)) == 0, as_of  # the trial balance


@given(loans())
def test_every_posting_group_balances_and_nothing_is_posted_twice(loan):
    lines = journal_lines(loan)
    assert len(set(lines)) == len(lines)  # projections diff journals as sets
    for key, group in entries(lines).items():
        assert sum(line.amount for line in group) == 0, key
        assert len({line.until for line in group}) == 1, key  # a run posts both legs over the same nights
    assert all(line.amount != 0 for line in lines)


def test_no_journal_before_funding_or_for_a_declined_application():
    assert journal_lines(build(domain_example()[:2])) == []
    assert journal_lines(build([applied(), declined()])) == []


def test_the_domain_example_posts_what_finance_expects():
    lines = journal_lines(build(domain_example() + [repaid()]))
    on = lambda day: balances_as_of(lines, day)  # noqa: E731
    at_funding = on(date(2026, 3, 1))
    assert at_funding == {
        "loans_receivable:principal": D("1000.00"),
        "funding_payable:BANKA": D("-1000.00"),
        "loans_receivable:fee": D("5.00"),
        "fee_income": D("-5.00"),
        "loans_receivable:interest": D("0.00"),
        "interest_income": D("0.00"),
    }
    after = on(date(2026, 3, 8))  # 500.00 pays 3.50 interest, the 5.00 fee, then 491.50 principal
    assert after["cash_in_transit:BANKA"] == D("500.00")
    assert after["interest_income"] == D("-3.50")
    assert after["loans_receivable:interest"] == D("0.00")
    assert after["loans_receivable:fee"] == D("0.00")
    assert after["loans_receivable:principal"] == D("508.50")
    later = on(date(2026, 3, 20))  # 7 nights at 0.25 more interest; 5 nights of penalty at 0.51
    assert later["interest_income"] == D("-3.50") - D("1.75")
    assert later["penalty_income"] == D("-0.51") * 5


def test_a_write_off_moves_every_receivable_to_expense_and_later_money_is_recovery():
    wo = {
        "type": "written_off",
        "loan_id": "L1",
        "idempotency_key": "W",
        "reason": "DPD 90",
        "occurred_at": "2026-06-14T23:59:59+08:00",
        "value_date": "2026-06-13",
    }
    lines = journal_lines(build(domain_example() + [wo, repaid(ref="R9", amount="100.00", value_date="2026-07-01")]))
    b = balances_as_of(lines, date(2026, 7, 1))
    assert all(b[RECEIVABLE + part] == 0 for part in PARTS)
    # owed at the end of 13 June: 1000 principal, 7.00 interest, 5.00 fee, 90 nights of 1.00 penalty
    assert b[WRITE_OFF] == D("1102.00")
    assert b[RECOVERY] == D("-100.00") and b["cash_in_transit:BANKA"] == D("100.00")
