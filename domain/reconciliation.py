"""What was reconciled with a bank and when: one event stream per bank, one event per run.

Auditors read it to see which settlement file (by its SHA-256) was checked
against the ledger, for which dates, and what was found.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

_NAMESPACE = uuid5(NAMESPACE_URL, "urn:loan-ledger:reconciliation")


class BankReconciliations(Aggregate):
    if TYPE_CHECKING:
        # made by @event("Ran") at import; declared for readers of the stored runs (see domain/loan.py)
        class Ran(Aggregate.Event):
            file_name: str
            file_sha256: str
            date_from: date | None
            date_to: date | None
            rows: int
            matched: int
            breaks: dict[str, int]
            malformed: int
            net_difference: str

    @staticmethod
    def create_id(bank: str) -> UUID:
        return uuid5(_NAMESPACE, bank)

    @event("Opened")
    def __init__(self, bank: str):
        self.bank = bank
        self.runs = 0

    @event("Ran")
    def record_run(
        self,
        file_name: str,
        file_sha256: str,
        date_from: date | None,
        date_to: date | None,
        rows: int,
        matched: int,
        breaks: dict[str, int],
        malformed: int,
        net_difference: str,
    ) -> None:
        self.runs += 1
