"""Each bank's settlements: one event stream per bank, one event per settled bank-day.

The stream is named like a loan's, ``settlements:<bank>`` (no loan id holds a colon), and each of
its events carries an idempotency key with its record, as a loan's do: ``ledger verify`` proves it
unedited with the loans' streams.

The fact a bank's settlement desk and the auditors read: which day was settled, how many
loans, what was remitted (principal, the bank's interest, compensation) and the SHA-256 of
the statement's lines, so a statement produced again later can be proved the same.
The per-loan lines themselves are ``Remitted`` events on each loan's own stream.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.loan import loan_uuid


def stream_name(bank: str) -> str:
    """The name the bank's stream goes by where the store keys streams by a loan id (its idempotency records)."""
    return f"settlements:{bank}"


def settled_key(bank: str, day: date) -> str:
    return f"settle:{bank}:{day.isoformat()}"


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
            idempotency_key: str

    @staticmethod
    def create_id(bank: str) -> UUID:
        return loan_uuid(stream_name(bank))

    @event("Opened")
    def __init__(self, bank: str, idempotency_key: str):
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
        idempotency_key: str,
    ) -> None:
        self.last_day = value_date
