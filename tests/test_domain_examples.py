"""DOMAIN.md's worked examples, to the fen."""

from datetime import date
from decimal import Decimal as D

import pytest

from domain.errors import CostCapExceeded
from domain.position import Movement, position_as_of
from domain.terms import Terms, annualised_cost_rate, check_cost_cap

TERMS = Terms(
    principal=D("1000.00"), term_days=14, daily_rate=D("0.0005"), fee=D("5.00"), penalty_daily_rate=D("0.001")
)
FUNDED = date(2026, 3, 1)


def test_annualised_cost_of_the_example_is_31_3_percent_and_under_the_cap():
    assert annualised_cost_rate(TERMS).quantize(D("0.001")) == D("0.313")
    check_cost_cap(TERMS, D("0.36"))


def test_the_example_is_over_a_24_percent_cap_and_the_error_names_the_rate():
    with pytest.raises(CostCapExceeded, match=r"31\.2857% exceeds the cap of 24\.00%"):
        check_cost_cap(TERMS, D("0.24"))


def test_due_date_is_funding_plus_term():
    assert TERMS.due_date(FUNDED) == date(2026, 3, 15)


def test_full_payoff_on_the_due_date_is_1012():
    p = position_as_of(TERMS, FUNDED, [], date(2026, 3, 15))
    assert (p.outstanding.principal, p.outstanding.interest, p.outstanding.fee) == (D("1000.00"), D("7.00"), D("5.00"))
    assert p.total == D("1012.00") and p.dpd == 0


def test_paying_1012_on_the_due_date_closes_the_loan():
    p = position_as_of(TERMS, FUNDED, [Movement("r", date(2026, 3, 15), D("1012.00"))], date(2026, 4, 30))
    assert p.total == 0 and p.overpayment == 0 and p.dpd == 0 and p.settled_on == date(2026, 3, 15)


def test_five_days_late_owes_1017_with_5_penalty_dpd_5_bucket_m1():
    p = position_as_of(TERMS, FUNDED, [], date(2026, 3, 20))
    assert p.outstanding.interest == D("7.00")
    assert p.outstanding.penalty == D("5.00")
    assert p.total == D("1017.00")
    assert (p.dpd, p.bucket) == (5, "M1")


def test_partial_repayment_pays_interest_then_fee_then_principal():
    p = position_as_of(TERMS, FUNDED, [Movement("r", date(2026, 3, 8), D("500.00"))], date(2026, 3, 8))
    paid = p.applied[0].allocation.paid
    assert (paid.penalty, paid.interest, paid.fee, paid.principal) == (D("0"), D("3.50"), D("5.00"), D("491.50"))
    assert p.outstanding.principal == D("508.50")


def test_after_the_partial_repayment_interest_is_0_25_a_night():
    # 508.50 x 0.0005 = 0.25425, rounded half-up per night
    p = position_as_of(TERMS, FUNDED, [Movement("r", date(2026, 3, 8), D("500.00"))], date(2026, 3, 15))
    assert p.outstanding.interest == D("0.25") * 7


def test_excess_is_held_as_overpayment_not_dropped():
    p = position_as_of(TERMS, FUNDED, [Movement("r", date(2026, 3, 15), D("1100.00"))], date(2026, 3, 20))
    assert p.total == 0 and p.overpayment == D("88.00")


def test_grace_days_delay_penalty_but_not_dpd():
    terms = Terms(**{**TERMS.__dict__, "grace_days": 3})
    p = position_as_of(terms, FUNDED, [], date(2026, 3, 20))
    assert p.outstanding.penalty == D("2.00")  # nights 18 and 19 only
    assert p.dpd == 5


def test_write_off_freezes_the_debt_and_later_money_is_recovery():
    written_off_on = date(2026, 6, 14)
    p = position_as_of(
        TERMS,
        FUNDED,
        [Movement("c", date(2026, 7, 1), D("100.00"), kind="collection")],
        date(2026, 8, 1),
        written_off_on=written_off_on,
    )
    assert p.written_off is not None
    assert p.written_off.penalty == D("1.00") * (written_off_on - date(2026, 3, 15)).days
    assert p.applied[0].after_write_off
    assert p.outstanding.total == p.written_off.total - D("100.00")


@pytest.mark.parametrize(
    "dpd,bucket", [(0, "current"), (1, "M1"), (30, "M1"), (31, "M2"), (60, "M2"), (61, "M3"), (90, "M3"), (91, "M3+")]
)
def test_bucket_boundaries(dpd, bucket):
    from domain.delinquency import bucket as bucket_of

    assert bucket_of(dpd) == bucket
