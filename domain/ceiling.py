"""The cost ceiling: what a borrower is asked to pay never exceeds the cap over the money's real use.

Rules (docs/rules.md, "The cost ceiling"), all in integer fen:
- principal-days PD(X): the principal outstanding summed over the nights funded_on <= d < X
  (stopping at a write-off), the first night counted once funded, in full;
- the ceiling L(X) = floor(cap x PD(X) / 365), with the cap the loan was approved under;
- the reduction R(X) = max(0, C(X) - L(X)), C the contractual cost (interest + fee + penalty
  accrued), taken off what is owed uncapped: penalty first, then fee, then interest.

Between two facts every quantity is linear in the night number n, except L, which is the floor of
a linear function. Each boundary between regimes ("capped or not", "which component absorbs the
reduction") is then a linear inequality in n once the floor is cleared (for an integer m,
floor(y) < m <=> y < m), so a segment of constant parameters splits into at most four pieces,
each exactly "level + per_night x m - floor part": the journal posts it as a handful of lines,
never a line per night.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

# A loan approved before the cap was recorded on its terms is held to 0.36, the cap that was in
# force whenever no setting was given (docs/decisions.md).
LEGACY_COST_CAP = Decimal("0.36")
DAYS_IN_YEAR = 365
# Fen take 2 places; a cap takes at most this many, so its fraction keeps the journal's integer
# arithmetic inside 64 bits on both stores (docs/decisions.md).
CAP_PLACES_MAX = 6
REDUCED = ("penalty", "fee", "interest")  # the order the reduction comes off


class CeilingOverflow(ArithmeticError):
    """A ceiling figure would not fit the journal's 64-bit integer columns: a cap with too many places."""


@dataclass(frozen=True, slots=True)
class CapFraction:
    """The cap as an exact fraction: L = floor(numerator x PD / divisor), PD in fen-nights."""

    numerator: int
    divisor: int  # the cap's denominator x 365

    @classmethod
    def of(cls, cap: Decimal) -> CapFraction:
        numerator, denominator = cap.as_integer_ratio()
        return cls(numerator, denominator * DAYS_IN_YEAR)

    def ceiling(self, principal_days_fen: int) -> int:
        return self.numerator * principal_days_fen // self.divisor


def split_reduction(reduction: int, penalty_owed: int, fee_owed: int) -> tuple[int, int, int]:
    """(penalty, fee, interest) parts of the reduction: penalty first, then fee, then interest."""
    penalty = reduction if reduction < penalty_owed else penalty_owed
    rest = reduction - penalty
    fee = rest if rest < fee_owed else fee_owed
    return penalty, fee, rest - fee


@dataclass(frozen=True, slots=True)
class CeilingSegment:
    """The as-of dates start <= X < end over which every parameter is linear in n = X - start.

    Values are uncapped, in fen, at the start (after the facts valued on it): the contractual
    cost C, numerator x PD, the penalty and fee owed. The interest part needs no figure of its
    own: it is whatever of the reduction penalty and fee do not absorb.
    """

    start: date
    end: date
    cost: int
    cost_per_night: int
    numerator: int  # cap numerator x principal-days (fen)
    numerator_per_night: int
    penalty: int
    penalty_per_night: int
    fee: int
    divisor: int

    def reduction_at(self, n: int) -> tuple[int, int, int]:
        """(penalty, fee, interest) reduction as of start + n nights: the rule itself, for checks."""
        cost = self.cost + self.cost_per_night * n
        ceiling = (self.numerator + self.numerator_per_night * n) // self.divisor
        return split_reduction(max(0, cost - ceiling), self.penalty + self.penalty_per_night * n, self.fee)


