"""Days past due and delinquency buckets."""

from __future__ import annotations

from datetime import date

BUCKETS = ("current", "M1", "M2", "M3", "M3+")
DEFAULT_WRITE_OFF_DPD = 90


def days_past_due(as_of: date, due_date: date, unpaid_due: bool) -> int:
    """(as_of - due_date) in days while anything due by due_date is unpaid, else 0."""
    if not unpaid_due or as_of <= due_date:
        return 0
    return (as_of - due_date).days


def bucket(dpd: int) -> str:
    if dpd <= 0:
        return "current"
    if dpd <= 30:
        return "M1"
    if dpd <= 60:
        return "M2"
    if dpd <= 90:
        return "M3"
    return "M3+"
