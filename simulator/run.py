"""Drive a simulated platform through the ledger: the same append path as real writers, EOD daily."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from ledger.app import Ledger
from ledger.eod import run_eod
from ledger.ingest import append_lines
from simulator.platform import Simulator


@dataclass
class SimulationReport:
    first_day: date | None = None
    last_day: date | None = None
    commands: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, status) -> count
    eod: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (key, loan, error)

    @property
    def unplanned_rejections(self) -> list[tuple[str, str, str]]:
        return [r for r in self.rejected if not r[0].startswith("bad-")]


def run_simulation(
    app: Ledger, sim: Simulator, progress: Callable[[date], None] | None = None, until: date | None = None
) -> SimulationReport:
    """Append each simulated day, then close it with the end-of-day job; stop after ``until``."""
    report = SimulationReport()
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
        eod = run_eod(app, day, candidates=sim.open_loans(day))
        report.eod.update(eod.outcomes)
        report.rejected += [(f"eod:{day}", loan_id, error) for loan_id, error in eod.rejected]
        if progress:
            progress(day)
    return report
