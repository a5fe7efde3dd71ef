"""The book projection: proj_loans and proj_journal, fed a page of the notification log at a time.

A page is worked out in memory first (decode, bring each touched loan up to
just before the page, apply its events, re-derive its journal after each
money event) and only then written, in one short transaction with the new
tracking position (see runner.py). Loans touched by earlier pages come from a
bounded cache of their state; the rest are loaded from the store (their
earlier events) and the views (their open lines and recorded times).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.domain import OriginatorVersionError

from domain.errors import BrokenInvariant, DamagedStream
from domain.journal import FAR_FUTURE, journal_lines
from domain.loan import Loan
from eventstore.audit_store import stream_id
from eventstore.streams import damage_named, loan_event
from projections import collector, custody_view, journal_view, loans_view
from projections.db import Cursor, ViewDb
from projections.journal_view import JournalChanges, micros
from projections.loans_view import LoanState
from projections.source import EventLog

NAME = "book"
# what it writes, a rebuild empties
VIEWS = ("proj_journal", "proj_loans", "proj_assignments", "proj_collections", "proj_loan_sums")
CACHE_LOANS = 20_000  # loans held between pages; bounds memory (a few KB each), not correctness
_LOAN_TOPIC = f"{Loan.__module__}:{Loan.__qualname__}."  # other streams (reconciliation runs) have no place here
_MONEY_EVENTS = frozenset({"Funded", "Repaid", "Collected", "WrittenOff", "Reversed", "Waived", "Refunded", "Remitted"})
_NOTED_EVENTS = frozenset({"Applied", "Scored", *custody_view.EVENTS})  # see _note


class LoanCache:
    """Loan states between pages, least recently used dropped first.

    A state is only used for the very next version of its loan, so a state that
    another runner moved past, or that a failed page left half-applied (states
    are taken out while a page is worked and put back only after it commits),
    is never used.
    """

    def __init__(self, max_loans: int = CACHE_LOANS):
        self.max_loans = max_loans
        self._states: OrderedDict[UUID, LoanState] = OrderedDict()

    def take(self, uuid: UUID, version: int) -> LoanState | None:
        state = self._states.pop(uuid, None)
        if state is None or state.loan is None or state.loan.version != version:
            return None
        return state

    def put(self, states: dict[UUID, LoanState]) -> None:
        self._states.update(states)
        while len(self._states) > self.max_loans:
            self._states.popitem(last=False)

    def clear(self) -> None:
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)


@dataclass
class Page:
    journal: JournalChanges = field(default_factory=JournalChanges)
    loan_rows: list[tuple[Any, ...]] = field(default_factory=list)
    states: dict[UUID, LoanState] = field(default_factory=dict)  # to cache once the page has committed
    custody: custody_view.CustodyChanges = field(default_factory=custody_view.CustodyChanges)

    def write(self, c: Cursor) -> None:
        self.journal.write(c)
        loans_view.write(c, self.loan_rows)
        self.custody.write(c)  # (after proj_loans and proj_journal: every writer and reader takes them first)


@collector.held
def plan_page(app: EventLog, db: ViewDb, notifications: Sequence[Any], cache: LoanCache) -> Page:
    page = _plan_page(app, db, notifications, cache)
    collector.worked(len(notifications))
    return page


def _plan_page(app: EventLog, db: ViewDb, notifications: Sequence[Any], cache: LoanCache) -> Page:
    streams: dict[UUID, list[tuple[int, Any]]] = {}
    decode = app.mapper.to_domain_event
    for n in notifications:
        if n.topic.startswith(_LOAN_TOPIC):
            streams.setdefault(n.originator_id, []).append((n.id, decode(n)))

    page = Page()
    states: dict[UUID, LoanState] = {}
    unknown: dict[UUID, int] = {}  # loans seen before this page but not cached -> first version in the page
    for uuid, events in streams.items():
        first = events[0][1].originator_version
        state = cache.take(uuid, first - 1) if first > 1 else LoanState(None, {})
        if state is None:
            unknown[uuid] = first
        else:
            states[uuid] = state
    if unknown:
        states.update(_load(app, db, unknown))

    for uuid, events in streams.items():
        state = states[uuid]
        loan = state.loan
        for notification_id, e in events:
            try:  # (as damage_named, without a context manager's cost on every event of a rebuild)
                loan = e.mutate(loan)
            except OriginatorVersionError as error:
                raise DamagedStream(loan.loan_id if loan else _loan_id(db, uuid), *error.args) from None
            kind = type(e).__name__
            if kind in _NOTED_EVENTS:
                _note(page, state, loan, kind, e)
            if kind not in _MONEY_EVENTS:
                continue
            at_us = micros(e.timestamp)
            if kind == "Funded":
                state.funded_at_us = at_us
            elif kind == "WrittenOff":
                state.written_off_at_us = at_us
            position = loan.position(FAR_FUTURE)
            page.journal.record(
                loan.loan_id, loan.bank, state.open_lines, journal_lines(loan, position), notification_id, at_us
            )
            state.settled_day = None if position.settled_on is None else position.settled_on.toordinal()
        state.loan = loan
        page.loan_rows.append(loans_view.loan_row(uuid, state))
    page.states = states
    return page


def _note(page: Page, state: LoanState, loan: Loan, kind: str, e: Any) -> None:
    """What a party's book needs from an event besides the journal: when it became known, and custody."""
    at_us = micros(e.timestamp)
    if kind == "Applied":
        state.applied_at_us = at_us
    elif kind == "Scored":
        state.decided_at_us = at_us
    if kind in custody_view.EVENTS:
        page.custody.record(loan, kind, e, at_us)


def _load(app: EventLog, db: ViewDb, first_versions: dict[UUID, int]) -> dict[UUID, LoanState]:
    """Loans as they stood just before this page: their earlier events, their open lines and facts."""
    loans: dict[UUID, Loan] = {}
    for stored in app.recorder.select_events_of(list(first_versions)):
        uuid = stream_id(stored)
        if stored.originator_version < first_versions[uuid]:
            before = loans.get(uuid)
            with damage_named(before.loan_id if before else partial(_loan_id, db, uuid)):
                after = loan_event(app.mapper.to_domain_event(stored)).mutate(before)
            if after is None:  # a loan's events never discard it
                raise BrokenInvariant(f"stream {uuid}: version {stored.originator_version} discarded its loan")
            loans[uuid] = after
    if loans.keys() != first_versions.keys():
        raise BrokenInvariant("a page's events continue loans the store does not have")
    loan_ids = [loan.loan_id for loan in loans.values()]
    with db.transaction(commit=False) as c:
        facts = loans_view.read_facts(c, loan_ids)  # proj_loans before proj_journal, as every reader locks them
        lines = journal_view.read_open_lines(c, loan_ids)
    states = {}
    for uuid, loan in loans.items():
        if loan.loan_id not in facts:
            raise BrokenInvariant(f"loan {loan.loan_id} has events before this page but no row in proj_loans")
        states[uuid] = LoanState(loan, lines[loan.loan_id], *facts[loan.loan_id])
    return states


def _loan_id(db: ViewDb, uuid: UUID) -> str:
    """A loan's id from its stream id, for an error about a stream whose first event is gone."""
    rows = db.query("SELECT loan_id FROM proj_loans WHERE loan_uuid = ?", (str(uuid),))
    return rows[0][0] if rows else f"with stream id {uuid}"
