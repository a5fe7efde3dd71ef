"""``ledger journal export``: every journal line of a value-date range, for the general ledger.

One row per line posted once (funding, fee, a fact, a write-off, a settlement) and one row per night
of an accrual run (or of the cost ceiling's runs): exact decimals, never a float. A night's accrual
is dated by the day whose balance it first counts in: the night from d to d+1 is in
``balances --as-of d+1`` (balances are at the end of a day: accrual for the nights before it), so it
is dated d+1 and its ``night`` column says d (the date ``GET /v1/journal`` gives it). The rows of
``--from A --to D`` therefore sum, per account, to ``balances --as-of D`` less ``balances --as-of A-1``:
from the first day of the book, to ``balances --as-of D --accounts`` itself.

As the ledger knows the journal now (lines a later fact closed are not exported).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from domain.ceiling import floor_run
from domain.money import fmt
from projections.db import ViewDb

MAX_DAYS = 3660  # a range of ten years at most: an export is a period's close, not the whole history at once
COLUMNS = ("date", "account", "debit", "credit", "loan_id", "event", "night", "bank", "line_id")
_CENT = Decimal("0.01")


class BadRange(ValueError):
    """--to before --from, or a range over MAX_DAYS."""


@dataclass(frozen=True)
class ExportRow:
    day: date
    account: str
    fen: int  # signed, debit +
    loan_id: str
    event: str  # the posting group: funding, fee, accrual:<c>, ceiling:<c>, a fact's key, write_off, remitted:<d>
    night: date | None  # an accrual night's own date (None for a line posted once)
    bank: str
    line_id: int

    @property
    def debit(self) -> Decimal:
        return (self.fen if self.fen > 0 else 0) * _CENT

    @property
    def credit(self) -> Decimal:
        return (-self.fen if self.fen < 0 else 0) * _CENT


def check_range(first: date, last: date) -> None:
    if last < first:
        raise BadRange(f"--to {last} is before --from {first}")
    if (last - first).days + 1 > MAX_DAYS:
        raise BadRange(f"{first} to {last} is over {MAX_DAYS} days; export a shorter range at a time")


def export_rows(db: ViewDb, first: date, last: date) -> Iterator[ExportRow]:
    """The rows of ``first``..``last`` (both included), in line id order, nights in date order."""
    check_range(first, last)
    lo, hi = first.toordinal(), last.toordinal()
    # a line posted once: valued in the range; a run: some night d with lo - 1 <= d <= hi - 1
    statement = (
        "SELECT line_id, loan_id, bank, entry, account, value_day, until_day, amount_fen, run_offset, run_divisor "
        "FROM proj_journal WHERE known_to_us IS NULL AND ((until_day IS NULL AND value_day >= ? AND value_day <= ?) "
        "OR (until_day IS NOT NULL AND value_day <= ? AND until_day >= ?)) ORDER BY line_id"
    )
    for line_id, loan_id, bank, entry, account, value_day, until_day, amount, offset, divisor in db.stream(
        statement, (lo, hi, hi - 1, lo)
    ):
        if until_day is None:
            yield ExportRow(date.fromordinal(value_day), account, int(amount), loan_id, entry, None, bank, line_id)
            continue
        run = (int(amount), int(offset), int(divisor))
        for night in range(max(value_day, lo - 1), min(until_day, hi)):  # nights value_day <= d < until_day
            k = night - value_day
            fen = floor_run(*run, k + 1) - floor_run(*run, k)
            if fen:
                yield ExportRow(
                    date.fromordinal(night + 1), account, fen, loan_id, entry, date.fromordinal(night), bank, line_id
                )


def write(rows: Iterator[ExportRow], path: str, fmt_name: str, batch_rows: int = 10_000) -> int:
    """Stream the rows to CSV (amounts as 2-place decimals) or Parquet (decimal128 columns); how many."""
    if fmt_name == "csv":
        n = 0
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(COLUMNS)
            for r in rows:
                night = "" if r.night is None else r.night.isoformat()
                writer.writerow(
                    (
                        r.day.isoformat(),
                        r.account,
                        fmt(r.debit),
                        fmt(r.credit),
                        r.loan_id,
                        r.event,
                        night,
                        r.bank,
                        r.line_id,
                    )
                )
                n += 1
        return n
    import pyarrow as pa
    import pyarrow.parquet as pq

    money = pa.decimal128(18, 2)
    schema = pa.schema(
        [
            ("date", pa.date32()),
            ("account", pa.string()),
            ("debit", money),
            ("credit", money),
            ("loan_id", pa.string()),
            ("event", pa.string()),
            ("night", pa.date32()),
            ("bank", pa.string()),
            ("line_id", pa.int64()),
        ],
        metadata={"produced_by": "ledger journal export (loan-ledger)", "dates": "docs/contract.md"},
    )
    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for r in rows:
            batch.append(
                {
                    "date": r.day,
                    "account": r.account,
                    "debit": r.debit,
                    "credit": r.credit,
                    "loan_id": r.loan_id,
                    "event": r.event,
                    "night": r.night,
                    "bank": r.bank,
                    "line_id": r.line_id,
                }
            )
            if len(batch) >= batch_rows:
                writer.write_table(pa.Table.from_pylist(batch, schema))
                n, batch = n + len(batch), []
        writer.write_table(pa.Table.from_pylist(batch, schema))
        n += len(batch)
    return n
