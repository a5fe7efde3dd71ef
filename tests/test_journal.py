"""The journal: every posting balances, and as of any date it says what the domain says, to the fen."""

from __future__ import annotations

import contextlib
import functools
from datetime import date, timedelta
from decimal import ROUND_DOWN
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st
from support.commands import applied, approved, declined, domain_example, funded, refunded, repaid, waived

from domain.errors import LedgerError
from domain.journal import (
    MEMO,
    MEMO_CONTRA,
    OVERPAYMENTS,
    RECEIVABLE,
    RECOVERY,
    WAIVER,
    WRITE_OFF,
    balances_as_of,
    journal_lines,
)
from domain.terms import DEFAULT_ALLOCATION_ORDER, CostCaps
from ledger.commands import command_from_dict
from ledger.config import Settings
from ledger.handlers import handle

FUNDED = date(2026, 3, 1)
PARTS = ("principal", "interest", "fee", "penalty")


@st.composite
def loans(draw):
    """A funded loan with random terms, cap and allocation order, then random money movements
    (many backdated), waivers, refunds, reversals and maybe a write-off, applied through the real
    handlers. Terms are drawn inside the cap (approval judges them); the penalty is not judged at
    approval, so late loans meet the cost ceiling, as do early nights (the fee is owed at once)."""
    order = draw(st.permutations(DEFAULT_ALLOCATION_ORDER).map(tuple))
    cap = draw(st.sampled_from([D("0.24"), D("0.36"), D("0.1"), D("1")]))
    settings = Settings(cost_caps=CostCaps.flat(cap), allocation_orders={"payday": order})
    principal = draw(st.integers(50_000, 500_000))  # fen
    term_days = draw(st.integers(7, 30))
    allowed = cap * principal * term_days / 365  # fen of interest and fee together, at most
    fee = min(draw(st.integers(0, 9_999)), int(allowed * draw(st.sampled_from([D("0.2"), D("0.6"), D("0.95")]))))
    most_daily = (allowed - fee) / principal / term_days
    daily = min(D(draw(st.integers(0, 150))) / 100_000, most_daily.quantize(D("0.00001"), rounding=ROUND_DOWN))
    terms = {
        "principal": f"{principal / 100:.2f}",
        "term_days": term_days,
        "daily_rate": str(daily),
        "fee": f"{fee / 100:.2f}",
        "penalty_daily_rate": f"{draw(st.integers(0, 300)) / 100_000:.5f}",
        "grace_days": draw(st.integers(0, 5)),
    }
    stream = [
        applied(principal=terms["principal"], term_days=terms["term_days"]),
        approved(**terms),
        funded(amount=terms["principal"]),
    ]
    moves: list[dict] = []
    for i in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["repaid", "repaid", "collected", "reversed", "waived", "refunded"]))
        day = (FUNDED + timedelta(days=draw(st.integers(0, 150)))).isoformat()
        amount = f"{draw(st.integers(1, principal + 20_000)) / 100:.2f}"
        small = f"{draw(st.integers(1, 3_000)) / 100:.2f}"
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
        elif kind == "waived":
            component = draw(st.sampled_from(DEFAULT_ALLOCATION_ORDER))
            moves.append(waived(key=f"V{i}", amount=small, component=component, value_date=day))
        elif kind == "refunded":  # after a payment of more than is owed, usually
            if draw(st.booleans()):
                moves.append(repaid(ref=f"O{i}", amount=f"{principal / 50:.2f}", value_date=day))
            moves.append(refunded(ref=f"F{i}", amount=small, value_date=day))
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
    """Posting groups: a run (or floor run) posts both legs over the same nights, with the same floor."""
    groups: dict = {}
    for line in lines:
        groups.setdefault((line.entry, line.value_date, line.until, line.offset, line.divisor), []).append(line)
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
            # written off: off the book, though the borrower still owes it: the memo accounts say what
            assert get(RECEIVABLE + part) == (D(0) if off_book else p.outstanding.get(part)), (as_of, part)
            assert get(MEMO + part) == (p.outstanding.get(part) if off_book else D(0)), (as_of, part)
        assert get(MEMO_CONTRA) == -sum((get(MEMO + part) for part in PARTS), D(0))
        assert -get(OVERPAYMENTS) == p.overpayment
        # income is what the borrower is asked to pay: accrued less the cost ceiling's reduction
        assert -get("interest_income") == p.accrued.interest - p.capped.interest
        assert -get("penalty_income") == p.accrued.penalty - p.capped.penalty
        assert -get("fee_income") == loan.terms.fee - p.capped.fee
        assert -get(f"funding_payable:{loan.bank}") == loan.terms.principal
        received = sum((a.movement.amount for a in p.applied), D(0))
        assert get(f"cash_in_transit:{loan.bank}") == received - p.refunded
        assert get(WAIVER) == sum((w.amount for w in p.waivers if not w.after_write_off), D(0))
        assert get(WRITE_OFF) == (p.written_off.total if off_book else D(0))
        assert -get(RECOVERY) == sum((a.allocation.paid.total for a in p.applied if a.after_write_off), D(0))
        assert sum(balances.values(), D(0)) == 0, as_of  # the trial balance


@given(loans())
def test_every_posting_group_balances_and_nothing_is_posted_twice(loan):
    lines = journal_lines(loan)
    assert len(set(lines)) == len(lines)  # projections diff journals as sets
    for key, group in entries(lines).items():
        assert sum(line.amount for line in group) == 0, key
    assert all(line.amount != 0 for line in lines)


def test_no_journal_before_funding_or_for_a_declined_application():
    assert journal_lines(build(domain_example()[:2])) == []
    assert journal_lines(build([applied(), declined()])) == []


def test_the_domain_example_posts_what_finance_expects():
    lines = journal_lines(build(domain_example() + [repaid()]))
    on = lambda day: balances_as_of(lines, day)  # noqa: E731
    at_funding = on(date(2026, 3, 1))  # the fee is owed at once, within the first night's ceiling
    assert at_funding == {
        "loans_receivable:principal": D("1000.00"),
        "funding_payable:BANKA": D("-1000.00"),
        "loans_receivable:fee": D("0.98"),  # round_down(0.36 x 1,000.00 / 365)
        "fee_income": D("-0.98"),
        "loans_receivable:interest": D("0.00"),
        "interest_income": D("0.00"),
    }
    # 500.00 on 2026-03-08 pays 3.50 interest, 3.40 fee (the ceiling holds 1.60 back), then 493.10 principal
    after = on(date(2026, 3, 8))
    assert after["cash_in_transit:BANKA"] == D("500.00")
    assert after["interest_income"] == D("-3.50")
    assert after["fee_income"] == D("-3.40")
    assert after["loans_receivable:interest"] == D("0.00")
    assert after["loans_receivable:fee"] == D("0.00")
    assert after["loans_receivable:principal"] == D("506.90")
    later = on(date(2026, 3, 20))  # 7 nights at 0.25 more interest; 5 nights of penalty at 0.51
    assert later["interest_income"] == D("-3.50") - D("1.75")
    assert later["penalty_income"] == D("-0.51") * 5
    assert later["fee_income"] == D("-5.00") and later["loans_receivable:fee"] == D("1.60")  # under the ceiling again


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
