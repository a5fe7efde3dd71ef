"""Repayment allocation: what a payment pays, in the loan's order, and the excess.

An excess is never rejected or dropped: it is held as an overpayment owed back
to the borrower.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from domain.components import Components
from domain.errors import BrokenInvariant


@dataclass(frozen=True)
class Allocation:
    paid: Components
    overpayment: Decimal

    @property
    def total(self) -> Decimal:
        return self.paid.total + self.overpayment


def allocate_fen(amount: int, owed: Mapping[str, int], order: tuple[str, ...]) -> tuple[dict[str, int], int]:
    """The rule in integer fen: each component in ``order`` takes what it is owed; returns (paid, excess)."""
    if amount < 0:
        raise BrokenInvariant(f"a negative amount ({amount} fen) cannot be allocated")
    remaining = amount
    paid: dict[str, int] = {}
    for component in order:
        owed_now = owed[component]
        if owed_now < 0:
            raise BrokenInvariant(f"{component} owed is negative ({owed_now} fen)")
        take = remaining if remaining < owed_now else owed_now
        paid[component] = take
        remaining -= take
    return paid, remaining


def allocate(amount: Decimal, owed: Components, order: tuple[str, ...]) -> Allocation:
    paid, excess = allocate_fen(_fen(amount), {c: _fen(owed.get(c)) for c in order}, order)
    paid_cny = Components(**{c: Decimal(v).scaleb(-2) for c, v in paid.items()})
    allocation = Allocation(paid_cny, Decimal(excess).scaleb(-2))
    if allocation.total != amount:  # money is conserved, to the fen
        raise BrokenInvariant(f"allocating {amount} gave {allocation.total}")
    return allocation


def _fen(amount: Decimal) -> int:
    hundredfold = amount.scaleb(2)
    fen = int(hundredfold)
    if fen != hundredfold:
        raise BrokenInvariant(f"{amount} is not a whole number of fen")
    return fen
