"""The four parts of what a borrower owes, kept apart because each posts to its own account."""

from __future__ import annotations

from dataclasses import dataclass
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
        return Components(
            self.penalty + other.penalty,
            self.interest + other.interest,
            self.fee + other.fee,
            self.principal + other.principal,
        )

    def __sub__(self, other: Components) -> Components:
        return Components(
            self.penalty - other.penalty,
            self.interest - other.interest,
            self.fee - other.fee,
            self.principal - other.principal,
        )

    def get(self, name: str) -> Decimal:
        value: Decimal = getattr(self, name)  # every field of Components is a Decimal
        return value

    def as_dict(self) -> dict[str, Decimal]:
        # in allocation order's default sequence; spelled out because this is on the hot path
        return {"penalty": self.penalty, "interest": self.interest, "fee": self.fee, "principal": self.principal}
