"""The book projection: each loan's facts (proj_loans) and its bitemporal journal (proj_journal).

Fed a page of the store's notification log at a time. For each loan touched,
the journal is re-derived after every event that can move money and compared
with what held before: lines that no longer hold are closed at the event's
recorded time, new lines open at it. Amounts are never updated in place, so
"as known at T" reads the rows that held at T.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Sequence
from uuid import UUID

from domain.journal import FAR_FUTURE, JournalLine, journal_lines
from domain.loan import Loan
from domain.position import Position
from projections.db import Cursor

NAME = "book"
_MONEY_EVENTS = {"Funded", "Repaid", "Collected", "WrittenOff", "Reversed"}
_LOAN_TOPIC = f"{Loan.__module__}:{Loan.__qualname__}."
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def micros(moment: datetime) -> int:
    """Recorded times as integer microseconds since the epoch: exact and portable."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def fen(amount: Any) -> int:
    return int(amount * 100)


def line_key(line: JournalLine) -> str:
    until = "" if line.until is None else line.until.toordinal()
    return f"{line.entry}|{line.account}|{line.value_date.toordinal()}|{until}|{fen(line.amount)}"


def apply_page(cursor: Cursor, app: Any, notifications: Sequence[Any]) -> None:
    """Write what a page of notifications changes; the caller commits it with the new position."""
    pages: dict[UUID, list[Any]] = defaultdict(list)
    for n in notifications:
        if n.topic.startswith(_LOAN_TOPIC):  # other streams (reconciliation runs) have no place in the book
            pages[n.originator_id].append(app.mapper.to_domain_event(n))
    # loans seen before this page: rebuild their state up to just before it
    earlier: dict[UUID, list[Any]] = defaultdict(list)
    need = [uuid for uuid, events in pages.items() if events[0].originator_version > 1]
    for stored in app.recorder.select_events_of(need):
        if stored.originator_version < pages[stored.originator_id][0].originator_version:
            earlier[stored.originator_id].append(app.mapper.to_domain_event(stored))

    closes: list[tuple] = []  # rows committed by earlier pages that stop holding
    opens: dict[tuple[str, JournalLine], list] = {}  # rows this page adds; a line may open and close within it
    loan_rows: list[tuple] = []
    for uuid, events in pages.items():
        loan: Loan | None = None
        for e in earlier.get(uuid, []):
            loan = e.mutate(loan)
        position = _far_position(loan)
        before = set(journal_lines(loan, position)) if loan is not None else set()
        for e in events:
            loan = e.mutate(loan)
            if type(e).__name__ not in _MONEY_EVENTS:
                continue
            position = _far_position(loan)
            after = set(journal_lines(loan, position))
            at = micros(e.timestamp)
            for line in before - after:
                pending = opens.get((loan.loan_id, line))
                if pending is not None and pending[-1] is None:
                    pending[-1] = at  # held only between two events of this page: still history
                else:
                    closes.append((at, loan.loan_id, line_key(line)))
            for line in after - before:
                opens[(loan.loan_id, line)] = _journal_row(loan.loan_id, line, at)
            before = after
        assert loan is not None
        loan_rows.append(_loan_row(loan, position))

    cursor.executemany("UPDATE proj_journal SET known_to_us = ? WHERE loan_id = ? AND line_key = ? "
                       "AND known_to_us IS NULL", closes)
    cursor.executemany("INSERT INTO proj_journal (loan_id, line_key, entry, account, value_day, until_day, "
                       "amount_fen, known_from_us, known_to_us) VALUES (?,?,?,?,?,?,?,?,?)", list(opens.values()))
    cursor.executemany(
        "INSERT INTO proj_loans (loan_id, borrower_id, product, channel, phase, bank, score, model_version, "
        "principal_fen, funded_day, due_day, written_off_day, settled_day, version) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (loan_id) DO UPDATE SET "
        "phase = excluded.phase, bank = excluded.bank, score = excluded.score, "
        "model_version = excluded.model_version, principal_fen = excluded.principal_fen, "
        "funded_day = excluded.funded_day, due_day = excluded.due_day, "
        "written_off_day = excluded.written_off_day, settled_day = excluded.settled_day, version = excluded.version",
        loan_rows,
    )


def _far_position(loan: Loan | None) -> Position | None:
    if loan is None or loan.terms is None or loan.funded_on is None:
        return None
    return loan.position(FAR_FUTURE)


def _journal_row(loan_id: str, line: JournalLine, at: int) -> list:
    until = None if line.until is None else line.until.toordinal()
    return [loan_id, line_key(line), line.entry, line.account, line.value_date.toordinal(), until, fen(line.amount), at, None]


def _loan_row(loan: Loan, position: Position | None) -> tuple:
    funded = due = settled = None
    if loan.terms is not None and loan.funded_on is not None:
        assert position is not None
        funded = loan.funded_on.toordinal()
        due = loan.terms.due_date(loan.funded_on).toordinal()
        settled = None if position.settled_on is None else position.settled_on.toordinal()
    return (
        loan.loan_id, loan.borrower_id, loan.product, loan.channel, loan.phase, loan.bank,
        None if loan.score is None else str(loan.score), loan.model_version,
        None if loan.terms is None else fen(loan.terms.principal), funded, due,
        None if loan.written_off_on is None else loan.written_off_on.toordinal(), settled, loan.version,
    )
