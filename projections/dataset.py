"""Risk-model training rows: one per application, features as known before the decision, matured labels.

Leakage is ruled out by construction, not by care:
- a row's features take an event of the borrower's other loans only when it
  precedes the application in the log (notification order) AND occurred
  before it (``occurred_at``), valued at the application's own business date.
  The log stores a commit's events in the order of its commands
  (ledger/app.py), so both tests give the same answer however the history was
  cut into commits: one line per run, one file, the API's batches. Recorded
  time alone could not: a commit's events share one recorded time, and a late
  callback that arrived after the application but happened before it would
  count in one batching and not in another;
- its labels take the loan only from the events recorded by ``known_at`` and
  only value dates up to ``as_of``, each given only once its own window has
  closed by ``as_of`` (``fpd_matured``: due date + 7; ``label_matured``: due
  date + 60);
- applications recorded after ``known_at`` are not rows.
So the same (as_of, known_at) gives identical rows whatever is appended later.

Borrowers are read a chunk at a time (their loans' events in one query), so
memory follows the chunk, not the book; the next chunk is read on a thread while
the rows of this one are built (projections/read_ahead.py), so the database's
work overlaps Python's. Events are decoded once, straight from
their stored JSON, into the few facts the rows use (no Loan aggregate:
projections/dataset_facts.py; the files are written by projections/dataset_writers.py), and
balances come from the domain's ``position_as_of``: the same rules as every
other figure, applied as few times as the rows need. tests/test_dataset.py
checks the rows against replaying each loan through the aggregate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from domain.loan import SHANGHAI
from domain.money import ZERO
from domain.outcomes import EVER_DPD, EVER_WINDOW_DAYS, FPD_DAYS, loss, past_due_after
from domain.terms import Terms, annualised_cost_rate
from eventstore.audit_store import stream_id
from projections import runner
from projections.dataset_facts import LoanFacts, LoanHistory
from projections.read_ahead import read_ahead
from projections.source import EventLog

MATURE_AFTER_DAYS = EVER_WINDOW_DAYS  # the 60-day labels' window has closed by due + 60
FPD_MATURE_AFTER_DAYS = FPD_DAYS  # first-payment default (and repaid on time) are known by due + 7
BORROWERS_PER_CHUNK = 500
COST_PLACES = Decimal("0.000001")  # the annualised cost to 0.0001 %

ROLES = {
    "id": "keys and time: to join, group and split by time; not a model input",
    "feature": "known before the decision: a model input",
    "decision": "set by the risk engine at the decision (the model's score and version, approve or decline, "
    "the approved terms): known only because a model decided; not an input to a new model",
    "outcome": "what happened after the decision, other than a target: funding, due date, which label windows "
    "have closed",
    "label": "targets, filled only once their window has closed",
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # string | date | timestamp | int | bool | money | rate | float
    role: str  # one of ROLES
    description: str


COLUMNS = (
    Column("loan_id", "string", "id", "The application's loan id."),
    Column("borrower_id", "string", "id", "The applicant."),
    Column("applied_at", "timestamp", "id", "When the application happened (its occurred_at, in UTC)."),
    Column("application_date", "date", "id", "The application's business date in Asia/Shanghai."),
    Column("requested_principal", "money", "feature", "Principal applied for, CNY."),
    Column("term_days", "int", "feature", "Term applied for, days."),
    Column("product", "string", "feature", "Product applied for."),
    Column("channel", "string", "feature", "Acquisition channel."),
    Column(
        "prior_applications",
        "int",
        "feature",
        "The borrower's earlier applications, whatever their decision, as known at this application.",
    ),
    Column("prior_loans", "int", "feature", "Of those, the ones funded by the application date, as known then."),
    Column("prior_repaid_on_time", "int", "feature", "Of those, how many were fully paid by their due date."),
    Column(
        "prior_worst_dpd",
        "int",
        "feature",
        "Worst days past due over the earlier loans up to the application date, "
        "as known then (0 with no earlier loan).",
    ),
    Column(
        "days_since_last_funded_loan",
        "int",
        "feature",
        "Days from the funding date of the borrower's latest earlier funded loan to this application "
        "(null when there is none; declined applications are not loans).",
    ),
    Column(
        "outstanding_at_application",
        "money",
        "feature",
        "What the borrower owed on earlier loans at the application date, as known then, CNY.",
    ),
    Column("score", "float", "decision", "The risk model's score (0..1) for this application."),
    Column("model_version", "string", "decision", "The scoring model's version."),
    Column("decision", "string", "decision", "approved, declined, or pending (not yet scored as known at the export)."),
    Column("approved_principal", "money", "decision", "Principal approved, CNY (null unless approved)."),
    Column("approved_term_days", "int", "decision", "Term approved, days."),
    Column("daily_rate", "rate", "decision", "Interest rate a day, as approved."),
    Column("fee", "money", "decision", "Flat service fee, as approved, CNY."),
    Column("penalty_daily_rate", "rate", "decision", "Penalty rate a day on overdue principal, as approved."),
    Column(
        "annualised_cost",
        "rate",
        "decision",
        "(interest over the term + fee) / principal x 365 / term, of the approved terms, to 6 places.",
    ),
    Column("funded", "bool", "outcome", "Funded by the as-of date, as known at the export."),
    Column("due_date", "date", "outcome", "Due date of the funded loan."),
    Column(
        "fpd_matured",
        "bool",
        "outcome",
        f"The first-payment window has closed by the export's as-of date (due date + {FPD_DAYS} days): "
        "first_payment_default and repaid_on_time are filled.",
    ),
    Column(
        "label_matured",
        "bool",
        "outcome",
        f"The {EVER_WINDOW_DAYS}-day window has closed by the export's as-of date "
        f"(due date + {MATURE_AFTER_DAYS} days): ever_30dpd_60d and loss_amount are filled. "
        "Declined applications never have labels.",
    ),
    Column(
        "first_payment_default",
        "bool",
        "label",
        f"Principal, interest or fee still unpaid at the end of due date + {FPD_DAYS} days.",
    ),
    Column("repaid_on_time", "bool", "label", "Fully paid (principal, interest, fee) by the due date."),
    Column(
        "ever_30dpd_60d",
        "bool",
        "label",
        f"Reached {EVER_DPD}+ days past due within {EVER_WINDOW_DAYS} days after the due date.",
    ),
    Column(
        "loss_amount",
        "money",
        "label",
        "Principal written off less money recovered after the write-off, plus principal waived "
        "before it, as of the export (0 when neither), CNY.",
    ),
)


def rows(app: EventLog, as_of: date, known_at: datetime) -> Iterator[dict[str, Any]]:
    """The dataset's rows, streamed borrower by borrower (ordered by borrower, then place in the log)."""
    runner.catch_up(app)  # the projection lists every borrower's loans
    for loans_of, events in read_ahead(_chunks(app)):
        for loan_ids in loans_of.values():
            history = [LoanHistory.decode(events[loan_id]) for loan_id in loan_ids if events[loan_id]]
            yield from borrower_rows(history, as_of, known_at)


