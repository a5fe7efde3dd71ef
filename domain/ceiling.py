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

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import NamedTuple

from domain.errors import BrokenInvariant

# A loan approved before the cap was recorded on its terms is held to 0.36, the cap that was in
# force whenever no setting was given (docs/decisions.md).
LEGACY_COST_CAP = Decimal("0.36")
DAYS_IN_YEAR = 365
REDUCED = ("penalty", "fee", "interest")  # the order the reduction comes off


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


class CeilingSegment(NamedTuple):
    """The as-of dates start <= X < end over which every parameter is linear in n = X - start.

    Values are uncapped, in fen, at the start (after the facts valued on it): the contractual
    cost C, numerator x PD, the penalty and fee owed. The interest part needs no figure of its
    own: it is whatever of the reduction penalty and fee do not absorb. (A tuple: a position
    makes one per stretch between facts, on the rebuild's hot path.)
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


class CeilingLine(NamedTuple):
    """One line of a component's reduction, in fen. Its share of the reduction as of X >= start:
    a point line (``until`` None): ``amount``; a run: ``amount`` x m; a floor run (``divisor`` > 1):
    sign(amount) x (floor((offset + |amount| x m) / divisor) - floor(offset / divisor)), integer
    division of non-negative integers; m = the nights from ``start`` to X, at most to ``until``."""

    component: str
    start: date
    until: date | None
    amount: int
    offset: int = 0
    divisor: int = 1

    def at(self, day: date) -> int:
        if day < self.start:
            return 0
        if self.until is None:
            return self.amount
        m = (min(day, self.until) - self.start).days
        if self.divisor == 1:
            return self.amount * m
        return floor_run(self.amount, self.offset, self.divisor, m)


def floor_run(amount: int, offset: int, divisor: int, nights: int) -> int:
    """A floor run's balance after ``nights`` (see CeilingLine): what the journal's SQL computes."""
    fen = (offset + abs(amount) * nights) // divisor - offset // divisor
    return -fen if amount < 0 else fen


def linear_less_floor(per_night: int, offset: int, slope: int, divisor: int) -> tuple[int, int]:
    """per_night x m - (floor((offset + slope x m) / D) - floor(offset / D)) as one floor run: (amount, offset).

    With q = per_night, A = offset, B = slope: if D x q <= B it is minus floor((A + (B - D q) m) / D)
    (less floor(A / D)), as q m is an integer; otherwise it is ceil(((D q - B) m - A) / D) less its
    value at m = 0, which is floor((c + (D q - B) m) / D) - floor(c / D) for any c = D - 1 - A + K D,
    K = ceil(A / D) making c non-negative. Either way: non-negative operands, one line.
    """
    if divisor * per_night <= slope:
        return -(slope - divisor * per_night), offset
    return divisor * per_night - slope, divisor - 1 - offset + -(-offset // divisor) * divisor


_new = tuple.__new__  # a NamedTuple's own __new__ is a Python function; this path runs per money event
_INT64_MAX = (1 << 63) - 1  # the views hold a floor run's numerator in a 64-bit integer


def reduction_lines(segments: Iterable[CeilingSegment]) -> list[CeilingLine]:
    """Each component's reduction over the whole life as a handful of lines (domain/journal.py posts them).

    Per segment, the regime (nothing capped; the penalty absorbs the reduction; the penalty in full
    and the fee the rest; both in full and interest the rest) changes only where one of three linear
    inequalities in n turns, so each stretch between turns is, per component, a level (a point line
    for the change from what was booked) and a linear part (a run, extended when the last one goes
    on at the same rate); the absorbing component's linear part less the ceiling's floor is one
    floor run (``linear_less_floor``).
    """
    lines: list[CeilingLine] = []
    booked = [0, 0, 0]  # penalty, fee, interest: the reduction the lines so far give at the cursor
    runs = [-1, -1, -1]  # index in ``lines`` of each component's latest run
    for start0, end0, cost, cost_pn, numer, numer_pn, penalty, penalty_pn, fee, d in segments:
        nights = (end0 - start0).days
        if not (booked[0] or booked[1] or booked[2]):
            last = nights - 1  # C > floor(N/D) <=> D x C > N: linear, so its two ends decide
            if d * cost <= numer and d * (cost + cost_pn * last) <= numer + numer_pn * last:
                continue  # nothing capped before or during it (most stretches of most loans)
        elif not (cost_pn or numer_pn or penalty_pn):  # a still stretch (settled, written off): R is constant
            floor_now = numer // d
            r = cost - floor_now if cost > floor_now else 0
            if list(split_reduction(r, penalty, fee)) == booked:
                continue  # and already booked: nothing to post
        # Each regime boundary is "a + b x n > 0" for one of three (a, b): R > 0, R > penalty, R > penalty +
        # fee. Linear, so a truth that is the same on the first and last night holds on every night between.
        starts = [0]
        last = nights - 1
        a1, b1 = d * cost - numer, d * cost_pn - numer_pn
        a2, b2 = a1 - d * penalty, b1 - d * penalty_pn
        for a, b in ((a1, b1), (a2, b2), (a2 - d * fee, b2)):
            if b and (a > 0) != (a + b * last > 0):
                starts.append((-a) // b + 1 if b > 0 else -((-a) // (-b)))  # the first n where it turns
        if len(starts) > 1:
            starts = sorted(set(starts))
        for k, n in enumerate(starts):
            start = start0 + timedelta(days=n) if n else start0
            end = end0 if k + 1 == len(starts) else start0 + timedelta(days=starts[k + 1])
            length = (end - start).days
            c, numerator, p = cost + cost_pn * n, numer + numer_pn * n, penalty + penalty_pn * n
            floor_now = numerator // d
            r = c - floor_now if c > floor_now else 0
            if r == 0:  # nothing capped: whatever was booked goes back to zero
                for i in 0, 1, 2:
                    if booked[i]:
                        lines.append(_new(CeilingLine, (REDUCED[i], start, None, -booked[i], 0, 1)))
                        booked[i] = 0
                continue
            # (component, level, per night, absorbs the floor) of the components reduced, in REDUCED order
            if r <= p:
                parts: tuple[tuple[int, int, int, bool], ...] = ((0, r, cost_pn, True),)
            elif r <= p + fee:
                parts = ((0, p, penalty_pn, False), (1, r - p, cost_pn - penalty_pn, True))
            else:
                parts = ((0, p, penalty_pn, False), (1, fee, 0, False), (2, r - p - fee, cost_pn - penalty_pn, True))
            for i in range(len(parts), 3):  # the components after those: not reduced here
                if booked[i]:
                    lines.append(_new(CeilingLine, (REDUCED[i], start, None, -booked[i], 0, 1)))
                    booked[i] = 0
            for i, level, per_night, absorbs in parts:
                component = REDUCED[i]
                if level != booked[i]:
                    lines.append(_new(CeilingLine, (component, start, None, level - booked[i], 0, 1)))
                booked[i] = level
                if absorbs and numer_pn:  # the linear part less the ceiling's floor: one floor run
                    amount, offset = linear_less_floor(per_night, numerator, numer_pn, d)
                    if amount:
                        if offset + abs(amount) * length > _INT64_MAX:
                            raise BrokenInvariant(f"a floor run of the {component} ceiling passes 64 bits")
                        lines.append(_new(CeilingLine, (component, start, end, amount, offset, d)))
                        booked[i] += floor_run(amount, offset, d, length)
                elif per_night:
                    at = runs[i]
                    run = lines[at] if at >= 0 else None
                    if run is not None and run[3] == per_night and run[2] == start:
                        lines[at] = _new(CeilingLine, (component, run[1], end, per_night, 0, 1))
                    else:
                        runs[i] = len(lines)
                        lines.append(_new(CeilingLine, (component, start, end, per_night, 0, 1)))
                    booked[i] += per_night * length
    return lines
