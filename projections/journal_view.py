"""proj_journal: each loan's journal, bitemporally, as rows that are closed but never changed.

After every event that can move money the loan's journal is re-derived from
its facts (``domain.journal``) and compared with the lines that held before:
lines that no longer hold are closed at the event's recorded time, new ones
open at it. A backdated repayment or a reversal therefore leaves the earlier
allocations readable "as known at" any earlier time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from domain.errors import BrokenInvariant
from domain.journal import BANK_INTEREST, MEMO, OVERPAYMENTS, RECEIVABLE, RECOVERY, JournalLine
from projections.db import Cursor, in_chunks

LINE_ID_SPAN = 1 << 16  # line ids an event may open: id = notification id * span + place
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = (
    "line_id",
    "loan_id",
    "bank",
    "entry",
    "account",
    "value_day",
    "until_day",
    "amount_fen",
    "run_offset",
    "run_divisor",
    "known_from_us",
    "known_to_us",
)
_KNOWN_TO = _COLUMNS.index("known_to_us")
_SUM_COLUMNS = (
    "loan_id",
    "quiet_day",
    "principal_fen",
    "interest_fen",
    "fee_fen",
    "penalty_fen",
    "overpayment_fen",
    "still_due_fen",
    "written_off_fen",
    "recovered_fen",
    "total_fen",
    # the funding payable and bank interest lines (point lines), as balances.bank_payables sums them
    "bank",
    "payable_lines",
    "funded_fen",
    "remitted_fen",
    "compensated_fen",
    "bank_interest_fen",
    "payable_fen",
)
_PAYABLE = "funding_payable:"
_PARTS = ("principal", "interest", "fee", "penalty")
_STILL_DUE = {MEMO + part for part in ("principal", "interest", "fee")}

# A loan's lines that hold now -> their row's line_id. Keys are plain tuples equal to the JournalLines
# (same hash, same equality): the cyclic collector stops tracking a plain tuple of atoms after one
# pass, but walks a named tuple on every pass, and a runner caches the lines of thousands of loans.
OpenLines = dict[tuple[str, str, date, Decimal, date | None, int, int], int]


def micros(moment: datetime) -> int:
    """A recorded time as integer microseconds since the epoch: exact, and the same on both engines."""
    if moment.tzinfo is None:
        raise BrokenInvariant(f"recorded time {moment} has no time zone")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def line_fen(amount_fen: int, value_day: int, until_day: int | None, offset: int, divisor: int) -> int:
    """A line's whole amount in fen, once every night of a run has passed: the figure projections/balances.py
    sums in SQL for a day on or after the run's end (a floor run: the floor of its numerator)."""
    if until_day is None:
        return amount_fen
    nights = until_day - value_day
    if divisor == 1:
        return amount_fen * nights
    sign = -1 if amount_fen < 0 else 1
    return sign * ((offset + abs(amount_fen) * nights) // divisor - offset // divisor)


def loan_sums(loan_id: str, bank: str, lines: Sequence[JournalLine]) -> list[Any]:
    """The loan's proj_loan_sums row (schema.py) from the lines that hold now: the day from which none of
    them changes with the date, and their sums as of that day, by the rules of balances._portfolio_rows
    and balances.bank_payables."""
    quiet = 0
    fen = dict.fromkeys(_PARTS, 0)
    overpayment = still_due = written_off = recovered = total = 0
    payable_lines = funded = remitted = compensated = bank_interest = payable = 0
    for entry, account, value_date, amount, until, offset, divisor in lines:
        value_day = value_date.toordinal()
        until_day = None if until is None else until.toordinal()
        amount_fen = to_fen(amount)
        whole = line_fen(amount_fen, value_day, until_day, offset, divisor)
        quiet = max(quiet, value_day if until_day is None else max(value_day, until_day))
        total += whole
        if account.startswith(RECEIVABLE):
            part = account[len(RECEIVABLE) :]
            if part in fen:
                fen[part] += whole
            if part == "principal" and entry == "write_off":
                written_off -= amount_fen
        elif account == OVERPAYMENTS:
            overpayment -= amount_fen
        elif account in _STILL_DUE:
            still_due += amount_fen
        elif account == RECOVERY:
            recovered -= amount_fen
        elif account.startswith(_PAYABLE):
            payable_lines += 1
            payable -= amount_fen
            if entry == "funding":
                funded -= amount_fen
            elif entry.startswith("remitted:"):
                remitted += amount_fen
            elif entry.startswith("compensated:"):
                compensated += amount_fen
        elif account == BANK_INTEREST:
            payable_lines += 1
            bank_interest += amount_fen
    payables = [bank, payable_lines, funded, remitted, compensated, bank_interest, payable]
    return [loan_id, quiet, *fen.values(), overpayment, still_due, written_off, recovered, total, *payables]


def to_fen(amount: Decimal) -> int:
    hundredfold = amount * 100
    fen = int(hundredfold)
    if fen != hundredfold:  # whole fen, or the journal would not be exact
        raise BrokenInvariant(f"{amount} is not a whole number of fen")
    return fen


@dataclass
class JournalChanges:
    """What one page does to proj_journal, gathered before its transaction opens."""

    opened: dict[int, list[Any]] = field(default_factory=dict)  # line_id -> new row
    closed: list[tuple[int, int]] = field(default_factory=list)  # (known_to_us, line_id) of committed rows
    # loan_id -> the lines that hold now, summed into its proj_loan_sums row once, when the page is written
    sums: dict[str, list[JournalLine]] = field(default_factory=dict)
    banks: dict[str, str] = field(default_factory=dict)  # loan_id -> its bank, for its proj_loan_sums row

    def record(
        self, loan_id: str, bank: str, open_lines: OpenLines, lines: list[JournalLine], notification_id: int, at_us: int
    ) -> None:
        """The loan's journal is now ``lines``, as of the event ``notification_id`` recorded at ``at_us``."""
        opened = self.opened
        if open_lines:  # (a loan's first money event has none to close)
            now = set(lines)
            for line in [line for line in open_lines if line not in now]:
                line_id = open_lines.pop(line)
                row = opened.get(line_id)
                if row is not None:
                    row[_KNOWN_TO] = at_us  # opened earlier in this page: its row is still history
                else:
                    self.closed.append((at_us, line_id))
        base, place = notification_id * LINE_ID_SPAN, 0
        for line in lines:  # in the journal's own order, so ids are the same on every rebuild
            if line not in open_lines:
                line_id = base + place
                place += 1
                entry, account, value_date, amount, until, offset, divisor = line  # a named field is slower
                open_lines[(entry, account, value_date, amount, until, offset, divisor)] = line_id
                opened[line_id] = [
                    line_id,
                    loan_id,
                    bank,
                    entry,
                    account,
                    value_date.toordinal(),
                    None if until is None else until.toordinal(),
                    to_fen(amount),
                    offset,
                    divisor,
                    at_us,
                    None,
                ]
        if place >= LINE_ID_SPAN:
            raise BrokenInvariant(f"loan {loan_id}: journal line {place} passes the span of {LINE_ID_SPAN} a loan")
        self.sums[loan_id] = lines
        self.banks[loan_id] = bank

    def write(self, c: Cursor) -> None:
        rows = list(self.opened.values())
        if c.postgres:
            if rows:  # COPY: a quarter of the cost of an INSERT of unnested arrays, measured
                with c.curs.copy(c.db.names(f"COPY proj_journal ({', '.join(_COLUMNS)}) FROM STDIN")) as copy:
                    for row in rows:
                        copy.write_row(row)
            if self.closed:
                c.curs.execute(
                    c.db.names(
                        "UPDATE proj_journal j SET known_to_us = v.known_to FROM unnest(%s::bigint[], %s::bigint[]) "
                        "AS v(known_to, line_id) WHERE j.line_id = v.line_id AND j.known_to_us IS NULL"
                    ),
                    [[t for t, _ in self.closed], [i for _, i in self.closed]],
                )
                closed = c.curs.rowcount
        else:
            c.executemany(f"INSERT INTO proj_journal VALUES ({','.join('?' * len(_COLUMNS))})", rows)
            c.executemany(
                "UPDATE proj_journal SET known_to_us = ? WHERE line_id = ? AND known_to_us IS NULL", self.closed
            )
            closed = c.curs.rowcount if self.closed else 0
        sums = ", ".join(f"{name} = excluded.{name}" for name in _SUM_COLUMNS[1:])
        c.executemany(
            f"INSERT INTO proj_loan_sums ({', '.join(_SUM_COLUMNS)}) VALUES ({','.join('?' * len(_SUM_COLUMNS))}) "
            f"ON CONFLICT (loan_id) DO UPDATE SET {sums}",
            [loan_sums(loan_id, self.banks[loan_id], lines) for loan_id, lines in self.sums.items()],
        )
        # Every close must meet exactly one open row; anything else means a view out of step with its log.
        if self.closed and closed != len(self.closed):
            raise BrokenInvariant(f"{len(self.closed)} journal lines to close met {closed} open rows")


def read_open_lines(c: Cursor, loan_ids: Sequence[str]) -> dict[str, OpenLines]:
    """The lines that hold now, for loans this runner has not cached."""
    found: dict[str, OpenLines] = {loan_id: {} for loan_id in loan_ids}
    select = (
        "SELECT loan_id, entry, account, value_day, until_day, amount_fen, run_offset, run_divisor, line_id "
        "FROM proj_journal "
    )
    for where, params in in_chunks("loan_id", loan_ids, c.postgres):
        rows = c.query(select + f"WHERE {where} AND known_to_us IS NULL ORDER BY line_id", params)
        for loan_id, entry, account, value_day, until_day, amount_fen, offset, divisor, line_id in rows:
            line = (
                entry,
                account,
                date.fromordinal(value_day),
                Decimal(amount_fen).scaleb(-2),
                None if until_day is None else date.fromordinal(until_day),
                int(offset),
                int(divisor),
            )
            found[loan_id][line] = line_id
    return found
