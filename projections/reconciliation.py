"""Reconciliation of a bank's settlement file with the ledger's money movements for that bank.

The ledger side is built in one pass over the event log (only the event types
that move a bank's money); the bank file is then read row by row, each row
matched by bank_ref and taken off the ledger side. What is left of the ledger
side within the date range is missing in the bank. A bank_ref the ledger holds
on more than one movement (the domain refuses that only within one loan) is a
break: the bank moved the money once. Memory grows with the bank's movements,
not with the file.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from domain.bank_settlements import BankSettlements
from domain.errors import BrokenInvariant, InvalidAmount
from domain.loan import SHANGHAI, Loan
from domain.money import ZERO, fmt, parse_amount
from domain.reconciliation import BankReconciliations
from projections.source import EventLog

COLUMNS = ("bank_ref", "loan_id", "type", "amount", "value_date")
# a remittance: the platform's transfer to the bank for a settled bank-day (ledger settle), by its
# reference settle:<bank>:<day>, its amount the bank-day's total (negative: the bank pays it back)
TYPES = ("disbursement", "repayment", "reversal", "remittance")
MAX_ROW_CHARS = 4096


@dataclass(frozen=True, slots=True)  # a million of these for a big bank: no per-object dict
class BankMovement:
    """Money through the bank's account for a loan, as a bank file states it or as the ledger holds it
    (not domain.position.Movement, which is money applied to a loan's balances)."""

    bank_ref: str
    loan_id: str
    type: str
    amount: Decimal
    value_date: date

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "amount": fmt(self.amount), "value_date": self.value_date.isoformat()}


@dataclass
class ReconciliationReport:
    """One bank file reconciled against the ledger: counts, breaks, malformed lines, totals by type."""

    bank: str
    file_name: str
    file_sha256: str = ""
    date_from: date | None = None
    date_to: date | None = None
    rows: int = 0
    matched: int = 0
    breaks: list[dict[str, Any]] = field(default_factory=list)  # as _break() shapes them
    malformed: list[dict[str, Any]] = field(default_factory=list)  # {line, error}
    # every type present, at 0.00, so a file without reversals (or an empty one) totals like any other
    bank_totals: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(TYPES, ZERO))
    ledger_totals: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(TYPES, ZERO))

    @property
    def clean(self) -> bool:
        return not self.breaks and not self.malformed

    @property
    def net_difference(self) -> Decimal:
        """Bank minus ledger, money in (repayments) minus money out (disbursements, reversals)."""

        def net(t: dict[str, Decimal]) -> Decimal:
            return t["repayment"] - t["disbursement"] - t["reversal"] - t["remittance"]

        return net(self.bank_totals) - net(self.ledger_totals)

    def run_record(self) -> dict[str, Any]:
        """What the write side records of this run (ledger.reconciliation_runs.record_run): the
        comparison is the read side's, recording it is a command of the ledger's."""
        return {
            "file_name": self.file_name,
            "file_sha256": self.file_sha256,
            "date_from": self.date_from,
            "date_to": self.date_to,
            "rows": self.rows,
            "matched": self.matched,
            "breaks": dict(Counter(b["kind"] for b in self.breaks)),
            "malformed": len(self.malformed),
            "net_difference": fmt(self.net_difference),
        }


@dataclass
class LedgerSide:
    """The ledger's movements for a bank: the first per bank_ref, and any later ones sharing it."""

    by_ref: dict[str, BankMovement] = field(default_factory=dict)
    shared: dict[str, list[BankMovement]] = field(default_factory=dict)

    def add(self, m: BankMovement) -> None:
        if m.bank_ref in self.by_ref:
            self.shared.setdefault(m.bank_ref, []).append(m)
        else:
            self.by_ref[m.bank_ref] = m

    def take(self, bank_ref: str, loan_id: str) -> tuple[BankMovement | None, list[BankMovement]]:
        """The movement a bank row matches (its own loan's, if several share the ref), and the others."""
        first = self.by_ref.pop(bank_ref, None)
        if first is None:
            return None, []
        candidates = [first, *self.shared.pop(bank_ref, [])]
        mine = next((m for m in candidates if m.loan_id == loan_id), first)
        return mine, [m for m in candidates if m is not mine]

    def all(self) -> Iterator[BankMovement]:
        yield from self.by_ref.values()
        for extra in self.shared.values():
            yield from extra


