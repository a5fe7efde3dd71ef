"""Which loans a party sees, and who held which loan: one definition per kind of party, used by every
read and by the API's write checks, as SQL on the book (``proj_loans`` aliased ``l``) and as a test of
one loan.

- ``bank:B``: the loans B funded (a loan's bank never changes once funded);
- ``channel:C``: the loans whose application came through C;
- ``agency:A``: the loans A holds now: assigned to it and not recalled (``proj_assignments``, written
  by the book projection). A recalled loan leaves the agency's sight: what happens to it next is
  another collector's business.

An agency holds a loan on the days ``from_day <= d < until_day`` of one of its spells; a loan no agency
holds is in-house. "As known at T" counts a spell from when its assignment was recorded and its end
from when its recall was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from projections.db import ViewDb
from projections.journal_view import micros

Condition = tuple[str, Sequence[Any]]  # SQL on proj_loans aliased l, and its parameters


@dataclass(frozen=True)
class LoanScope:
    """The loans one party sees: ``condition`` selects them in the book, ``owns`` tests one loan aggregate."""

    description: str
    condition: Condition
    owns: Callable[[Any], bool]


def funded_by(bank: str) -> LoanScope:
    return LoanScope(f"bank {bank}", ("l.bank = ?", (bank,)), lambda loan: loan is not None and loan.bank == bank)


def sent_by(channel: str) -> LoanScope:
    return LoanScope(
        f"channel {channel}", ("l.channel = ?", (channel,)), lambda loan: loan is not None and loan.channel == channel
    )


def assigned_to(agency: str) -> LoanScope:
    """The loans ``agency`` holds now (assigned, not recalled), as the book and the loan itself know it."""

    def owns(loan: Any) -> bool:
        held = None if loan is None else loan.current_assignment()
        return held is not None and held.agency == agency

    condition = "l.loan_id IN (SELECT loan_id FROM proj_assignments WHERE agency = ? AND until_day IS NULL)"
    return LoanScope(f"agency {agency}", (condition, (agency,)), owns)


SCOPES: dict[str, Callable[[str], LoanScope]] = {"bank": funded_by, "channel": sent_by, "agency": assigned_to}


def scope_of(kind: str, name: str) -> LoanScope:
    return SCOPES[kind](name)


def conditions(scopes: Sequence[LoanScope]) -> list[Condition]:
    return [s.condition for s in scopes]


def owned(scopes: Sequence[LoanScope], loan: Any) -> bool:
    """Seen by every one of ``scopes`` (a party's own, and any filters asked for)."""
    return all(s.owns(loan) for s in scopes)


def holders(day: int, known_us: int | None) -> tuple[str, list[Any]]:
    """SQL for (loan_id, agency) of every loan an agency held on ``day`` (a day number), as known at
    ``known_us`` (now when None), and its parameters. One row a loan: a loan's spells never overlap
    (an assignment is refused until the last one is recalled)."""
    statement = "SELECT loan_id, MAX(agency) AS agency FROM proj_assignments WHERE " + _held(known_us)
    return statement + " GROUP BY loan_id", _held_args(day, known_us)


def loans_held_by(
    db: ViewDb, agency: str, as_of: date, known_at: datetime | None = None, *, ever: bool = False
) -> list[str]:
    """The loans ``agency`` held on ``as_of`` as known at ``known_at`` (now when None), in loan id order.

    ``ever``: every loan it held on any day up to ``as_of`` (its recalled spells too): what an agency
    needs to read the collections it made.
    """
    known_us = None if known_at is None else micros(known_at)
    day = as_of.toordinal()
    if ever:
        where, args = "from_day <= ?" + ("" if known_us is None else " AND assigned_at_us <= ?"), [day]
        args += [] if known_us is None else [known_us]
    else:
        where, args = _held(known_us), _held_args(day, known_us)
    rows = db.query(
        f"SELECT DISTINCT loan_id FROM proj_assignments WHERE agency = ? AND {where} ORDER BY loan_id", [agency, *args]
    )
    return [loan_id for (loan_id,) in rows]


def holder_on(db: ViewDb, loan_id: str, as_of: date, known_at: datetime | None = None) -> str | None:
    """The agency holding ``loan_id`` on ``as_of`` as known at ``known_at`` (now when None); None: in-house."""
    known_us = None if known_at is None else micros(known_at)
    rows = db.query(
        f"SELECT agency FROM proj_assignments WHERE loan_id = ? AND {_held(known_us)}",
        [loan_id, *_held_args(as_of.toordinal(), known_us)],
    )
    return rows[0][0] if rows else None


def _held(known_us: int | None) -> str:
    recall_known = "" if known_us is None else " OR recalled_at_us > ?"
    assigned_known = "" if known_us is None else " AND assigned_at_us <= ?"
    return f"from_day <= ? AND (until_day IS NULL OR until_day > ?{recall_known}){assigned_known}"


def _held_args(day: int, known_us: int | None) -> list[Any]:
    return [day, day] + ([] if known_us is None else [known_us, known_us])
