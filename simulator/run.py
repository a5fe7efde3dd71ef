"""Drive a simulated platform through the ledger: the same append path as real writers, EOD daily."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.loan import loan_uuid
from domain.money import ZERO
from ledger.app import Ledger
from ledger.eod import run_eod
from ledger.ingest import append_lines
from ledger.settle import PendingFacts, SettlementOrder, banks_days, run_settle
from simulator.platform import Simulator

# The simulated banks' agreements, when the deployment configures none (LEDGER_BANK_TERMS): two banks
# with a yield, one of them with a guarantee; the other simulated banks fund without an agreement.
AGREEMENTS = "ICBC-X=rate:0.08,guarantee_dpd:60;CMB-X=rate:0.09"


@dataclass
class SimulationReport:
    first_day: date | None = None
    last_day: date | None = None
    commands: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, status) -> count
    eod: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (key, loan, error)
    settled: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # bank -> principal, interest, ...

    @property
    def unplanned_rejections(self) -> list[tuple[str, str, str]]:
        return [r for r in self.rejected if not r[0].startswith("bad-")]


def run_simulation(
    app: Ledger,
    sim: Simulator,
    progress: Callable[[date], None] | None = None,
    until: date | None = None,
    settle: bool = True,
) -> SimulationReport:
    """Append each simulated day, close it with the end-of-day job and settle it with every bank
    (``settle``); stop after ``until``."""
    report = SimulationReport()
    bank_of: dict[str, str] = {}  # loan -> the bank that funded it
    for day, commands in sim.days():
        if until is not None and day > until:
            break
        report.first_day = report.first_day or day
        report.last_day = day
        lines = [json.dumps(c) for c in commands]
        for item in append_lines(app, lines):
            cmd = commands[item.line - 1]
            report.commands[(cmd["type"], item.outcome.status)] += 1
            if item.outcome.error:
                report.rejected.append((cmd["idempotency_key"], cmd["loan_id"], item.outcome.error))
        open_loans = sim.open_loans(day)
        eod = run_eod(app, day, candidates=open_loans)
        report.eod.update(eod.outcomes)
        report.rejected += [(f"eod:{day}", loan_id, error) for loan_id, error in eod.rejected]
        if settle:
            _settle_day(app, day, commands, open_loans, bank_of, report)
        if progress:
            progress(day)
    return report


def _settle_day(
    app: Ledger,
    day: date,
    commands: list[dict[str, Any]],
    open_loans: list[UUID],
    bank_of: dict[str, str],
    report: SimulationReport,
) -> None:
    """The day's settlement with each bank: its loans touched that day, and those past due (the guarantee).
    The banks' facts that no loan's remittance comes between are saved together (``PendingFacts``)."""
    for c in commands:
        if c["type"] == "funded" and isinstance(c.get("bank"), str):
            bank_of.setdefault(c["loan_id"], c["bank"])
    names = {loan_uuid(loan_id): loan_id for loan_id in bank_of}
    touched = {loan_uuid(c["loan_id"]) for c in commands if c.get("loan_id") in bank_of}
    by_bank: dict[str, list[UUID]] = {}
    for uuid in sorted(touched | {u for u in open_loans if u in names}):
        by_bank.setdefault(bank_of[names[uuid]], []).append(uuid)
    banks = sorted(set(bank_of.values()))
    pending = PendingFacts(days=banks_days(app, banks))  # where every bank stands, in one read
    for bank in banks:
        try:
            statement = run_settle(app, bank, day, day, candidates=by_bank.get(bank, []), pending=pending)
        except SettlementOrder:
            continue  # the stream again on a store that settled later days already: they carry this one
        totals = report.settled.setdefault(bank, dict.fromkeys(("principal", "interest", "compensation"), ZERO))
        for kind in totals:
            totals[kind] += statement.total_of(kind)
        report.rejected += [(f"settle:{bank}:{day}", loan_id, error) for loan_id, error in statement.rejected]
    pending.flush(app)
