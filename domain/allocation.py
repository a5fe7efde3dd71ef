"""Repayment allocation: what a payment pays, in the loan's order, and the excess.

An excess is never rejected or dropped: it is held as an overpayment owed back
to the borrower.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from domain.components import Components


@dataclass(frozen=True)
class Allocation:
    paid: Components
    overpayment: Decimal

    @property
    def total(self) -> Decimal:
        return self.paid.total + self.overpayment


def allocate(amount: Decimal, owed: Components, order: tuple[str, ...]) -> Allocation:
    assert amount >= 0, amount
    remaining = amount
    paid: dict[str, Decimal] = {}
    for component in order:
        take = min(remaining, owed.get(component))
        assert take >= 0, (component, owed)
        paid[component] = take
        remaining -= take
    allocation = Allocation(Components(**paid), remaining)
    assert allocation.total == amount  # money is conserved, to the fen
    return allocation
