"""Recording a reconciliation run: a command of the write side, given what the read side compared
(projections/reconciliation.py ``ReconciliationReport.run_record``). The CLI records a run after showing it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from domain.reconciliation import BankReconciliations
from ledger.app import Ledger


def record_run(app: Ledger, bank: str, run: Mapping[str, Any]) -> None:
    """Append the run to the bank's reconciliation stream (retrying if another run got there first)."""
    for _ in range(app.settings.max_retries):
        try:
            stream: BankReconciliations = app.repository.get(BankReconciliations.create_id(bank))
        except AggregateNotFoundError:  # the bank's first run; anything else is a fault, not a new stream
            stream = BankReconciliations(bank=bank)
        stream.record_run(**run)
        try:
            app.save(stream)
            return
        except IntegrityError:
            continue
    raise RuntimeError(f"could not record the reconciliation run for {bank}: concurrent runs")
