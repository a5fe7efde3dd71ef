"""The rules' worked examples (docs/rules.md), to the fen."""

from datetime import date, timedelta
from decimal import Decimal as D

import pytest

from domain.ceiling import split_reduction
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


def test_partial_repayment_pays_interest_then_the_fee_within_the_ceiling_then_principal():
    # 7 nights: principal-days 7,000.00, ceiling round_down(0.36 x 7,000.00 / 365) = 6.90 < 3.50 + 5.00
    p = position_as_of(TERMS, FUNDED, [Movement("r", date(2026, 3, 8), D("500.00"))], date(2026, 3, 8))
    paid = p.applied[0].allocation.paid
    assert (paid.penalty, paid.interest, paid.fee, paid.principal) == (D("0"), D("3.50"), D("3.40"), D("493.10"))
    assert (p.principal_days, p.ceiling, p.capped.fee) == (D("7000.00"), D("6.90"), D("1.60"))
    assert p.outstanding.principal == D("506.90") and p.total == D("506.90")


def test_after_the_partial_repayment_interest_is_0_25_a_night_and_the_held_back_fee_comes_due():
    # 506.90 x 0.0005 = 0.25345, rounded half-up per night; by the due date the ceiling is 10.40 >= 10.25
    p = position_as_of(TERMS, FUNDED, [Movement("r", date(2026, 3, 8), D("500.00"))], date(2026, 3, 15))
    assert p.outstanding.interest == D("0.25") * 7
    assert (p.outstanding.fee, p.capped.total, p.ceiling) == (D("1.60"), D("0.00"), D("10.40"))


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


# ---- the cost ceiling (docs/rules.md, "The cost ceiling") ------------------------------------------------
def test_under_a_24_percent_cap_rounding_cannot_pass_the_cap():
    """Issue 21: 500.00, 30 days at 0.000657 (23.98%) accrued 9.90 by the due date, 24.09%."""
    terms = Terms(D("500.00"), 30, D("0.000657"), D("0"), D("0.001"), cost_cap=D("0.24"))
    assert annualised_cost_rate(terms).quantize(D("0.0001")) == D("0.2398")
    p = position_as_of(terms, FUNDED, [], terms.due_date(FUNDED))
    assert p.accrued.interest == D("9.90")  # 0.33 a night: 0.3285 rounded up
    assert (p.principal_days, p.ceiling) == (D("15000.00"), D("9.86"))
    assert (p.outstanding.interest, p.capped.interest) == (D("9.86"), D("0.04"))


def test_under_a_24_percent_cap_a_fee_cannot_pass_the_cap_either():
    """Issue 21: 0.00001 a day and a 9.71 fee ask 10.01 by the due date: 24.36% a year."""
    terms = Terms(D("500.00"), 30, D("0.00001"), D("9.71"), D("0.001"), cost_cap=D("0.24"))
    p = position_as_of(terms, FUNDED, [], terms.due_date(FUNDED))
    assert p.accrued.interest + p.accrued.fee == D("10.01")
    assert (p.outstanding.interest, p.outstanding.fee, p.capped.fee) == (D("0.30"), D("9.56"), D("0.15"))


def test_early_payoff_pays_the_cost_of_the_nights_used_not_the_whole_flat_fee():
    """Issue 21: 1,000.00 for 30 days with a 10.00 fee repaid the next day paid 1,010.50 (383% a year)."""
    terms = Terms(D("1000.00"), 30, D("0.0005"), D("10.00"), D("0.001"))  # approved before caps were recorded
    next_day = date(2026, 3, 2)
    owed = position_as_of(terms, FUNDED, [], next_day)
    assert owed.total == D("1000.98") and owed.ceiling == D("0.98") and owed.cost_cap == D("0.36")
    p = position_as_of(terms, FUNDED, [Movement("r", next_day, D("1000.98"))], date(2026, 6, 1))
    paid = p.applied[0].allocation.paid
    assert (paid.interest, paid.fee, paid.principal) == (D("0.50"), D("0.48"), D("1000.00"))
    assert p.total == 0 and p.overpayment == 0 and p.settled_on == next_day  # and it stays settled


def test_the_first_night_counts_even_when_the_money_comes_back_the_same_day():
    p = position_as_of(TERMS, FUNDED, [Movement("r", FUNDED, D("1000.98"))], date(2026, 4, 1))
    assert p.applied[0].allocation.paid.fee == D("0.98") and p.total == 0 and p.overpayment == 0


def test_a_penalty_rate_far_above_the_cap_is_held_to_the_ceiling():
    """Issue 21: a penalty of 0.1 a day under a 24% cap owed thousands 30 days late."""
    terms = Terms(D("1000.00"), 14, D("0.0003"), D("5.00"), D("0.1"), cost_cap=D("0.24"))
    p = position_as_of(terms, FUNDED, [], terms.due_date(FUNDED) + timedelta(days=30))
    assert p.accrued.penalty == D("3000.00") and p.dpd == 30
    assert (p.principal_days, p.ceiling) == (D("44000.00"), D("28.93"))
    assert (p.outstanding.interest, p.outstanding.fee, p.outstanding.penalty) == (D("4.20"), D("5.00"), D("19.73"))
    assert p.capped.penalty == D("2980.27")


def test_the_reduction_comes_off_penalty_then_fee_then_interest():
    assert split_reduction(150, penalty_owed=100, fee_owed=30) == (100, 30, 20)
    assert split_reduction(120, penalty_owed=100, fee_owed=30) == (100, 20, 0)
    assert split_reduction(40, penalty_owed=100, fee_owed=30) == (40, 0, 0)
    assert split_reduction(0, penalty_owed=100, fee_owed=30) == (0, 0, 0)


def test_the_running_example_as_of_its_dates():
    """docs/rules.md's EX1 table, the domain alone (tests/test_rules_doc.py checks it through the CLI)."""
    paid = [Movement("r", date(2026, 3, 8), D("500.00"))]
    written_off_on = date(2026, 6, 14)
    expected = {  # principal, interest, fee, penalty, capped, total, dpd
        date(2026, 3, 1): ("1000.00", "0.00", "0.98", "0.00", "4.02", "1000.98", 0),
        date(2026, 3, 8): ("506.90", "0.00", "0.00", "0.00", "1.60", "506.90", 0),
        date(2026, 3, 15): ("506.90", "1.75", "1.60", "0.00", "0.00", "510.25", 0),
        date(2026, 3, 20): ("506.90", "1.75", "1.60", "2.55", "0.00", "512.80", 5),
        date(2026, 4, 10): ("506.90", "1.75", "1.60", "13.15", "0.11", "523.40", 26),
        date(2026, 6, 14): ("506.90", "1.75", "1.60", "45.64", "0.77", "555.89", 91),
        date(2026, 6, 20): ("506.90", "1.75", "1.60", "45.64", "0.77", "555.89", 97),
    }
    for day, row in expected.items():
        p = position_as_of(TERMS, FUNDED, paid, day, written_off_on)
        o = p.outstanding
        got = (o.principal, o.interest, o.fee, o.penalty, p.capped.total, p.total)
        assert tuple(map(str, got)) + (p.dpd,) == row, day
    p = position_as_of(TERMS, FUNDED, paid, date(2026, 4, 10))
    assert (p.principal_days, p.ceiling) == (D("23727.70"), D("23.40"))
