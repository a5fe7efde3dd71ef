"""A funded loan's position as of a value date, re-derived from its facts.

Facts (repayments, collections, waivers, refunds) are taken in value-date order
(then in the order the ledger recorded them), so a backdated one re-derives
every allocation after it. Nothing here is stored: the same facts always give
the same position.

The walk goes from fact to fact (and the due date, the end of grace, the
write-off): between two of them every parameter is constant, so accrual,
principal-days and the cost ceiling (domain/ceiling.py) are products, never
loops over nights. Money is integer fen inside the walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from domain.accrual import AccrualRun, per_night_fen
from domain.allocation import Allocation, allocate_fen
from domain.ceiling import LEGACY_COST_CAP, CapFraction, CeilingSegment, split_reduction
from domain.components import Components
from domain.delinquency import bucket, days_past_due
from domain.errors import BrokenInvariant
from domain.money import ZERO
from domain.terms import Terms

MONEY_IN = frozenset({"repayment", "collection"})  # money from the borrower
KINDS = MONEY_IN | {"waiver", "refund"}
_ONE_NIGHT = timedelta(days=1)


@dataclass(frozen=True)
class Movement:
    """A fact that changes what is owed or held: money in, a waiver, or a refund paid out."""

    key: str
    value_date: date
    amount: Decimal
    kind: str = "repayment"  # repayment | collection | waiver | refund
    seq: int = 0  # the ledger's recording order, breaks ties on one value date
    component: str | None = None  # a waiver's component


@dataclass(frozen=True)
class AppliedMovement:
    movement: Movement
    allocation: Allocation
    after_write_off: bool


@dataclass(frozen=True)
class AppliedWaiver:
    movement: Movement
    amount: Decimal  # what it forgave: at most what the component owed then; the rest does not apply
    after_write_off: bool


@dataclass(frozen=True)
class AppliedRefund:
    movement: Movement
    held: Decimal  # the overpayment held just before it
    after_write_off: bool

    @property
    def covered(self) -> bool:
        return self.movement.amount <= self.held


@dataclass(frozen=True)
class Position:
    as_of: date
    due_date: date
    outstanding: Components  # what is owed: contractual, less the cost ceiling's reduction, paid and waived
    overpayment: Decimal  # held for the borrower: excess received less refunds paid out
    accrued: Components  # interest and penalty accrued so far, fee and principal as booked (contractual)
    paid: Components
    applied: tuple[AppliedMovement, ...] = field(default=())
    settled_on: date | None = None
    written_off: Components | None = None  # what was written off, when it was
    accrual_runs: tuple[AccrualRun, ...] = field(default=())
    capped: Components = field(default_factory=Components)  # the ceiling's reduction per component
    ceiling: Decimal = ZERO  # round_down(cap x principal-days / 365)
    principal_days: Decimal = ZERO  # CNY-nights
    cost_cap: Decimal = LEGACY_COST_CAP
    waived: Components = field(default_factory=Components)
    refunded: Decimal = ZERO
    waivers: tuple[AppliedWaiver, ...] = field(default=())
    refunds: tuple[AppliedRefund, ...] = field(default=())
    segments: tuple[CeilingSegment, ...] = field(default=())  # as-of dates from funding to ``as_of``

    @property
    def total(self) -> Decimal:
        return self.outstanding.total

    @property
    def dpd(self) -> int:
        o = self.outstanding
        unpaid_due = (o.principal + o.interest + o.fee) > 0
        return days_past_due(self.as_of, self.due_date, unpaid_due)

    @property
    def bucket(self) -> str:
        return bucket(self.dpd)

    @property
    def uncovered_refunds(self) -> tuple[AppliedRefund, ...]:
        return tuple(r for r in self.refunds if not r.covered)


@lru_cache(maxsize=64)  # a deployment has a few caps; the rebuild derives a position per money event
def _fraction(cap: Decimal) -> CapFraction:
    return CapFraction.of(cap)


@dataclass(slots=True)
class _Run:
    """An accrual run while the walk may still extend it (AccrualRun once it is done)."""

    component: str
    start: date
    end: date
    fen: int


def cost_cap_of(terms: Terms) -> Decimal:
    """The cap the loan was approved under (0.36 for loans approved before it was recorded)."""
    return LEGACY_COST_CAP if terms.cost_cap is None else terms.cost_cap


def _fen(amount: Decimal) -> int:
    hundredfold = amount.scaleb(2)
    fen = int(hundredfold)
    if fen != hundredfold:
        raise BrokenInvariant(f"{amount} is not a whole number of fen")
    return fen


_CENT = Decimal("0.01")
_NOTHING = Components()  # (frozen: one instance serves every position with nothing in a slot)


def _cny(fen: int) -> Decimal:
    return fen * _CENT  # exact: an int times 0.01 is that many fen, two places (a third the cost of scaleb)


_segment = tuple.__new__  # a NamedTuple's own __new__ is a Python function: slower, once per stretch


def position_as_of(
    terms: Terms,
    funded_on: date,
    movements: list[Movement] | tuple[Movement, ...],
    as_of: date,
    written_off_on: date | None = None,
) -> Position:
    """Balances at the end of ``as_of``: facts valued on or before it, accrual for nights before it.

    A write-off on W takes what is owed at the end of W (after W's own facts);
    accrual and principal-days stop from night W; money valued after W is recovery.
    """
    stop_on = written_off_on if written_off_on is not None and written_off_on <= as_of else None
    due = terms.due_date(funded_on)
    penalty_from = due + timedelta(days=terms.grace_days)
    cap = cost_cap_of(terms)
    fraction = _fraction(cap)
    numerator, divisor = fraction.numerator, fraction.divisor
    rate, penalty_rate, order = terms.daily_rate, terms.penalty_daily_rate, terms.allocation_order
    principal_funded, fee = _fen(terms.principal), _fen(terms.fee)

    # Uncapped figures in fen. ``principal_days`` is PD(cursor): the first night counts in full at once.
    accrued_interest = accrued_penalty = 0
    paid = dict.fromkeys(("penalty", "interest", "fee", "principal"), 0)
    waived = dict.fromkeys(("penalty", "interest", "fee", "principal"), 0)
    overpayment = refunded = 0
    principal_days = principal_funded

    ordered = sorted(movements, key=lambda m: (m.value_date, m.seq))
    if ordered and ordered[0].value_date < funded_on:
        raise BrokenInvariant(f"{ordered[0].key} is valued {ordered[0].value_date}, before funding on {funded_on}")
    applied: list[AppliedMovement] = []
    waivers: list[AppliedWaiver] = []
    refunds: list[AppliedRefund] = []
    segments: list[CeilingSegment] = []
    settled_on: date | None = None
    written_off: Components | None = None

    def owed() -> tuple[dict[str, int], tuple[int, int, int]]:
        """What is owed now (capped) and the reduction (penalty, fee, interest)."""
        cost = accrued_interest + accrued_penalty + fee
        ceiling = numerator * principal_days // divisor
        penalty = accrued_penalty - paid["penalty"] - waived["penalty"]
        fee_owed = fee - paid["fee"] - waived["fee"]
        reduction = split_reduction(cost - ceiling if cost > ceiling else 0, penalty, fee_owed)
        return {
            "penalty": penalty - reduction[0],
            "interest": accrued_interest - paid["interest"] - waived["interest"] - reduction[2],
            "fee": fee_owed - reduction[1],
            "principal": principal_funded - paid["principal"] - waived["principal"],
        }, reduction

    def components(amounts: dict[str, int]) -> Components:
        penalty, interest, fee_part, principal = (
            amounts["penalty"],
            amounts["interest"],
            amounts["fee"],
            amounts["principal"],
        )
        if not (penalty or interest or fee_part or principal):
            return _NOTHING
        return Components(_cny(penalty), _cny(interest), _cny(fee_part), _cny(principal))

    i, count = 0, len(ordered)

    def apply_facts_on(day: date) -> None:
        nonlocal i, overpayment, refunded, settled_on
        while i < count and ordered[i].value_date == day:
            m = ordered[i]
            i += 1
            after = stop_on is not None and day > stop_on
            if m.kind in MONEY_IN:
                now, _ = owed()
                taken, excess = allocate_fen(_fen(m.amount), now, order)
                for name, amount in taken.items():
                    paid[name] += amount
                overpayment += excess
                applied.append(AppliedMovement(m, Allocation(components(taken), _cny(excess)), after))
            elif m.kind == "waiver":
                if m.component not in paid:
                    raise BrokenInvariant(f"waiver {m.key} names no component ({m.component!r})")
                now, _ = owed()
                take = min(_fen(m.amount), now[m.component])
                waived[m.component] += take
                waivers.append(AppliedWaiver(m, _cny(take), after))
            elif m.kind == "refund":
                refunds.append(AppliedRefund(m, _cny(overpayment), after))
                overpayment -= _fen(m.amount)
                refunded += _fen(m.amount)
                continue
            else:
                raise BrokenInvariant(f"{m.key} is of no known kind ({m.kind!r})")
            # (while principal is owed the loan is not settled: no need to work out the rest)
            no_principal = paid["principal"] + waived["principal"] == principal_funded
            if settled_on is None and no_principal and sum(owed()[0].values()) == 0:
                settled_on = day

    last_run: dict[str, _Run] = {}  # component -> its latest run
    run_rows: list[_Run] = []

    def add_run(component: str, start: date, end: date, per_night: int) -> None:
        """A run of nights; one that continues the component's latest at the same rate extends it."""
        run = last_run.get(component)
        if run is not None and run.end == start and run.fen == per_night:
            run.end = end
        else:
            run = last_run[component] = _Run(component, start, end, per_night)
            run_rows.append(run)

    apply_facts_on(funded_on)
    if stop_on == funded_on:
        written_off = components(owed()[0])
    marks = {funded_on + _ONE_NIGHT, due, penalty_from, as_of}
    if stop_on is not None:
        marks.add(stop_on)
    for m in ordered:
        marks.add(m.value_date)
    nightly: dict[tuple[int, bool], int] = {}  # (principal, penalty?) -> one night's accrual: few principals a loan
    cursor = funded_on
    for bound in sorted([b for b in marks if funded_on < b <= as_of]):
        nights = (bound - cursor).days
        principal = principal_funded - paid["principal"] - waived["principal"]
        interest_night = penalty_night = principal_night = 0
        if (stop_on is None or cursor < stop_on) and principal:
            if cursor < due:
                interest_night = nightly.get((principal, False), -1)
                if interest_night < 0:
                    interest_night = nightly[principal, False] = per_night_fen(principal, rate)
            if cursor >= penalty_from:
                penalty_night = nightly.get((principal, True), -1)
                if penalty_night < 0:
                    penalty_night = nightly[principal, True] = per_night_fen(principal, penalty_rate)
            if cursor > funded_on:
                principal_night = principal
        segments.append(
            _segment(  # CeilingSegment's fields, in order
                CeilingSegment,
                (
                    cursor,
                    bound,
                    accrued_interest + accrued_penalty + fee,
                    interest_night + penalty_night,
                    numerator * principal_days,
                    numerator * principal_night,
                    accrued_penalty - paid["penalty"] - waived["penalty"],
                    penalty_night,
                    fee - paid["fee"] - waived["fee"],
                    divisor,
                ),
            )
        )
        if interest_night:
            add_run("interest", cursor, bound, interest_night)
            accrued_interest += interest_night * nights
        if penalty_night:
            add_run("penalty", cursor, bound, penalty_night)
            accrued_penalty += penalty_night * nights
        principal_days += principal_night * nights
        cursor = bound
        apply_facts_on(bound)
        if bound == stop_on:
            written_off = components(owed()[0])

    now, reduction = owed()
    if min(now.values()) < 0:  # never negative: paid and waived stay within what the ceiling lets be owed
        raise BrokenInvariant(f"negative balance {now} as of {as_of}")
    return Position(
        as_of=as_of,
        due_date=due,
        outstanding=components(now),
        overpayment=_cny(overpayment),
        accrued=Components(_cny(accrued_penalty), _cny(accrued_interest), terms.fee, terms.principal),
        paid=components(paid),
        applied=tuple(applied),
        settled_on=settled_on,
        written_off=written_off,
        accrual_runs=tuple(AccrualRun(r.component, r.start, r.end, _cny(r.fen)) for r in run_rows),
        capped=Components(_cny(reduction[0]), _cny(reduction[2]), _cny(reduction[1])) if any(reduction) else _NOTHING,
        ceiling=_cny(fraction.ceiling(principal_days)),
        principal_days=_cny(principal_days),
        cost_cap=cap,
        waived=components(waived),
        refunded=_cny(refunded),
        waivers=tuple(waivers),
        refunds=tuple(refunds),
        segments=tuple(segments),
    )
