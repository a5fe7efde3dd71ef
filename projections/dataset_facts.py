"""The facts the training rows use, decoded once from a loan's stored events (projections/dataset.py).

A loan's events are read straight from their stored JSON into a ``LoanHistory``, and the facts
after any selection of them (``LoanFacts``: score, decision, terms, funding, movements,
write-off) follow the Loan aggregate's rules for each event (domain/loan.py), on the fields the
rows use, without rebuilding the aggregate. tests/test_dataset.py checks the rows built from
these facts against replaying each loan through the aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import Notification, TranscodingNotRegisteredError

from domain.errors import LedgerError
from domain.position import Movement, Position, position_as_of
from domain.terms import Terms
from eventstore.store import StateDecoder, event_transcoder

# the stored JSON decoded as the library's transcoder decodes it (the Ledger's reading), in half its time
TRANSCODER = StateDecoder(event_transcoder())


@dataclass(frozen=True)
class LoanFacts:
    """What a Loan aggregate would hold after some of its events: only what the rows use."""

    score: Decimal | None = None
    model_version: str | None = None
    decision: str | None = None
    terms: Terms | None = None
    funded_on: date | None = None
    movements: tuple[Movement, ...] = ()
    written_off_on: date | None = None
    due_date: date | None = None  # of a funded loan with terms: worked out once, every row reads it

    def position(self, on: date) -> Position:
        if self.terms is None or self.funded_on is None:
            raise LedgerError(f"a {self.decision or 'pending'} loan has no position (not funded)")
        return position_as_of(self.terms, self.funded_on, self.movements, on, self.written_off_on)


class LoanHistory:
    """One loan's events, decoded once, with the facts after any selection of them (cached).

    The same rules as the aggregate's ``@event`` methods, minus the aggregate: the
    event payloads are read straight from the stored JSON (the library's
    transcodings: decimals as strings, dates and times in ISO form).
    """

    __slots__ = (
        "loan_id",
        "applied",
        "place",
        "occurred_at",
        "recorded",
        "later",
        "_facts",
        "_settled",
        "_all",
        "_last_place",
        "_last_occurred",
    )

    def __init__(
        self,
        applied: dict[str, Any],
        recorded: list[datetime],
        later: list[tuple[int, str, dict[str, Any], int, datetime]],
        place: int,
    ):
        self.loan_id: str = applied["loan_id"]
        self.applied = applied
        self.place = place  # the Applied event's notification id: its place in the log
        self.occurred_at: datetime = applied["occurred_at"]
        self.recorded = recorded  # each event's recorded time, in version order (the Applied event first)
        self.later = later  # (version, event name, payload, notification id, occurred_at) after Applied
        self._facts: dict[tuple[int, ...], LoanFacts] = {}
        self._settled: dict[tuple[int, ...], date] = {}  # selection -> the day the loan was settled, once seen
        # Most selections are every later event (an application long after this loan, an export known
        # now): one tuple for them, and the bounds that tell them apart without a pass over the events
        # (found on the first ``seen_by``: a borrower's last loan is never asked).
        self._all = tuple(range(len(later)))
        self._last_place = -1
        self._last_occurred = self.occurred_at

    @classmethod
    def decode(cls, stored: list[Notification]) -> LoanHistory:
        recorded: list[datetime] = []
        later: list[tuple[int, str, dict[str, Any], int, datetime]] = []
        applied: dict[str, Any] = {}
        place = 0
        for s in stored:
            state = decode_state(s)
            recorded.append(state["timestamp"])
            name = s.topic.rpartition(".")[2]
            if name == "Applied":
                applied, place = state, s.id
            elif name in LOAN_EVENTS:
                later.append((s.originator_version, name, state, s.id, state["occurred_at"]))
            else:
                raise UnknownEvent(f"loan {applied.get('loan_id')!r}: event {s.topic!r} is unknown to the export")
        return cls(applied, recorded, later, place)

    @property
    def recorded_at(self) -> datetime:
        return self.recorded[0]

    def counts_for(self, application: LoanHistory) -> bool:
        """This loan's application came before ``application``: earlier in the log, and it happened first."""
        return self.place < application.place and self.occurred_at < application.occurred_at

    def seen_by(self, application: LoanHistory) -> tuple[int, ...]:
        """Which of the later events count for ``application`` (the rule in the module's docstring)."""
        place, moment = application.place, application.occurred_at
        if self._last_place < 0:
            later = self.later
            self._last_place = max((event[3] for event in later), default=self.place)
            self._last_occurred = max((event[4] for event in later), default=self.occurred_at)
        if self._last_place < place and self._last_occurred < moment:
            return self._all
        return tuple(i for i, (_, _, _, nid, occurred) in enumerate(self.later) if nid < place and occurred < moment)

    def known(self, moment: datetime) -> tuple[int, ...]:
        """The later events recorded by ``moment`` (the first ones: recording follows version order)."""
        if self.recorded[-1] <= moment:
            return self._all
        n = 0
        for t in self.recorded[1:]:
            if t > moment:
                break
            n += 1
        return tuple(range(n))

    def facts(self, selection: tuple[int, ...]) -> LoanFacts:
        facts = self._facts.get(selection)
        if facts is None:
            facts = self._facts[selection] = facts_after([self.later[i] for i in selection])
        return facts

    def settled_by(self, selection: tuple[int, ...], on: date) -> date | None:
        """The settlement day, if a position already showed the loan settled on or before ``on``."""
        day = self._settled.get(selection)
        return day if day is not None and day <= on else None

    def saw(self, selection: tuple[int, ...], position: Position) -> None:
        if position.settled_on is not None:
            self._settled[selection] = position.settled_on


