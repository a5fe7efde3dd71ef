"""Risk-model training rows: one per application, features as known before the decision, matured labels.

Leakage is ruled out by construction, not by care:
- a row's features replay the borrower's earlier loans only up to the moment
  the application was recorded (events recorded later are never looked at), at
  the application's own business date;
- its labels replay the loan only up to ``known_at`` and only value dates up to
  ``as_of``, and are given only once the longest outcome window has closed by
  ``as_of`` (``label_matured``);
- applications recorded after ``known_at`` are not rows.
So the same (as_of, known_at) gives identical rows whatever is appended later.

Borrowers are read a chunk at a time (their loans' events in one query), so
memory follows the chunk, not the book.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from domain.loan import SHANGHAI, Loan, loan_uuid
from domain.money import ZERO
from domain.outcomes import EVER_DPD, loss, reached_dpd
from ledger.app import Ledger
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
        "Principal written off less money recovered after the write-off, "
        "as of the export (0 when not written off), CNY.",
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
        borrowers = [r[0] for r in chunk]
        after = borrowers[-1]
        marks = ",".join("?" * len(borrowers))
        loans_of: dict[str, list[str]] = {}
        for borrower_id, loan_id in db.query(
            f"SELECT borrower_id, loan_id FROM proj_loans WHERE borrower_id IN ({marks}) ORDER BY borrower_id, loan_id",
            borrowers,
        ):
            loans_of.setdefault(borrower_id, []).append(loan_id)
        by_uuid = {loan_uuid(loan_id): loan_id for ids in loans_of.values() for loan_id in ids}
        events: dict[str, list] = {loan_id: [] for loan_id in by_uuid.values()}
        for stored in app.recorder.select_events_of(list(by_uuid)):
            events[by_uuid[stored.originator_id]].append(app.mapper.to_domain_event(stored))
        for borrower_id in borrowers:
            yield from borrower_rows({loan_id: events[loan_id] for loan_id in loans_of[borrower_id]}, as_of, known_at)


def borrower_rows(loans: dict[str, list], as_of: date, known_at: datetime) -> Iterator[dict[str, Any]]:
    """One borrower's rows; ``loans`` maps each of their loan ids to its events in version order."""
    applications = sorted(
        (events[0].timestamp, loan_id)
        for loan_id, events in loans.items()
        if events and events[0].timestamp <= known_at
    )
    for recorded_at, loan_id in applications:
        applied = loans[loan_id][0]
        application_date = applied.occurred_at.astimezone(SHANGHAI).date()
        if application_date > as_of:
            continue
        earlier = [(t, other) for t, other in applications if t < recorded_at]
        row: dict[str, Any] = {
            "loan_id": loan_id,
            "borrower_id": applied.borrower_id,
            "applied_at": applied.occurred_at,
            "application_date": application_date,
            "requested_principal": applied.principal,
            "term_days": applied.term_days,
            "product": applied.product,
            "channel": applied.channel,
            **_history(
                [_replay(loans[other], recorded_at, strictly_before=True) for _, other in earlier], application_date
            ),
            "days_since_last_loan": None,
        }
        if earlier:
            previous = loans[earlier[-1][1]][0].occurred_at.astimezone(SHANGHAI).date()
            row["days_since_last_loan"] = (application_date - previous).days
        loan = _replay(loans[loan_id], known_at)
        row.update(
            {
                "score": None if loan.score is None else float(loan.score),
                "model_version": loan.model_version,
                "decision": loan.decision or "pending",
                "funded": loan.funded_on is not None and loan.funded_on <= as_of,
                "due_date": None,
                **_labels(loan, as_of),
            }
        )
        if loan.terms is not None and loan.funded_on is not None:
            row["due_date"] = loan.terms.due_date(loan.funded_on)
        yield row


def _replay(events: list, moment: datetime, strictly_before: bool = False) -> Loan:
    loan = None
    for e in events:
        if e.timestamp > moment or (strictly_before and e.timestamp >= moment):
            break
        loan = e.mutate(loan)
    assert loan is not None
    return loan


def _history(earlier: list[Loan], on: date) -> dict[str, Any]:
    prior = repaid_on_time = worst_dpd = 0
    outstanding = ZERO
    for loan in earlier:
        if loan.terms is None or loan.funded_on is None or loan.funded_on > on:
            continue
        prior += 1
        p = loan.position(on)
        due = p.due_date
        if p.settled_on is not None and p.settled_on <= due:
            repaid_on_time += 1
        last_unpaid = on if p.settled_on is None else min(on, p.settled_on - timedelta(days=1))
        worst_dpd = max(worst_dpd, (last_unpaid - due).days)
        if loan.written_off_on is None or loan.written_off_on > on:
            outstanding += p.total
    return {
        "prior_loans": prior,
        "prior_repaid_on_time": repaid_on_time,
        "prior_worst_dpd": max(0, worst_dpd),
        "outstanding_at_application": outstanding,
    }


def _labels(loan: Loan, as_of: date) -> dict[str, Any]:
    empty = {
        "label_matured": False,
        "first_payment_default": None,
        "ever_30dpd_60d": None,
        "repaid_on_time": None,
        "loss_amount": None,
    }
    if loan.terms is None or loan.funded_on is None or loan.funded_on > as_of:
        return empty
    due = loan.terms.due_date(loan.funded_on)
    if as_of < due + timedelta(days=MATURE_AFTER_DAYS):
        return empty
    return {
        "label_matured": True,
        "first_payment_default": reached_dpd(loan, due + timedelta(days=FPD_DAYS), FPD_DAYS) is not None,
        "ever_30dpd_60d": reached_dpd(loan, due + timedelta(days=EVER_WINDOW_DAYS), EVER_DPD) is not None,
        "repaid_on_time": loan.position(due).settled_on is not None,
        "loss_amount": loss(loan.position(as_of)).net,
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
        return value.isoformat()
    if kind == "bool":
        return "true" if value else "false"
    return str(value)
