"""waived and refunded: what they do to a loan, what is refused, and how re-derivation treats them.

The rules themselves, through the real handlers and the Loan aggregate (no store): the ledger's
append path only adds persistence, which tests/test_one_truth.py covers end to end on both stores.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest
from support.commands import applied, approved, domain_example, refunded, repaid, waived

from domain.errors import IllegalTransition, InvalidCommand, RuleViolation
from domain.journal import MEMO, RECEIVABLE, WAIVER, balances_as_of, journal_lines
from ledger.commands import command_from_dict
from ledger.config import Settings
from ledger.handlers import handle

SETTINGS = Settings()


def build(*commands, settings=SETTINGS):
    loan = None
    for c in commands:
        loan = handle(loan, command_from_dict(c), settings)
    return loan


def refuse(loan, command, settings=SETTINGS):
    """The error a command gets; the loan is unchanged by it."""
    version = loan.version if loan is not None else None
    with pytest.raises((RuleViolation, IllegalTransition)) as e:
        handle(loan, command_from_dict(command), settings)
    assert loan is None or loan.version == version
    return str(e.value)


def reversal(target, key="X1"):
    return {
        "type": "reversed",
        "loan_id": "L1",
        "idempotency_key": key,
        "occurred_at": "2026-04-05T10:00:00+08:00",
        "reverses": target,
        "reason": "sent in error",
    }


# ---- refusals ----------------------------------------------------------------------------------
def test_neither_is_accepted_on_a_loan_that_is_not_funded():
    loan = build(applied(), approved())
    assert "is approved; cannot apply 'waived'" in refuse(loan, waived(component="fee"))
    assert "is approved; cannot apply 'refunded'" in refuse(loan, refunded())
    assert "no such loan has applied" in refuse(None, waived())


def test_a_waiver_above_what_the_component_owes_on_its_value_date_is_refused_naming_both():
    loan = build(*domain_example())
    # on the funding date the 5.00 fee is owed only up to the first night's ceiling, 0.98
    message = refuse(loan, waived(component="fee", amount="1.00", value_date="2026-03-01"))
    assert "amount 1.00 is more than the fee owed on 2026-03-01 (0.98)" in message and "loan L1" in message
    assert "penalty owed on 2026-03-10 (0.00)" in refuse(loan, waived(component="penalty", value_date="2026-03-10"))
    assert "before funding on 2026-03-01" in refuse(loan, waived(component="fee", value_date="2026-02-28"))
    build(*domain_example(), waived(component="fee", amount="0.98", value_date="2026-03-01"))  # all of it: fine


def test_every_waiver_needs_a_reason_principal_included():
    for component in ("principal", "fee"):
        command = waived(component=component)
        del command["reason"]
        with pytest.raises(InvalidCommand, match="reason: required field is missing"):
            command_from_dict(command)
    with pytest.raises(InvalidCommand, match="component"):
        command_from_dict(waived(component="everything"))


def test_a_refund_above_the_overpayment_held_on_its_value_date_is_refused():
    loan = build(*domain_example(), repaid(ref="R1", amount="1020.00", value_date="2026-03-15"))  # owed 1012.00
    assert loan.position(date(2026, 3, 15)).overpayment == D("8.00")
    assert "more than the overpayment held on 2026-03-14 (0.00)" in refuse(
        loan, refunded(amount="8.00", value_date="2026-03-14")
    )
    assert "more than the overpayment held on 2026-03-15 (8.00)" in refuse(
        loan, refunded(amount="8.01", value_date="2026-03-15")
    )
    build(*domain_example(), repaid(ref="R1", amount="1020.00", value_date="2026-03-15"), refunded(amount="8.00"))


def test_a_refund_that_would_leave_a_later_one_uncovered_is_refused_naming_that_one():
    loan = build(
        *domain_example(),
        repaid(ref="R1", amount="1020.00", value_date="2026-03-15"),
        refunded(ref="F1", amount="8.00", value_date="2026-03-20"),
    )
    message = refuse(loan, refunded(ref="F0", amount="5.00", value_date="2026-03-16"))
    assert (
        "refund 'F1' of 8.00 on 2026-03-20 would then be more than the overpayment held on that day (3.00)" in message
    )


def test_a_bank_ref_already_on_the_loan_is_refused_for_a_refund_and_for_a_repayment():
    loan = build(*domain_example(), repaid(ref="R1", amount="1020.00", value_date="2026-03-15"))
    assert "bank_ref 'R1' is already recorded on this loan" in refuse(loan, refunded(ref="R1", amount="1.00"))
    loan = build(*domain_example(), repaid(ref="R1", amount="1020.00", value_date="2026-03-15"), refunded(ref="F1"))
    clash = repaid(ref="R2", amount="1.00", bank_ref="F1")
    assert "bank_ref 'F1' is already recorded on this loan (key 'F1')" in refuse(loan, clash)


def test_reversing_the_repayment_whose_overpayment_was_refunded_names_the_refund_to_reverse_first():
    stream = [*domain_example(), repaid(ref="R1", amount="1020.00", value_date="2026-03-15"), refunded(ref="F1")]
    loan = build(*stream)
    message = refuse(loan, reversal("R1"))
    assert (
        "refund 'F1' of 1.00 on 2026-04-01 would then be more than the overpayment held on that day (0.00)" in message
    )
    assert "reverse that refund first" in message
    loan = build(*stream, reversal("F1", key="X1"), reversal("R1", key="X2"))  # in that order, both go
    assert loan.position(date(2026, 4, 1)).overpayment == 0 and loan.position(date(2026, 4, 1)).refunded == 0


# ---- effects -----------------------------------------------------------------------------------
def test_a_penalty_only_remainder_can_be_waived_and_the_loan_closes():
    """Issue 21: with penalty last in the order, 5.00 of penalty left the loan open for ever at DPD 0."""
    settings = Settings(allocation_orders={"payday": ("principal", "interest", "fee", "penalty")})
    paid = repaid(ref="R1", amount="1012.00", value_date="2026-03-20")  # principal, interest 7.00, fee 5.00
    loan = build(*domain_example(), paid, settings=settings)
    p = loan.position(date(2026, 6, 1))
    assert (p.outstanding.penalty, p.total, p.dpd) == (D("5.00"), D("5.00"), 0)
    assert loan.state_as_of(date(2026, 6, 1)) == "funded" and p.settled_on is None
    loan = build(*domain_example(), paid, waived(amount="5.00", value_date="2026-03-25"), settings=settings)
    p = loan.position(date(2026, 6, 1))
    assert p.total == 0 and p.settled_on == date(2026, 3, 25) and p.waived.penalty == D("5.00")
    assert loan.state_as_of(date(2026, 6, 1)) == "repaid" and loan.state_as_of(date(2026, 3, 24)) == "funded"
    # the book: the waived penalty is an expense, the receivable is gone
    b = balances_as_of(journal_lines(loan), date(2026, 6, 1))
    assert b[WAIVER] == D("5.00") and b[RECEIVABLE + "penalty"] == 0


def test_an_overpayment_is_paid_back_by_a_refund_out_of_the_banks_cash():
    loan = build(
        *domain_example(), repaid(ref="R1", amount="1020.00", value_date="2026-03-15"), refunded(amount="8.00")
    )
    p = loan.position(date(2026, 4, 1))
    assert (p.overpayment, p.refunded, p.total) == (D("0.00"), D("8.00"), D("0.00"))
    b = balances_as_of(journal_lines(loan), date(2026, 4, 1))
    assert b["cash_in_transit:BANKA"] == D("1012.00") and b["overpayments_owed"] == 0


def test_a_waiver_valued_after_a_backdated_repayment_takes_at_most_what_is_then_owed():
    """The rest of it simply does not apply: no money moves in a waiver, so none is owed back."""
    loan = build(*domain_example(), waived(component="fee", amount="3.00", value_date="2026-03-10"))
    assert loan.position(date(2026, 3, 10)).waived.fee == D("3.00")
    # a repayment valued 9 March arrives late and pays the fee as owed then: the ceiling (7.89 after 8
    # nights) less 4.00 of interest is 3.89
    late = repaid(ref="R1", amount="500.00", value_date="2026-03-09")
    loan = build(*domain_example(), waived(component="fee", amount="3.00", value_date="2026-03-10"), late)
    p = loan.position(date(2026, 3, 10))
    assert p.applied[0].allocation.paid.fee == D("3.89")
    # on 10 March the ceiling (8.39) lets 0.25 more of the fee be owed: the waiver takes that, no more
    assert (p.ceiling, p.waived.fee, p.outstanding.fee) == (D("8.39"), D("0.25"), D("0.00"))
    assert p.waivers[0].movement.amount == D("3.00")  # the waiver as recorded


def test_a_waiver_after_the_write_off_reduces_the_memo_of_what_is_still_owed_not_the_book():
    write_off = {
        "type": "written_off",
        "loan_id": "L1",
        "idempotency_key": "W",
        "occurred_at": "2026-06-14T23:59:59+08:00",
        "value_date": "2026-06-14",
    }
    forgiven = [
        waived(key=f"V-{part}", component=part, amount=amount, value_date="2026-07-01")
        for part, amount in (("principal", "1000.00"), ("interest", "7.00"), ("fee", "5.00"))
    ]
    loan = build(*domain_example(), write_off, *forgiven)
    b = balances_as_of(journal_lines(loan), date(2026, 7, 1))
    assert b[MEMO + "principal"] == 0 and b[MEMO + "penalty"] == D("91.00")
    assert WAIVER not in b and b["write_off_expense"] == D("1103.00")  # expensed once, at the write-off
    p = loan.position(date(2026, 7, 1))
    assert p.outstanding.principal == 0 and p.outstanding.penalty == D("91.00") and p.dpd == 0  # penalty alone
    assert loan.state_as_of(date(2026, 7, 1)) == "written_off"
