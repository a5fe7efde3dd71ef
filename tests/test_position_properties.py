"""Properties of the balance rules, against a literal night-by-night reading of the rules (docs/rules.md)."""

from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from domain.allocation import allocate
from domain.components import Components
from domain.position import MONEY_IN, Movement, position_as_of
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
    cost_cap=st.one_of(
        st.none(), st.sampled_from([D("0.24"), D("0.36")]), st.integers(1, 10_000).map(lambda n: D(n) / 10_000)
    ),
)
_KINDS = ["repayment", "repayment", "collection", "waiver", "refund"]
movements_st = st.lists(
    st.tuples(st.integers(0, 150), fen(1, 600_000), st.sampled_from(_KINDS), st.sampled_from(DEFAULT_ALLOCATION_ORDER)),
    max_size=6,
).map(
    lambda ms: [
        Movement(
            f"m{i}",
            FUNDED + timedelta(days=d),
            # waivers and refunds are usually small; a large one simply takes what there is
            a if kind in ("repayment", "collection") else (a % 5_000 + D("0.01")),
            kind=kind,
            seq=i,
            component=component if kind == "waiver" else None,
        )
        for i, (d, a, kind, component) in enumerate(ms)
    ]
)


def _half_up(x):
    return x.quantize(D("0.01"), rounding=ROUND_HALF_UP)


def reference(terms, movements, as_of, written_off_on=None):
    """Night by night, exactly as the rules word it. Slow and obvious on purpose.

    Returns (owed, overpayment, reduction): owed and reduction per component, capped.
    """
    cap = terms.cost_cap if terms.cost_cap is not None else D("0.36")
    due = terms.due_date(FUNDED)
    accrued = {"penalty": D(0), "interest": D(0), "fee": terms.fee}
    gone = {"penalty": D(0), "interest": D(0), "fee": D(0), "principal": D(0)}  # paid or waived
    overpayment = D(0)
    principal_days = terms.principal  # the first night counts once funded
    stopped_from = written_off_on if written_off_on is not None and written_off_on <= as_of else None

    def owed():
        cost = sum(accrued.values())
        ceiling = (cap * principal_days / 365).quantize(D("0.01"), rounding=ROUND_DOWN)
        reduction = max(D(0), cost - ceiling)
        uncapped = {part: accrued[part] - gone[part] for part in ("penalty", "interest", "fee")}
        cut = {}
        for part in ("penalty", "fee", "interest"):
            cut[part] = min(reduction, uncapped[part])
            reduction -= cut[part]
        return {
            **{part: uncapped[part] - cut[part] for part in uncapped},
            "principal": terms.principal - gone["principal"],
        }, cut

    day = FUNDED
    ordered = sorted(movements, key=lambda m: (m.value_date, m.seq))
    while day <= as_of:
        for m in (m for m in ordered if m.value_date == day):
            now, _ = owed()
            if m.kind == "waiver":
                gone[m.component] += min(m.amount, now[m.component])
            elif m.kind == "refund":
                overpayment -= m.amount
            else:
                left = m.amount
                for part in terms.allocation_order:
                    take = min(left, now[part])
                    gone[part] += take
                    left -= take
                overpayment += left
        if day == as_of:
            break
        if stopped_from is None or day < stopped_from:
            principal = terms.principal - gone["principal"]
            if day < due:
                accrued["interest"] += _half_up(principal * terms.daily_rate)
            if day >= due + timedelta(days=terms.grace_days):
                accrued["penalty"] += _half_up(principal * terms.penalty_daily_rate)
            if day > FUNDED:
                principal_days += principal
        day += timedelta(days=1)
    now, cut = owed()
    return Components(**now), overpayment, Components(**cut)


@given(terms_st, movements_st, st.integers(0, 200), st.one_of(st.none(), st.integers(0, 200)))
def test_position_equals_the_night_by_night_reading(terms, movements, as_of_days, wo_days):
    as_of = FUNDED + timedelta(days=as_of_days)
    written_off_on = None if wo_days is None else FUNDED + timedelta(days=wo_days)
    p = position_as_of(terms, FUNDED, movements, as_of, written_off_on)
    outstanding, overpayment, capped = reference(terms, movements, as_of, written_off_on)
    assert p.outstanding == outstanding
    assert p.overpayment == overpayment
    assert p.capped == capped


@given(terms_st, movements_st, st.integers(0, 200), st.one_of(st.none(), st.integers(0, 200)))
def test_balances_are_never_negative_money_is_conserved_and_cost_stays_under_the_ceiling(
    terms, movements, as_of_days, wo_days
):
    as_of = FUNDED + timedelta(days=as_of_days)
    written_off_on = None if wo_days is None else FUNDED + timedelta(days=wo_days)
    p = position_as_of(terms, FUNDED, movements, as_of, written_off_on)
    assert all(v >= 0 for v in p.outstanding.as_dict().values())
    assert all(v >= 0 for v in p.capped.as_dict().values()) and p.capped.principal == 0
    # the overpayment held goes below zero only by a refund larger than it (the ledger refuses those)
    assert p.overpayment >= 0 or p.uncovered_refunds
    received = sum((m.amount for m in movements if m.value_date <= as_of and m.kind in MONEY_IN), D(0))
    # what came in = what it paid + what is held for the borrower + what was paid back out
    assert received == p.paid.total + p.overpayment + p.refunded
    # what is owed = what was booked and accrued - the ceiling's reduction - what was paid or waived
    assert p.outstanding == p.accrued - p.capped - p.paid - p.waived
    # what the borrower is asked to pay (and has paid) never passes the ceiling
    recognised = p.accrued.interest + p.accrued.fee + p.accrued.penalty - p.capped.total
    assert recognised <= p.ceiling or p.capped.total == 0
    assert recognised == min(p.accrued.interest + p.accrued.fee + p.accrued.penalty, p.ceiling)
    cost_settled = p.paid.total - p.paid.principal + p.waived.total - p.waived.principal
    assert cost_settled <= recognised


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