def ledger_movements(app: EventLog, bank: str) -> LedgerSide:
    """Every money movement the ledger holds for the bank, by bank_ref."""
    loan_ids: dict[UUID, str] = {}  # loan uuid -> loan_id (only Applied carries it)
    funded_by: dict[UUID, tuple[str, str]] = {}  # loan uuid -> (loan_id, bank)
    by_key: dict[str, BankMovement] = {}  # repayments by idempotency key, for reversals to find
    movements = LedgerSide()
    settlements = BankSettlements.create_id(bank)
    for n in app.notifications(Loan.Applied, Loan.Funded, Loan.Repaid, Loan.Reversed, BankSettlements.Settled):
        e = app.mapper.to_domain_event(n)
        if isinstance(e, BankSettlements.Settled):
            if e.originator_id == settlements and e.total:  # a bank-day with nothing to remit moves no money
                day = e.value_date
                movements.add(BankMovement(remittance_ref(bank, day), "", "remittance", e.total, day))
            continue
        if isinstance(e, Loan.Applied):
            loan_ids[e.originator_id] = e.loan_id
            continue
        if isinstance(e, Loan.Funded):
            loan_id = loan_ids[e.originator_id]
            funded_by[e.originator_id] = (loan_id, e.bank)
            if e.bank == bank:
                movements.add(BankMovement(e.bank_ref, loan_id, "disbursement", e.amount, e.value_date))
            continue
        loan_id, loan_bank = funded_by[e.originator_id]
        if loan_bank != bank:
            continue
        if isinstance(e, Loan.Repaid):
            m = BankMovement(e.bank_ref, loan_id, "repayment", e.amount, e.value_date)
            movements.add(m)
            by_key[e.idempotency_key] = m
        elif (
            isinstance(e, Loan.Reversed) and e.reverses in by_key
        ):  # reversals of repayments; collections do not pass through the bank
            on = e.occurred_at.astimezone(SHANGHAI).date()
            movements.add(BankMovement(e.idempotency_key, loan_id, "reversal", by_key[e.reverses].amount, on))
    return movements


def remittance_ref(bank: str, day: date) -> str:
    """The reference of a bank-day's remittance: the platform sends it with the transfer."""
    return f"settle:{bank}:{day.isoformat()}"


