"""Risk-model training rows: one per application, features as known before the decision, matured labels.

Leakage is ruled out by construction, not by care:
- a row's features take the borrower's earlier loans only from the events
  recorded before the application was (events recorded later are never looked
  at), valued at the application's own business date;
- its labels take the loan only from the events recorded by ``known_at`` and
  only value dates up to ``as_of``, and are given only once the longest outcome
  window has closed by ``as_of`` (``label_matured``);
- applications recorded after ``known_at`` are not rows.
So the same (as_of, known_at) gives identical rows whatever is appended later.

Borrowers are read a chunk at a time (their loans' events in one query), so
memory follows the chunk, not the book. Events are decoded once, straight from
their stored JSON, into the few facts the rows use (no Loan aggregate), and
balances come from the domain's ``position_as_of``: the same rules as every
other figure, applied as few times as the rows need. tests/test_dataset.py
checks the rows against replaying each loan through the aggregate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain.errors import LedgerError
from domain.loan import SHANGHAI
from domain.money import ZERO
from domain.outcomes import EVER_DPD, loss
from domain.position import Movement, Position, position_as_of
from domain.terms import Terms
from ledger.app import Ledger
from ledger.audit_store import stream_id
from projections import runner

FPD_DAYS = 7  # first payment default: still unpaid a week after the due date
EVER_WINDOW_DAYS = 60  # ever 30+ DPD within 60 days after the due date
MATURE_AFTER_DAYS = EVER_WINDOW_DAYS  # every label's window has closed by due + 60
BORROWERS_PER_CHUNK = 500


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # string | date | timestamp | int | bool | money | float
    description: str


COLUMNS = (
    Column("loan_id", "string", "The application's loan id (key; not a feature)."),
    Column("borrower_id", "string", "The applicant (key; not a feature)."),
    Column("applied_at", "timestamp", "When the application happened (its occurred_at, UTC)."),
    Column("application_date", "date", "The application's business date in Asia/Shanghai."),
    Column("requested_principal", "money", "Principal applied for, CNY."),
    Column("term_days", "int", "Term applied for, days."),
    Column("product", "string", "Product applied for."),
    Column("channel", "string", "Acquisition channel."),
    Column(
        "prior_loans",
        "int",
        "The borrower's earlier funded loans, as the ledger knew them when this application was recorded.",
    ),
    Column("prior_repaid_on_time", "int", "Of those, how many were fully paid by their due date, as known then."),
    Column(
        "prior_worst_dpd",
        "int",
        "Worst days past due over the earlier loans up to the application date, "
        "as known then (0 with no earlier loan).",
    ),
    Column(
        "days_since_last_loan",
        "int",
        "Days from the borrower's previous application to this one (null for a first application).",
    ),
    Column(
        "outstanding_at_application",
        "money",
        "What the borrower owed on earlier loans at the application date, as known then, CNY.",
    ),
    Column("score", "float", "The risk model's score (0..1) for this application."),
    Column("model_version", "string", "The scoring model's version."),
    Column("decision", "string", "approved, declined, or pending (not yet scored as known at the export)."),
    Column("funded", "bool", "Funded, as known at the export."),
    Column("due_date", "date", "Due date of the funded loan."),
    Column(
        "label_matured",
        "bool",
        f"Every outcome window has closed by the export's as-of date "
        f"(due date + {MATURE_AFTER_DAYS} days). Labels are null otherwise; "
        "declined applications never have labels.",
    ),
    Column(
        "first_payment_default", "bool", f"Principal, interest or fee still unpaid {FPD_DAYS} days after the due date."
    ),
    Column(
        "ever_30dpd_60d",
        "bool",
        f"Reached {EVER_DPD}+ days past due within {EVER_WINDOW_DAYS} days after the due date.",
    ),
    Column("repaid_on_time", "bool", "Fully paid (principal, interest, fee) by the due date."),
    Column(
        "loss_amount",
        "money",
        "Principal written off less money recovered after the write-off, plus principal waived "
        "before it, as of the export (0 when neither), CNY.",
    ),
)


def rows(app: Ledger, as_of: date, known_at: datetime) -> Iterator[dict[str, Any]]:
    """The dataset's rows, streamed borrower by borrower (ordered by borrower, then application time)."""
    runner.catch_up(app)  # the projection lists every borrower's loans
    db = runner.views(app)
    after = ""
    while True:
        chunk = db.query(
            "SELECT DISTINCT borrower_id FROM proj_loans WHERE borrower_id > ? ORDER BY borrower_id LIMIT ?",
            (after, BORROWERS_PER_CHUNK),
        )
        if not chunk:
            return
        first, last = chunk[0][0], chunk[-1][0]
        loans_of: dict[str, list[str]] = {}
        uuids: dict[UUID, str] = {}
        for borrower_id, loan_id, uuid in db.query(
            "SELECT borrower_id, loan_id, loan_uuid FROM proj_loans WHERE borrower_id >= ? AND borrower_id <= ? "
            "ORDER BY borrower_id, loan_id",
            (first, last),
        ):
            loans_of.setdefault(borrower_id, []).append(loan_id)
            uuids[UUID(uuid)] = loan_id
        after = last
        events: dict[str, list[StoredEvent]] = {loan_id: [] for loan_id in uuids.values()}
        for stored in app.recorder.select_events_of(list(uuids)):
            events[uuids[stream_id(stored)]].append(stored)
        for loan_ids in loans_of.values():
            history = [_LoanHistory.decode(events[loan_id]) for loan_id in loan_ids if events[loan_id]]
            yield from borrower_rows(history, as_of, known_at)


