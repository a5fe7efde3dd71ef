"""Each bank's settlements: one event stream per bank, one event per settled bank-day.

The fact a bank's settlement desk and the auditors read: which day was settled, how many
loans, what was remitted (principal, the bank's interest, compensation) and the SHA-256 of
the statement's lines, so a statement produced again later can be proved the same.
The per-loan lines themselves are ``Remitted`` events on each loan's own stream.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

_NAMESPACE = uuid5(NAMESPACE_URL, "urn:loan-ledger:bank-settlements")


class BankSettlements(Aggregate):
    if TYPE_CHECKING:
        # made by @event("Settled") at import; declared for readers of the stored facts (see domain/loan.py)
        class Settled(Aggregate.Event):
            value_date: date
            loans: int
            lines: int
            principal: Decimal
            interest: Decimal
            compensation: Decimal
            total: Decimal
            lines_sha256: str

    @staticmethod
    def create_id(bank: str) -> UUID:
        return uuid5(_NAMESPACE, bank)

    @event("Opened")
    def __init__(self, bank: str):
        self.bank = bank
        self.last_day: date | None = None  # (ledger/settle.py reads the last fact rather than replaying them all)

    @event("Settled")
    def record_day(
        self,
        value_date: date,
        loans: int,
        lines: int,
        principal: Decimal,
        interest: Decimal,
        compensation: Decimal,
        total: Decimal,
        lines_sha256: str,
    ) -> None:
        self.last_day = value_date
