"""Properties of the balance rules, against a literal day-by-day reading of DOMAIN.md."""

from datetime import date, timedelta
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from domain.allocation import allocate
from domain.components import Components
from domain.position import Movement, position_as_of
from domain.terms import DEFAULT_ALLOCATION_ORDER, Terms

FUNDED = date(2026, 3, 1)
fen = lambda lo, hi: st.integers(lo, hi).map(lambda n: D(n) / 100)  # noqa: E731

terms_st = st.builds(
    Terms,
    principal=fen(50_000, 500_000),
    term_days=st.integers(7, 30),
    daily_rate=st.integers(0, 100).map(lambda n: D(n) / 100_000),
    fee=fen(0, 5_000),
    penalty_daily_rate=st.integers(0, 200).map(lambda n: D(n) / 100_000),
    grace_days=st.integers(0, 5),
    allocation_order=st.permutations(DEFAULT_ALLOCATION_ORDER).map(tuple),
)
movements_st = st.lists(st.tuples(st.integers(0, 150), fen(1, 600_000)), max_size=6).map(
    lambda ms: [Movement(f"m{i}", FUNDED + timedelta(days=d), a, seq=i) for i, (d, a) in enumerate(ms)]
)


def _half_up(x):
    return x.quantize(D("0.01"), rounding=ROUND_HALF_UP)


def reference(terms, movements, as_of, written_off_on=None):
    """Night by night, exactly as DOMAIN.md words it. Slow and obvious on purpose."""
    due = terms.due_date(FUNDED)
    owed = {"penalty": D(0), "interest": D(0), "fee": terms.fee, "principal": terms.principal}
    overpayment = D(0)
    day = FUNDED
    ordered = sorted(movements, key=lambda m: (m.value_date, m.seq))
    while day <= as_of:
        for m in (m for m in ordered if m.value_date == day):
            left = m.amount
            for part in terms.allocation_order:
                take = min(left, owed[part])
                owed[part] -= take
                left -= take
            overpayment += left
        if day == as_of:
            break
        stopped = written_off_on is not None and written_off_on <= as_of and day >= written_off_on
        if not stopped:
            if day < due:
                owed["interest"] += _half_up(owed["principal"] * terms.daily_rate)
            if day >= due + timedelta(days=terms.grace_days):
                owed["penalty"] += _half_up(owed["principal"] * terms.penalty_daily_rate)
        day += timedelta(days=1)
    return Components(**owed), overpayment


@given(terms_st, movements_st, st.integers(0, 200), st.one_of(st.none(), st.integers(0, 200)))
def test_position_equals_the_night_by_night_reading(terms, movements, as_of_days, wo_days):
    as_of = FUNDED + timedelta(days=as_of_days)
    written_off_on = None if wo_days is None else FUNDED + timedelta(days=wo_days)
    p = position_as_of(terms, FUNDED, movements, as_of, written_off_on)
    outstanding, overpayment = reference(terms, movements, as_of, written_off_on)
    assert p.outstanding == outstanding
    assert p.overpayment == overpayment


@given(terms_st, movements_st, st.integers(0, 200))
def test_balances_are_never_negative_and_money_is_conserved(terms, movements, as_of_days):
    as_of = FUNDED + timedelta(days=as_of_days)
    p = position_as_of(terms, FUNDED, movements, as_of)
    assert all(v >= 0 for v in p.outstanding.as_dict().values()) and p.overpayment >= 0
    received = sum((m.amount for m in movements if m.value_date <= as_of), D(0))
    # what came in = what it paid + what is held for the borrower
    assert received == p.paid.total + p.overpayment
    # what is owed = what was booked and accrued - what was paid
    assert p.outstanding == p.accrued - p.paid


@given(terms_st, movements_st, st.integers(0, 200), st.randoms())
def test_arrival_order_does_not_matter_only_value_dates_do(terms, movements, as_of_days, rnd):
    """A backdated callback re-derives everything after its value date."""
    as_of = FUNDED + timedelta(days=as_of_days)
    shuffled = movements[:]
    rnd.shuffle(shuffled)
    assert position_as_of(terms, FUNDED, shuffled, as_of) == position_as_of(terms, FUNDED, movements, as_of)


@given(
    fen(0, 1_000_000),
    st.builds(
        Components, penalty=fen(0, 10_000), interest=fen(0, 10_000), fee=fen(0, 10_000), principal=fen(0, 500_000)
    ),
    st.permutations(DEFAULT_ALLOCATION_ORDER).map(tuple),
)
def test_allocation_pays_in_order_and_conserves_money(amount, owed, order):
    a = allocate(amount, owed, order)
    assert a.paid.total + a.overpayment == amount
    for i, part in enumerate(order):
        assert 0 <= a.paid.get(part) <= owed.get(part)
        if a.paid.get(part) < owed.get(part):  # nothing later in the order is paid before this is
            assert all(a.paid.get(later) == 0 for later in order[i + 1 :]) and a.overpayment == 0
