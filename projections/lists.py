"""Pages of the book for lists: loans and journal lines, in a stable order, with an opaque cursor.

A cursor carries the last key of the page it ends (a loan id, a journal line id), so the next page
starts after it whatever was appended meanwhile: a loan or a line is never listed twice, and one
appended behind the cursor is simply not on the pages still to come.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.ceiling import floor_run
from domain.money import fmt
from projections.balances import _fen_to_amount, loan_lines
from projections.db import ViewDb
from projections.journal_view import micros
from projections.parties import Condition

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
_PREFIX = "v1:"


class BadCursor(ValueError):
    """A cursor this ledger did not hand out (or that was cut short)."""


def encode_cursor(kind: str, key: str | int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{kind}:{key}".encode()).decode("ascii").rstrip("=")


def decode_cursor(kind: str, text: str) -> str:
    """The key a cursor of ``kind`` carries; BadCursor for anything else."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor(f"{text[:80]!r} is not a cursor this ledger handed out") from None
    head = f"{_PREFIX}{kind}:"
    if not raw.startswith(head) or len(raw) == len(head) or len(raw) > 128:
        raise BadCursor(f"{text[:80]!r} is not a cursor of this list")
    return raw[len(head) :]


def decode_number_cursor(kind: str, text: str) -> int:
    """The number a cursor of ``kind`` carries (a journal line id, an event version)."""
    key = decode_cursor(kind, text)
    if not key.isascii() or not key.isdigit() or len(key) > 20:
        raise BadCursor(f"{text[:80]!r} is not a cursor of this list")
    return int(key)


def loan_row(line: Any) -> dict[str, Any]:
    """One line of `ledger loan list` and of ``GET /v1/loans``."""
    return {
        "loan_id": line.loan_id,
        "state": line.state,
        "bucket": line.bucket,
        "dpd": line.dpd,
        "bank": line.bank,
        "product": line.product,
        "due_date": line.due_date,
        "total": fmt(line.amounts["total"]),
    }


def loan_page(
    db: ViewDb,
    as_of: date,
    *,
    state: str | None = None,
    bucket: str | None = None,
    bank: str | None = None,
    where_loans: Sequence[Condition] = (),
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> tuple[list[dict[str, Any]], str | None]:
    """Funded loans in loan id order after ``cursor``, at most ``limit``, and the cursor of the next page
    (None at the end). State and bucket are judged as of the date, so they filter as the rows stream."""
    after = [("l.loan_id > ?", (decode_cursor("loan", cursor),))] if cursor else []
    found: list[Any] = []
    more = False
    # a generator (closing it releases its cursor on the store), though its signature says Iterator
    with closing(loan_lines(db, as_of, bank=bank, where_loans=[*where_loans, *after])) as lines:  # type: ignore[type-var]
        for line in lines:
            if (state and line.state != state) or (bucket and line.bucket != bucket):
                continue
            if len(found) == limit:
                more = True
                break
            found.append(line)
    next_cursor = encode_cursor("loan", found[-1].loan_id) if more else None
    return [loan_row(line) for line in found], next_cursor


@dataclass(frozen=True)
class JournalRow:
    line_id: int
    loan_id: str
    bank: str
    entry: str
    account: str
    value_date: date  # the line's date, or the first of its nights in the range
    last_date: date  # the same for a line; the last of its nights in the range for an accrual run
    nights: int | None  # an accrual run's nights in the range (None: a line posted once)
    fen: int  # signed, debit +: the line's amount, or a run's amount over its nights in the range

    def as_json(self) -> dict[str, Any]:
        amount = _fen_to_amount(abs(self.fen))
        zero = _fen_to_amount(0)
        return {
            "line_id": self.line_id,
            "loan_id": self.loan_id,
            "bank": self.bank,
            "entry": self.entry,
            "account": self.account,
            "value_date": self.value_date,
            "last_date": self.last_date,
            "nights": self.nights,
            "debit": fmt(amount if self.fen > 0 else zero),
            "credit": fmt(amount if self.fen < 0 else zero),
        }


def journal_page(
    db: ViewDb,
    first: date,
    last: date,
    *,
    where_loans: Sequence[Condition] = (),
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
    known_at: datetime | None = None,
) -> tuple[list[JournalRow], str | None]:
    """The journal's lines that post in ``first``..``last`` (value dates, both included), as the ledger
    knows them now, in line id order (the order they were recorded) after ``cursor``.

    A line posted once is in the range when its value date is. An accrual run (interest or penalty, one
    amount a night) is cut to its nights in the range, each night dated by the night itself: the night
    from D to D+1 is dated D (``balances --as-of D`` counts the nights before D).
    """
    lo, hi = first.toordinal(), last.toordinal()
    after = decode_number_cursor("line", cursor) if cursor else -1
    if known_at is None:
        known, known_args = "j.known_to_us IS NULL", []
    else:
        t = micros(known_at)
        known, known_args = "j.known_from_us <= ? AND (j.known_to_us IS NULL OR j.known_to_us > ?)", [t, t]
    statement = (
        "SELECT j.line_id, j.loan_id, j.bank, j.entry, j.account, j.value_day, j.until_day, j.amount_fen, "
        "j.run_offset, j.run_divisor "
        f"FROM proj_journal j WHERE {known} AND j.line_id > ? AND j.value_day <= ? "
        "AND ((j.until_day IS NULL AND j.value_day >= ?) OR (j.until_day > j.value_day AND j.until_day > ?))"
        + "".join(
            f" AND EXISTS (SELECT 1 FROM proj_loans l WHERE l.loan_id = j.loan_id AND {c})" for c, _ in where_loans
        )
        + " ORDER BY j.line_id LIMIT ?"
    )
    args: list[Any] = [*known_args, after, hi, lo, lo, *(a for _, args in where_loans for a in args), limit + 1]
    rows = db.query(statement, args)
    page: list[JournalRow] = []
    for line_id, loan_id, bank, entry, account, value_day, until_day, amount_fen, offset, divisor in rows[:limit]:
        if until_day is None:
            start = end = value_day
            nights = None
            fen = int(amount_fen)
        else:
            start, end = max(value_day, lo), min(until_day - 1, hi)
            nights = end - start + 1
            # a run's nights before the range subtracted from those up to its end (exact for a floor run)
            run = (int(amount_fen), int(offset), int(divisor))
            fen = floor_run(*run, end - value_day + 1) - floor_run(*run, start - value_day)
        page.append(
            JournalRow(
                int(line_id),
                loan_id,
                bank,
                entry,
                account,
                date.fromordinal(start),
                date.fromordinal(end),
                nights,
                fen,
            )
        )
    next_cursor = encode_cursor("line", page[-1].line_id) if len(rows) > limit else None
    return page, next_cursor