def read_bank_file(path: Path) -> Iterator[tuple[int, BankMovement | str]]:
    """(line number, movement or the reason the row is malformed), streaming."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            raise ValueError(f"line 1: header must be {','.join(COLUMNS)}, got {','.join(header or [])!r}")
        for row in reader:
            line = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != len(COLUMNS):
                yield line, f"expected {len(COLUMNS)} columns, got {len(row)}"
                continue
            if sum(len(c) for c in row) > MAX_ROW_CHARS:
                yield line, f"row longer than {MAX_ROW_CHARS} characters"
                continue
            bank_ref, loan_id, kind, amount_text, day_text = (c.strip() for c in row)
            if not bank_ref:
                yield line, "bank_ref: empty"
                continue
            if kind not in TYPES:
                yield line, f"type: {kind!r} is not one of {', '.join(TYPES)}"
                continue
            # a remittance may be negative: a bank-day whose reversals exceed what it remitted
            negative = kind == "remittance" and amount_text.startswith("-")
            try:
                amount = parse_amount(amount_text[1:] if negative else amount_text, "amount")
                amount = -amount if negative else amount
            except InvalidAmount as e:
                yield line, str(e)
                continue
            try:
                value_date = date.fromisoformat(day_text)
            except ValueError:
                yield line, f"value_date: {day_text!r} is not a date (YYYY-MM-DD)"
                continue
            yield line, BankMovement(bank_ref, loan_id, kind, amount, value_date)


def reconcile(
    app: EventLog,
    path: Path,
    bank: str,
    date_from: date | None = None,
    date_to: date | None = None,
    tolerance_days: int = 0,
) -> ReconciliationReport:
    report = ReconciliationReport(bank, path.name, file_sha256=_sha256(path), date_from=date_from, date_to=date_to)
    ledger = ledger_movements(app, bank)
    seen: set[str] = set()
    lo, hi = date.max, date.min
    tolerance = timedelta(days=tolerance_days)
    for line, row in read_bank_file(path):
        report.rows += 1
        if isinstance(row, str):
            report.malformed.append({"line": line, "error": row})
            continue
        lo, hi = min(lo, row.value_date), max(hi, row.value_date)
        report.bank_totals[row.type] += row.amount
        if row.bank_ref in seen:
            report.breaks.append(_break("duplicate", row.bank_ref, row.loan_id, None, row, line))
            continue
        seen.add(row.bank_ref)
        mine, others = ledger.take(row.bank_ref, row.loan_id)
        for other in others:
            report.ledger_totals[other.type] += other.amount
            report.breaks.append(_break("duplicate_in_ledger", row.bank_ref, other.loan_id, other, row, line))
        if mine is None:
            report.breaks.append(_break("missing_in_ledger", row.bank_ref, row.loan_id, None, row, line))
            continue
        report.ledger_totals[mine.type] += mine.amount
        if mine.amount != row.amount or mine.type != row.type:
            report.breaks.append(_break("amount_mismatch", row.bank_ref, mine.loan_id, mine, row, line))
        elif abs(mine.value_date - row.value_date) > tolerance:
            report.breaks.append(_break("date_mismatch", row.bank_ref, mine.loan_id, mine, row, line))
        else:
            report.matched += 1
    # the range the file covers, unless given: a bank's daily file says nothing about other days
    report.date_from = date_from or (lo if report.rows else None)
    report.date_to = date_to or (hi if report.rows else None)
    for mine in sorted(ledger.all(), key=lambda m: (m.value_date, m.bank_ref, m.loan_id)):
        if report.date_from and report.date_to and report.date_from <= mine.value_date <= report.date_to:
            report.ledger_totals[mine.type] += mine.amount
            kind = "missing_in_bank" if ledger.by_ref.get(mine.bank_ref) is mine else "duplicate_in_ledger"
            report.breaks.append(_break(kind, mine.bank_ref, mine.loan_id, mine, None, None))
    return report


def history(app: EventLog, bank: str | None = None) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for n in app.notifications(BankReconciliations.Ran):
        e = app.mapper.to_domain_event(n)
        if not isinstance(e, BankReconciliations.Ran):  # the only topic selected
            raise BrokenInvariant(f"notification {n.id}: {type(e).__name__} where a reconciliation run was selected")
        opened: BankReconciliations = app.repository.get(e.originator_id, version=1)
        stream_bank = opened.bank
        if bank is None or stream_bank == bank:
            runs.append(
                {
                    "bank": stream_bank,
                    "recorded_at": e.timestamp,
                    "file_name": e.file_name,
                    "file_sha256": e.file_sha256,
                    "date_from": e.date_from,
                    "date_to": e.date_to,
                    "rows": e.rows,
                    "matched": e.matched,
                    "breaks": e.breaks,
                    "malformed": e.malformed,
                    "net_difference": e.net_difference,
                }
            )
    return runs


def _break(
    kind: str, bank_ref: str, loan_id: str, mine: BankMovement | None, theirs: BankMovement | None, line: int | None
) -> dict[str, Any]:
    return {
        "kind": kind,
        "bank_ref": bank_ref,
        "loan_id": loan_id,
        "line": line,
        "ledger": None if mine is None else mine.as_dict(),
        "bank": None if theirs is None else theirs.as_dict(),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