@dataclass(frozen=True)
class _Facts:
    """What a Loan aggregate would hold after a prefix of its events: only what the rows use."""

    score: Decimal | None = None
    model_version: str | None = None
    decision: str | None = None
    terms: Terms | None = None
    funded_on: date | None = None
    movements: tuple[Movement, ...] = ()
    written_off_on: date | None = None

    def position(self, on: date) -> Position:
        assert self.terms is not None and self.funded_on is not None
        return position_as_of(self.terms, self.funded_on, self.movements, on, self.written_off_on)


class _LoanHistory:
    """One loan's events, decoded once, with the facts after any prefix of them (cached).

    The same rules as the aggregate's ``@event`` methods, minus the aggregate: the
    event payloads are read straight from the stored JSON (the library's
    transcodings: decimals as strings, dates and times in ISO form).
    """

    __slots__ = ("loan_id", "applied", "recorded", "later", "_facts", "_settled")

    def __init__(self, applied: dict[str, Any], recorded: list[datetime], later: list[tuple[int, str, dict[str, Any]]]):
        self.loan_id: str = applied["loan_id"]
        self.applied = applied
        self.recorded = recorded  # each event's recorded time, in version order (the Applied event first)
        self.later = later  # (version, event name, payload) after Applied
        self._facts: dict[int, _Facts] = {}
        self._settled: dict[int, date] = {}  # known events -> the day the loan was settled, once seen

    @classmethod
    def decode(cls, stored: list[StoredEvent]) -> _LoanHistory:
        recorded: list[datetime] = []
        later: list[tuple[int, str, dict[str, Any]]] = []
        applied: dict[str, Any] = {}
        for s in stored:
            state = json.loads(s.state.decode())  # str: json need not guess the encoding
            recorded.append(_value(state["timestamp"]))
            name = s.topic.rpartition(".")[2]
            if name == "Applied":
                applied = state
            elif name in _EVENTS:
                later.append((s.originator_version, name, state))
            else:
                raise UnknownEvent(f"loan {applied.get('loan_id')!r}: event {s.topic!r} is unknown to the export")
        return cls(applied, recorded, later)

    @property
    def recorded_at(self) -> datetime:
        return self.recorded[0]

    def known(self, moment: datetime, strictly_before: bool = False) -> int:
        """How many events had been recorded by ``moment`` (the first ones: recording follows version order)."""
        n = 0
        for t in self.recorded:
            if t > moment or (strictly_before and t >= moment):
                break
            n += 1
        return n

    def facts(self, known: int) -> _Facts:
        facts = self._facts.get(known)
        if facts is None:
            facts = self._facts[known] = _facts_after(self.later[: known - 1])
        return facts

    def settled_by(self, known: int, on: date) -> date | None:
        """The settlement day, if a position already showed the loan settled on or before ``on``."""
        day = self._settled.get(known)
        return day if day is not None and day <= on else None

    def saw(self, known: int, position: Position) -> None:
        if position.settled_on is not None:
            self._settled[known] = position.settled_on


class UnknownEvent(LedgerError):
    """The log holds what this export cannot read: an event type or value added since it was written."""