@dataclass(frozen=True, slots=True)
class ReductionPiece:
    """One component's reduction over start <= X < end, with m = (X - start):

    ``level + per_night x m - (floor((offset + floor_per_night x m) / divisor) - floor(offset / divisor))``
    (the floor part only when ``floored``). At ``end`` the next piece takes over.
    """

    component: str
    start: date
    end: date
    level: int
    per_night: int
    floored: bool
    offset: int
    floor_per_night: int
    divisor: int

    def at(self, day: date) -> int:
        m = (min(day, self.end) - self.start).days
        value = self.level + self.per_night * m
        if self.floored:
            value -= (self.offset + self.floor_per_night * m) // self.divisor - self.offset // self.divisor
        return value


# Regimes of a point: 0 nothing capped; 1 the penalty absorbs it all; 2 penalty in full, the fee
# the rest; 3 penalty and fee in full, interest the rest.
def _regime(seg: CeilingSegment, n: int) -> int:
    d = seg.divisor
    cost = seg.cost + seg.cost_per_night * n
    numer = seg.numerator + seg.numerator_per_night * n
    penalty = seg.penalty + seg.penalty_per_night * n
    if d * cost <= numer:  # C <= floor(N/D)  <=>  C <= N/D  (C an integer)
        return 0
    if d * (cost - penalty) <= numer:
        return 1
    if d * (cost - penalty - seg.fee) <= numer:
        return 2
    return 3


def _turn(a: int, b: int, nights: int) -> int | None:
    """The first n in (0, nights) where ``a + b x n > 0`` changes truth, if it does."""
    if b == 0:
        return None
    t = (-a) // b + 1 if b > 0 else -((-a) // (-b))  # first true n (b > 0) / first false n (b < 0)
    return t if 0 < t < nights else None


def reduction_pieces(seg: CeilingSegment) -> list[tuple[date, date, list[ReductionPiece]]]:
    """The segment cut where the regime changes: (start, end, the pieces of the components reduced).

    A component without a piece in an interval is not reduced there (zero).
    """
    nights = (seg.end - seg.start).days
    d, dn = seg.divisor, seg.numerator_per_night
    slope = d * seg.cost_per_night - dn
    slope_less_penalty = d * (seg.cost_per_night - seg.penalty_per_night) - dn
    found = (
        _turn(d * seg.cost - seg.numerator, slope, nights),
        _turn(d * (seg.cost - seg.penalty) - seg.numerator, slope_less_penalty, nights),
        _turn(d * (seg.cost - seg.penalty - seg.fee) - seg.numerator, slope_less_penalty, nights),
    )
    turns = {t for t in found if t is not None}
    starts = sorted({0, *turns}) if turns else [0]
    intervals: list[tuple[date, date, list[ReductionPiece]]] = []
    for i, n in enumerate(starts):
        start = seg.start + timedelta(days=n) if n else seg.start
        end = seg.end if i + 1 == len(starts) else seg.start + timedelta(days=starts[i + 1])
        regime = _regime(seg, n)
        pieces: list[ReductionPiece] = []
        intervals.append((start, end, pieces))
        if regime == 0:
            continue
        offset = seg.numerator + dn * n
        floored = dn != 0  # with a still ceiling the floor part is constant: it is in the level
        penalty, fee, interest = seg.reduction_at(n)
        absorbing = REDUCED[regime - 1]
        # the absorbing component is C - L less the others' (linear) parts; the others are linear
        absorbing_slope = seg.cost_per_night - (seg.penalty_per_night if regime > 1 else 0)
        for component, level in (("penalty", penalty), ("fee", fee), ("interest", interest)):
            if component == absorbing:
                per_night, floor_part = absorbing_slope, floored
            elif component == "penalty":  # regimes 2 and 3: the whole penalty owed
                per_night, floor_part = seg.penalty_per_night, False
            else:  # the fee in regime 3 (all of it, constant), or a component left at zero
                per_night, floor_part = 0, False
            if level or per_night or floor_part:
                pieces.append(ReductionPiece(component, start, end, level, per_night, floor_part, offset, dn, d))
    return intervals
