"""The four parts of what a borrower owes, kept apart because each posts to its own account."""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal

from domain.money import ZERO


@dataclass(frozen=True)
class Components:
    penalty: Decimal = ZERO
    interest: Decimal = ZERO
    fee: Decimal = ZERO
    principal: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.penalty + self.interest + self.fee + self.principal

    def __add__(self, other: Components) -> Components:
        return Components(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def __sub__(self, other: Components) -> Components:
        return Components(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    def get(self, name: str) -> Decimal:
        return getattr(self, name)

    def as_dict(self) -> dict[str, Decimal]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


NOTHING = Components()
