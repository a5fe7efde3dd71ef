"""Read models built on the fly from one loan's events: what `ledger loan show` prints."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from domain.loan import SHANGHAI, Loan
from domain.money import ZERO, fmt
from domain.position import cost_cap_of
from domain.terms import annualised_cost_rate
from projections.source import EventLog

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
    "Waived": "waived",
    "Refunded": "refunded",
    "Remitted": "remitted",
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
    """The loan as of ``as_of`` (as known at ``known_at``: the caller passes the loan and events known then).

    No figure or date comes from a fact valued after ``as_of``: before the funding date there is no
    bank, funding or due date; before the write-off date no write-off. The event history is the
    whole record known at ``known_at``, each event with its own value date.
    """
    balances = {"principal": ZERO, "interest": ZERO, "fee": ZERO, "penalty": ZERO, "overpayment": ZERO, "total": ZERO}
    capped = {"penalty": ZERO, "interest": ZERO, "fee": ZERO}
    waived = {"penalty": ZERO, "interest": ZERO, "fee": ZERO, "principal": ZERO}
    refunded = principal_days = limit = ZERO
    dpd, bucket, due_date = 0, "current", None
    funded = loan.terms is not None and loan.funded_on is not None and loan.funded_on <= as_of
    if funded and loan.terms is not None and loan.funded_on is not None:
        due_date = loan.terms.due_date(loan.funded_on)
        p = loan.position(as_of)
        balances = {**p.outstanding.as_dict(), "overpayment": p.overpayment, "total": p.total}
        capped = {"penalty": p.capped.penalty, "interest": p.capped.interest, "fee": p.capped.fee}
        waived = p.waived.as_dict()
        refunded, principal_days, limit = p.refunded, p.principal_days, p.ceiling
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
    written_off_on = loan.written_off_on if loan.written_off_on is not None and loan.written_off_on <= as_of else None
    cost_cap = None if loan.terms is None else cost_cap_of(loan.terms)
    return {
        "loan_id": loan.loan_id,
        "as_of": as_of,
        "known_at": known_at,
        "state": loan.state_as_of(as_of),
        "borrower_id": loan.borrower_id,
        "product": loan.product,
        "bank": loan.bank if funded else None,
        "funded_on": loan.funded_on if funded else None,
        "due_date": due_date,
        "dpd": dpd,
        "bucket": bucket,
        "score": loan.score,
        "model_version": loan.model_version,
        "terms": terms,
        "balances": {k: fmt(v) for k, v in balances.items()},
        # the cost ceiling as of the date: round_down(cap x principal-days / 365), and what it holds back
        "ceiling": {
            "cost_cap": None if cost_cap is None else str(cost_cap),
            "principal_days": fmt(principal_days),
            "ceiling": fmt(limit),
        },
        "capped": {**{k: fmt(v) for k, v in capped.items()}, "total": fmt(sum(capped.values(), ZERO))},
        "waived": {**{k: fmt(v) for k, v in waived.items()}, "total": fmt(sum(waived.values(), ZERO))},
        "refunded": fmt(refunded),
        "written_off_on": written_off_on,
        # who collects on the date: the agency holding the loan then, else inhouse (None before funding)
        "agency": loan.collector_on(as_of) if loan.funded_on is not None and as_of >= loan.funded_on else None,
        "events": [event_record(e) for e in events],
    }


def show_loan(
    app: EventLog,
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
