"""The dataset as the ledger first computed it: every loan replayed through the Loan aggregate.

Kept only as the reference the production path (projections/dataset.py) is checked
against, row for row: slow (each earlier loan is replayed and valued again for
every later application) but plainly the definition in docs/datasets.md: an earlier
loan's event counts for an application when it precedes it in the log and occurred
before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP
from decimal import Decimal as D
from typing import Any

from domain.loan import SHANGHAI, Loan, loan_uuid
from domain.money import ZERO
from domain.outcomes import EVER_DPD, EVER_WINDOW_DAYS, FPD_DAYS, loss, reached_dpd
from domain.terms import annualised_cost_rate
from ledger.app import Ledger
from projections import runner

BORROWERS_PER_CHUNK = 500


def rows(app: Ledger, as_of: date, known_at: datetime) -> Iterator[dict[str, Any]]:
    """The dataset's rows, streamed borrower by borrower (ordered by borrower, then place in the log)."""
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
        for stored in app.recorder.notifications_of(list(by_uuid)):
            events[by_uuid[stored.originator_id]].append((stored.id, app.mapper.to_domain_event(stored)))
        for borrower_id in borrowers:
            yield from borrower_rows({loan_id: events[loan_id] for loan_id in loans_of[borrower_id]}, as_of, known_at)


def borrower_rows(loans: dict[str, list], as_of: date, known_at: datetime) -> Iterator[dict[str, Any]]:
    """One borrower's rows; ``loans`` maps each loan id to its (notification id, event) in version order."""
    applications = sorted(
        (events[0][0], loan_id) for loan_id, events in loans.items() if events and events[0][1].timestamp <= known_at
    )
    for place, loan_id in applications:
        applied = loans[loan_id][0][1]
        application_date = applied.occurred_at.astimezone(SHANGHAI).date()
        if application_date > as_of:
            continue

        def seen(nid: int, e: Any, place: int = place, moment: datetime = applied.occurred_at) -> bool:
            return nid < place and e.occurred_at < moment

        earlier = [other for p, other in applications if seen(p, loans[other][0][1])]
        row: dict[str, Any] = {
            "loan_id": loan_id,
            "borrower_id": applied.borrower_id,
            "applied_at": applied.occurred_at.astimezone(UTC),
            "application_date": application_date,
            "requested_principal": applied.principal,
            "term_days": applied.term_days,
            "product": applied.product,
            "channel": applied.channel,
            "prior_applications": len(earlier),
            **_history(
                [_replay([e for nid, e in loans[other] if seen(nid, e)]) for other in earlier], application_date
            ),
        }
        loan = _replay([e for _, e in loans[loan_id] if e.timestamp <= known_at])
        terms = loan.terms
        row.update(
            {
                "score": None if loan.score is None else float(loan.score),
                "model_version": loan.model_version,
                "decision": loan.decision or "pending",
                "approved_principal": terms and terms.principal,
                "approved_term_days": terms and terms.term_days,
                "daily_rate": terms and terms.daily_rate,
                "fee": terms and terms.fee,
                "penalty_daily_rate": terms and terms.penalty_daily_rate,
                "annualised_cost": terms and annualised_cost_rate(terms).quantize(D("0.000001"), ROUND_HALF_UP),
                "funded": loan.funded_on is not None and loan.funded_on <= as_of,
                "due_date": None,
                **_labels(loan, as_of),
            }
        )
        if loan.terms is not None and loan.funded_on is not None:
            row["due_date"] = loan.terms.due_date(loan.funded_on)
        yield row


def _replay(events: list) -> Loan:
    """The aggregate after these of its events (some may be skipped: the versions are bridged)."""
    loan = None
    for e in events:
        if loan is not None:
            loan.version = e.originator_version - 1
        loan = e.mutate(loan)
    assert loan is not None
    return loan


def _history(earlier: list[Loan], on: date) -> dict[str, Any]:
    prior = repaid_on_time = worst_dpd = 0
    outstanding = ZERO
    funded_days = []
    for loan in earlier:
        if loan.terms is None or loan.funded_on is None or loan.funded_on > on:
            continue
        prior += 1
        funded_days.append(loan.funded_on)
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
        "days_since_last_funded_loan": (on - max(funded_days)).days if funded_days else None,
        "outstanding_at_application": outstanding,
    }


def _labels(loan: Loan, as_of: date) -> dict[str, Any]:
    labels: dict[str, Any] = {
        "fpd_matured": False,
        "label_matured": False,
        "first_payment_default": None,
        "repaid_on_time": None,
        "ever_30dpd_60d": None,
        "loss_amount": None,
    }
    if loan.terms is None or loan.funded_on is None or loan.funded_on > as_of:
        return labels
    due = loan.terms.due_date(loan.funded_on)
    if as_of >= due + timedelta(days=FPD_DAYS):
        labels["fpd_matured"] = True
        labels["first_payment_default"] = reached_dpd(loan, due + timedelta(days=FPD_DAYS), FPD_DAYS) is not None
        labels["repaid_on_time"] = loan.position(due).settled_on is not None
    if as_of >= due + timedelta(days=EVER_WINDOW_DAYS):
        labels["label_matured"] = True
        labels["ever_30dpd_60d"] = reached_dpd(loan, due + timedelta(days=EVER_WINDOW_DAYS), EVER_DPD) is not None
        labels["loss_amount"] = loss(loan.position(as_of)).net
    return labels