def _chunks(app: EventLog) -> Iterator[tuple[dict[str, list[str]], dict[str, list[Notification]]]]:
    """A chunk of borrowers at a time: each one's loan ids, and every loan's stored events."""
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
        events: dict[str, list[Notification]] = {loan_id: [] for loan_id in uuids.values()}
        for stored in app.recorder.notifications_of(list(uuids)):
            events[uuids[stream_id(stored)]].append(stored)
        yield loans_of, events


def borrower_rows(loans: list[LoanHistory], as_of: date, known_at: datetime) -> Iterator[dict[str, Any]]:
    """One borrower's rows, in the order their applications were logged."""
    applications = sorted((loan for loan in loans if loan.recorded_at <= known_at), key=lambda loan: loan.place)
    for i, loan in enumerate(applications):
        applied = loan.applied
        application_date = loan.occurred_at.astimezone(SHANGHAI).date()
        if application_date > as_of:
            continue
        earlier = [other for other in applications[:i] if other.counts_for(loan)]
        row: dict[str, Any] = {
            "loan_id": loan.loan_id,
            "borrower_id": applied["borrower_id"],
            "applied_at": loan.occurred_at.astimezone(UTC),
            "application_date": application_date,
            "requested_principal": applied["principal"],
            "term_days": applied["term_days"],
            "product": applied["product"],
            "channel": applied["channel"],
            **_history(loan, earlier, application_date),
        }
        known = loan.known(known_at)
        facts = loan.facts(known)
        row.update(
            {
                "score": None if facts.score is None else float(facts.score),
                "model_version": facts.model_version,
                "decision": facts.decision or "pending",
                **_terms(facts.terms),
                "funded": facts.funded_on is not None and facts.funded_on <= as_of,
                "due_date": facts.due_date,
                **_labels(loan, known, facts, as_of),
            }
        )
        yield row


