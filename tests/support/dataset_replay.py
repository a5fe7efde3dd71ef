"""The dataset as the ledger first computed it: every loan replayed through the Loan aggregate.

Kept only as the reference the production path (projections/dataset.py) is checked
against, row for row: slow (each earlier loan is replayed and valued again for
every later application) but plainly the definition in docs/datasets.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from domain.loan import SHANGHAI, Loan, loan_uuid
from domain.money import ZERO
from domain.outcomes import EVER_DPD, loss, reached_dpd
from ledger.app import Ledger
from projections import runner
from projections.dataset import EVER_WINDOW_DAYS, FPD_DAYS, MATURE_AFTER_DAYS

BORROWERS_PER_CHUNK = 500


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
