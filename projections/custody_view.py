"""proj_assignments and proj_collections: who held each loan on each day, and who collected what.

Rows are inserted when their event is recorded and closed, never changed otherwise: a
recall fills in its spell's ``until_day`` and ``recalled_at_us``, a reversal of a
collection its ``known_to_us``. So a party's book can be read as of a value date and as
known at a recorded time, like the journal. A collection is tied to the spell that held
the loan on its value date when it was recorded (the loan's rules keep custody and
collections in one date order, so a later event never moves it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.loan import Loan
from projections.db import Cursor
from projections.journal_view import to_fen

EVENTS = frozenset({"Assigned", "Recalled", "Collected", "Reversed"})
_ASSIGNMENT_COLUMNS = (
    "loan_id",
    "seq",
    "agency",
    "from_day",
    "until_day",
    "dpd",
    "bucket",
    "owed_fen",
    "assigned_at_us",
    "recalled_at_us",
)
_COLLECTION_COLUMNS = (
    "idempotency_key",
    "loan_id",
    "agency",
    "seq",
    "bucket",
    "value_day",
    "amount_fen",
    "known_from_us",
    "known_to_us",
)
_UNTIL, _RECALLED_AT = _ASSIGNMENT_COLUMNS.index("until_day"), _ASSIGNMENT_COLUMNS.index("recalled_at_us")
_KNOWN_TO = _COLLECTION_COLUMNS.index("known_to_us")


@dataclass
class CustodyChanges:
    """What one page does to the two tables, gathered before its transaction opens."""

    assigned: dict[tuple[str, int], list[Any]] = field(default_factory=dict)  # new spells
    recalled: list[tuple[int, int, str, int]] = field(default_factory=list)  # (until, at, loan, seq) committed
    collected: dict[str, list[Any]] = field(default_factory=dict)  # new collections by key
    reversed: list[tuple[int, str]] = field(default_factory=list)  # (known_to_us, key) of committed ones

    def record(self, loan: Loan, kind: str, e: Any, at_us: int) -> None:
        """``loan`` has just applied the event ``e`` of type ``kind``, recorded at ``at_us``."""
        loan_id = loan.loan_id
        if kind == "Assigned":
            seq, spell = len(loan.assignments), loan.assignments[-1]
            self.assigned[(loan_id, seq)] = [
                loan_id,
                seq,
                spell.agency,
                spell.since.toordinal(),
                None,
                spell.dpd,
                spell.bucket,
                to_fen(spell.owed),
                at_us,
                None,
            ]
        elif kind == "Recalled":
            seq, spell = len(loan.assignments), loan.assignments[-1]
            until = None if spell.until is None else spell.until.toordinal()
            row = self.assigned.get((loan_id, seq))
            if row is not None:  # assigned earlier in this page
                row[_UNTIL], row[_RECALLED_AT] = until, at_us
            elif until is not None:
                self.recalled.append((until, at_us, loan_id, seq))
        elif kind == "Collected":
            money = loan.money_in[-1]
            held = loan.assignment_on(money.value_date)
            under: tuple[int, str] | tuple[None, None] = (None, None)
            if held is not None and held.agency == money.agency:  # (not so only in a history older than the rule)
                under = (loan.assignments.index(held) + 1, held.bucket)
            self.collected[money.key] = [
                money.key,
                loan_id,
                money.agency,
                *under,
                money.value_date.toordinal(),
                to_fen(money.amount),
                at_us,
                None,
            ]
        elif kind == "Reversed":
            target = next((m for m in loan.money_in if m.key == e.reverses), None)
            if target is None or target.kind != "collection":
                return
            row = self.collected.get(target.key)
            if row is not None:
                row[_KNOWN_TO] = at_us
            else:
                self.reversed.append((at_us, target.key))

    def write(self, c: Cursor) -> None:
        c.executemany(
            f"INSERT INTO proj_assignments ({', '.join(_ASSIGNMENT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_ASSIGNMENT_COLUMNS))})",
            list(self.assigned.values()),
        )
        c.executemany(
            "UPDATE proj_assignments SET until_day = ?, recalled_at_us = ? WHERE loan_id = ? AND seq = ?",
            self.recalled,
        )
        c.executemany(
            f"INSERT INTO proj_collections ({', '.join(_COLLECTION_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_COLLECTION_COLUMNS))})",
            list(self.collected.values()),
        )
        c.executemany("UPDATE proj_collections SET known_to_us = ? WHERE idempotency_key = ?", self.reversed)