def _terms(terms: Terms | None) -> dict[str, Any]:
    if terms is None:
        return dict.fromkeys(
            ("approved_principal", "approved_term_days", "daily_rate", "fee", "penalty_daily_rate", "annualised_cost")
        )
    return {
        "approved_principal": terms.principal,
        "approved_term_days": terms.term_days,
        "daily_rate": terms.daily_rate,
        "fee": terms.fee,
        "penalty_daily_rate": terms.penalty_daily_rate,
        "annualised_cost": annualised_cost_rate(terms).quantize(COST_PLACES, ROUND_HALF_UP),
    }


def _history(application: LoanHistory, earlier: list[LoanHistory], on: date) -> dict[str, Any]:
    """The earlier loans as the application saw them, valued at the end of ``on``."""
    prior = repaid_on_time = worst_dpd = 0
    outstanding = ZERO
    last_funded: date | None = None
    for other in earlier:
        seen = other.seen_by(application)
        loan = other.facts(seen)
        if loan.due_date is None or loan.funded_on is None or loan.funded_on > on:
            continue
        prior += 1
        last_funded = loan.funded_on if last_funded is None else max(last_funded, loan.funded_on)
        due = loan.due_date
        # Settled stays settled (nothing accrues on nothing), so a settlement already seen for the
        # same events answers every later date without valuing the loan again.
        settled_on = other.settled_by(seen, on)
        if settled_on is None:
            p = loan.position(on)
            other.saw(seen, p)
            settled_on = p.settled_on
            if loan.written_off_on is None or loan.written_off_on > on:
                outstanding += p.total
        if settled_on is not None and settled_on <= due:
            repaid_on_time += 1
        last_unpaid = on if settled_on is None else min(on, settled_on - timedelta(days=1))
        worst_dpd = max(worst_dpd, (last_unpaid - due).days)
    return {
        "prior_applications": len(earlier),
        "prior_loans": prior,
        "prior_repaid_on_time": repaid_on_time,
        "prior_worst_dpd": max(0, worst_dpd),
        "days_since_last_funded_loan": None if last_funded is None else (on - last_funded).days,
        "outstanding_at_application": outstanding,
    }


def _labels(loan: LoanHistory, known: tuple[int, ...], facts: LoanFacts, as_of: date) -> dict[str, Any]:
    """The labels of ``loan`` as of ``as_of``, from ``facts``: its facts after the ``known`` events."""
    labels: dict[str, Any] = {
        "fpd_matured": False,
        "label_matured": False,
        "first_payment_default": None,
        "repaid_on_time": None,
        "ever_30dpd_60d": None,
        "loss_amount": None,
    }
    due = facts.due_date
    if due is None or facts.funded_on is None or facts.funded_on > as_of:
        return labels
    if as_of < due + timedelta(days=FPD_MATURE_AFTER_DAYS):
        return labels
    now = facts.position(as_of)
    loan.saw(known, now)  # the borrower's later applications value this loan again, often as known now
    # A position re-derives every earlier day the same way (movements in the same order, the
    # same nights accrued), so the settlement day seen as of ``as_of`` is the one seen as of any
    # earlier day; from it on nothing is owed and nothing accrues, so no day after it is past due.
    settled_on = now.settled_on
    labels.update(
        {
            "fpd_matured": True,
            "first_payment_default": past_due_after(facts.position, due, FPD_DAYS, settled_on),
            "repaid_on_time": settled_on is not None and settled_on <= due,
        }
    )
    if as_of >= due + timedelta(days=MATURE_AFTER_DAYS):
        labels.update(
            {
                "label_matured": True,
                "ever_30dpd_60d": past_due_after(facts.position, due, EVER_DPD, settled_on),
                "loss_amount": loss(now).net,
            }
        )
    return labels
