"""Read models built on the fly from one loan's events: what `ledger loan show` prints."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from domain.loan import SHANGHAI, Loan
from domain.money import ZERO, fmt
from domain.terms import annualised_cost_rate

EVENT_TYPES = {
    "Applied": "applied",
    "Scored": "scored",
    "Funded": "funded",
    "Repaid": "repaid",
    "Collected": "collected",
    "Overdue": "overdue",
    "WrittenOff": "written_off",
    "Reversed": "reversed",
    "Assigned": "assigned",
    "Recalled": "recalled",
}
_INTERNAL = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def today_in_shanghai() -> date:
    return datetime.now(SHANGHAI).date()


def event_record(e: Any) -> dict[str, Any]:
    body = {k: v for k, v in vars(e).items() if k not in _INTERNAL}
    return {
        "version": e.originator_version,
        "type": EVENT_TYPES.get(type(e).__name__, type(e).__name__),
        "recorded_at": e.timestamp,
        **body,
    }


def loan_view(loan: Loan, events: list[Loan.Event], as_of: date, known_at: datetime | None) -> dict[str, Any]:
    balances = {"principal": ZERO, "interest": ZERO, "fee": ZERO, "penalty": ZERO, "overpayment": ZERO, "total": ZERO}
    dpd, bucket, due_date = 0, "current", None
    if loan.terms is not None and loan.funded_on is not None:
        due_date = loan.terms.due_date(loan.funded_on)
        if as_of >= loan.funded_on:
            p = loan.position(as_of)
            balances = {**p.outstanding.as_dict(), "overpayment": p.overpayment, "total": p.total}
            dpd, bucket = p.dpd, p.bucket
    terms = None
    if loan.terms is not None:
        t = loan.terms
        terms = {
            "principal": fmt(t.principal),
            "term_days": t.term_days,
            "daily_rate": str(t.daily_rate),
            "fee": fmt(t.fee),
            "penalty_daily_rate": str(t.penalty_daily_rate),
            "grace_days": t.grace_days,
            "allocation_order": list(t.allocation_order),
            # the pricing as judged at approval: its annualised cost and the cap then in force
            "annualised_cost": f"{annualised_cost_rate(t):.6f}",
            "cost_cap": None if t.cost_cap is None else str(t.cost_cap),
            "cost_cap_since": t.cost_cap_since,
        }
    return {
        "loan_id": loan.loan_id,
        "as_of": as_of,
        "known_at": known_at,
        "state": loan.state_as_of(as_of),
        "borrower_id": loan.borrower_id,
        "product": loan.product,
        "bank": loan.bank,
        "funded_on": loan.funded_on,
        "due_date": due_date,
        "dpd": dpd,
        "bucket": bucket,
        "score": loan.score,
        "model_version": loan.model_version,
        "terms": terms,
        "balances": {k: fmt(v) for k, v in balances.items()},
        "written_off_on": loan.written_off_on,
        # who collects on the date: the agency holding the loan then, else inhouse (None before funding)
        "agency": loan.collector_on(as_of) if loan.funded_on is not None and as_of >= loan.funded_on else None,
        "events": [event_record(e) for e in events],
    }


def show_loan(
    app: Any,
    loan_id: str,
    as_of: date,
    known_at: datetime | None,
    visible: Callable[[Loan], bool] | None = None,
) -> dict[str, Any] | None:
    """`loan show` (the CLI and ``GET /v1/loans/{id}``): the view of one read of the loan's stream
    (``Ledger.loan_with_events``), or None when the ledger holds no such loan (known at ``known_at``)
    or, with ``visible``, none the caller may see (a party's token: another party's loan is unknown)."""
    loan, events = app.loan_with_events(loan_id, known_at)
    if loan is None or (visible is not None and not visible(loan)):
        return None
    return loan_view(loan, events, as_of, known_at)