_EVENTS = {
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
}


def _value(encoded: Any) -> Any:
    """One transcoded value as the library's JSON transcoder would return it."""
    if not isinstance(encoded, dict):
        return encoded
    kind, data = encoded["_type_"], encoded["_data_"]
    if kind == "decimal_str":
        return Decimal(data)
    if kind == "date_iso":
        return date.fromisoformat(data)
    if kind == "datetime_iso":
        return datetime.fromisoformat(data)
    raise UnknownEvent(f"unexpected transcoding {kind!r} in a loan event")


def _facts_after(events: list[tuple[int, str, dict[str, Any]]]) -> _Facts:
    """The Loan aggregate's rules for each event (domain/loan.py), on the fields the rows use."""
    score = model_version = decision = None
    terms: Terms | None = None
    funded_on = written_off_on = None
    money_in: list[Movement] = []
    reversed_keys: set[str] = set()
    for version, name, e in events:
        if name in ("Repaid", "Collected"):
            money_in.append(
                Movement(
                    key=e["idempotency_key"],
                    value_date=_value(e["value_date"]),
                    amount=_value(e["amount"]),
                    kind="repayment" if name == "Repaid" else "collection",
                    seq=version - 1,  # the aggregate's version before the event, as Loan records it
                )
            )
        elif name in ("Waived", "Refunded"):  # what is owed or held changes: balances must see them
            money_in.append(
                Movement(
                    key=e["idempotency_key"],
                    value_date=_value(e["value_date"]),
                    amount=_value(e["amount"]),
                    kind="waiver" if name == "Waived" else "refund",
                    seq=version - 1,
                    component=e.get("component"),
                )
            )
        elif name == "Reversed":
            reversed_keys.add(e["reverses"])
        elif name == "Scored":
            score, model_version, decision = _value(e["score"]), e["model_version"], e["decision"]
            if e["terms"]:
                fields = {k: _value(v) for k, v in e["terms"].items()}
                terms = Terms(**{**fields, "allocation_order": tuple(fields["allocation_order"])})
        elif name == "Funded":
            funded_on = _value(e["value_date"])
        elif name == "WrittenOff":
            written_off_on = _value(e["value_date"])
    return _Facts(
        score=score,
        model_version=model_version,
        decision=decision,
        terms=terms,
        funded_on=funded_on,
        movements=tuple(m for m in money_in if m.key not in reversed_keys),
        written_off_on=written_off_on,
    )


def borrower_rows(loans: list[_LoanHistory], as_of: date, known_at: datetime) -> Iterator[dict[str, Any]]:
    """One borrower's rows, in the order their applications were recorded."""
    applications = sorted(
        ((loan.recorded_at, loan.loan_id, loan) for loan in loans if loan.recorded_at <= known_at),
        key=lambda a: (a[0], a[1]),
    )
    for i, (recorded_at, loan_id, loan) in enumerate(applications):
        applied = loan.applied
        applied_at = _value(applied["occurred_at"])
        application_date = applied_at.astimezone(SHANGHAI).date()
        if application_date > as_of:
            continue
        earlier = [other for t, _, other in applications[:i] if t < recorded_at]
        row: dict[str, Any] = {
            "loan_id": loan_id,
            "borrower_id": applied["borrower_id"],
            "applied_at": applied_at,
            "application_date": application_date,
            "requested_principal": _value(applied["principal"]),
            "term_days": applied["term_days"],
            "product": applied["product"],
            "channel": applied["channel"],
            **_history(earlier, recorded_at, application_date),
            "days_since_last_loan": None,
        }
        if earlier:
            previous = _value(earlier[-1].applied["occurred_at"]).astimezone(SHANGHAI).date()
            row["days_since_last_loan"] = (application_date - previous).days
        known = loan.known(known_at)
        facts = loan.facts(known)
        row.update(
            {
                "score": None if facts.score is None else float(facts.score),
                "model_version": facts.model_version,
                "decision": facts.decision or "pending",
                "funded": facts.funded_on is not None and facts.funded_on <= as_of,
                "due_date": None,
                **_labels(loan, known, as_of),
            }
        )
        if facts.terms is not None and facts.funded_on is not None:
            row["due_date"] = facts.terms.due_date(facts.funded_on)
        yield row