class UnknownEvent(LedgerError):
    """The log holds what this export cannot read: an event type or value added since it was written."""


LOAN_EVENTS = {
    "Scored",
    "Funded",
    "Repaid",
    "Collected",
    "Overdue",
    "WrittenOff",
    "Reversed",
    "Assigned",
    "Recalled",
    "Waived",
    "Refunded",
    "Remitted",
}


def decode_state(stored: Notification) -> dict[str, Any]:
    """One stored event's payload, its values decoded (decimals, dates, times) as the Ledger decodes them."""
    try:
        state: dict[str, Any] = TRANSCODER.decode(stored.state)
    except TranscodingNotRegisteredError as e:
        raise UnknownEvent(f"event {stored.topic!r} version {stored.originator_version}: {e}") from None
    return state


def facts_after(events: list[tuple[int, str, dict[str, Any], int, datetime]]) -> LoanFacts:
    """The Loan aggregate's rules for each event (domain/loan.py), on the fields the rows use."""
    score = model_version = decision = None
    terms: Terms | None = None
    funded_on = written_off_on = None
    money_in: list[Movement] = []
    reversed_keys: set[str] = set()
    for version, name, e, _, _ in events:
        if name in ("Repaid", "Collected"):
            money_in.append(
                Movement(
                    key=e["idempotency_key"],
                    value_date=e["value_date"],
                    amount=e["amount"],
                    kind="repayment" if name == "Repaid" else "collection",
                    seq=version - 1,  # the aggregate's version before the event, as Loan records it
                )
            )
        elif name in ("Waived", "Refunded"):  # what is owed or held changes: balances must see them
            money_in.append(
                Movement(
                    key=e["idempotency_key"],
                    value_date=e["value_date"],
                    amount=e["amount"],
                    kind="waiver" if name == "Waived" else "refund",
                    seq=version - 1,
                    component=e.get("component"),
                )
            )
        elif name == "Reversed":
            reversed_keys.add(e["reverses"])
        elif name == "Scored":
            score, model_version, decision = e["score"], e["model_version"], e["decision"]
            if e["terms"]:
                terms = Terms.from_event(e["terms"])
        elif name == "Funded":
            funded_on = e["value_date"]
        elif name == "WrittenOff":
            written_off_on = e["value_date"]
    return LoanFacts(
        score=score,
        model_version=model_version,
        decision=decision,
        terms=terms,
        funded_on=funded_on,
        movements=tuple(m for m in money_in if m.key not in reversed_keys),
        written_off_on=written_off_on,
        due_date=None if terms is None or funded_on is None else terms.due_date(funded_on),
    )