def _history(earlier: list[_LoanHistory], recorded_at: datetime, on: date) -> dict[str, Any]:
    """The earlier loans as known strictly before ``recorded_at``, valued at the end of ``on``."""
    prior = repaid_on_time = worst_dpd = 0
    outstanding = ZERO
    for other in earlier:
        known = other.known(recorded_at, strictly_before=True)
        loan = other.facts(known)
        if loan.terms is None or loan.funded_on is None or loan.funded_on > on:
            continue
        prior += 1
        due = loan.terms.due_date(loan.funded_on)
        # Settled stays settled (nothing accrues on nothing), so a settlement already seen for the
        # same known events answers every later date without valuing the loan again.
        settled_on = other.settled_by(known, on)
        if settled_on is None:
            p = loan.position(on)
            other.saw(known, p)
            settled_on = p.settled_on
            if loan.written_off_on is None or loan.written_off_on > on:
                outstanding += p.total
        if settled_on is not None and settled_on <= due:
            repaid_on_time += 1
        last_unpaid = on if settled_on is None else min(on, settled_on - timedelta(days=1))
        worst_dpd = max(worst_dpd, (last_unpaid - due).days)
    return {
        "prior_loans": prior,
        "prior_repaid_on_time": repaid_on_time,
        "prior_worst_dpd": max(0, worst_dpd),
        "outstanding_at_application": outstanding,
    }


def _labels(loan: _LoanHistory, known: int, as_of: date) -> dict[str, Any]:
    empty = {
        "label_matured": False,
        "first_payment_default": None,
        "ever_30dpd_60d": None,
        "repaid_on_time": None,
        "loss_amount": None,
    }
    facts = loan.facts(known)
    if facts.terms is None or facts.funded_on is None or facts.funded_on > as_of:
        return empty
    due = facts.terms.due_date(facts.funded_on)
    if as_of < due + timedelta(days=MATURE_AFTER_DAYS):
        return empty
    now = facts.position(as_of)
    loan.saw(known, now)  # the borrower's later applications value this loan again, often as known now
    # A position re-derives every earlier day the same way (movements in the same order, the
    # same nights accrued), so the settlement day seen as of ``as_of`` is the one seen as of any
    # earlier day; from it on nothing is owed and nothing accrues, so no day after it is past due.
    settled_on = now.settled_on

    def reached(threshold: int) -> bool:
        day = due + timedelta(days=threshold)
        if settled_on is not None and settled_on <= day:
            return False
        return facts.position(day).dpd >= threshold

    return {
        "label_matured": True,
        "first_payment_default": reached(FPD_DAYS),
        "ever_30dpd_60d": reached(EVER_DPD),
        "repaid_on_time": settled_on is not None and settled_on <= due,
        "loss_amount": loss(now).net,
    }


def write(
    rows_in: Iterator[dict[str, Any]], path: str, fmt: str, as_of: date, known_at: datetime, batch_rows: int = 10_000
) -> int:
    """Stream rows to Parquet (each column described in the schema) or CSV; return how many."""
    if fmt == "csv":
        return _write_csv(rows_in, path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "string": pa.string(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "int": pa.int32(),
        "bool": pa.bool_(),
        "money": pa.decimal128(14, 2),
        "float": pa.float64(),
    }
    schema = pa.schema(
        [pa.field(c.name, types[c.kind], metadata={"description": c.description, "kind": c.kind}) for c in COLUMNS],
        metadata={
            "as_of": as_of.isoformat(),
            "known_at": known_at.isoformat(),
            "produced_by": "ledger dataset export (loan-ledger)",
            "dictionary": "docs/datasets.md",
        },
    )
    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows_in:
            batch.append(row)
            if len(batch) >= batch_rows:
                writer.write_table(pa.Table.from_pylist(batch, schema))
                n += len(batch)
                batch = []
        writer.write_table(pa.Table.from_pylist(batch, schema))
        n += len(batch)
    return n


def _write_csv(rows_in: Iterator[dict[str, Any]], path: str) -> int:
    import csv

    n = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([c.name for c in COLUMNS])
        for row in rows_in:
            writer.writerow([_text(row[c.name], c.kind) for c in COLUMNS])
            n += 1
    return n


def _text(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "money":
        return f"{value:.2f}"
    if kind in ("date", "timestamp"):
        text: str = value.isoformat()
        return text
    if kind == "bool":
        return "true" if value else "false"
    return str(value)
