"""Human output of `ledger loan show`: plain figures, every time with its zone, no Python reprs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

# Shown in their own columns or in the header line.
_SHOWN_APART = {"version", "type", "recorded_at", "occurred_at", "idempotency_key", "loan_id"}


def human(value: Any) -> str:
    """One value as a person reads it: amounts and rates as written, times with their zone."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return moment(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return ", ".join(f"{k} {human(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return ",".join(human(v) for v in value)
    return str(value)


def moment(value: datetime) -> str:
    """``2026-03-01 09:00:00 +08:00``, or ``... UTC`` for a UTC time: never a time without its zone."""
    offset = value.utcoffset()
    if offset is None:
        return value.strftime("%Y-%m-%d %H:%M:%S") + " (no zone)"
    if not offset:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = value.strftime("%Y-%m-%d %H:%M:%S %z")
    return text[:-2] + ":" + text[-2:]


def loan_lines(view: dict[str, Any]) -> Iterator[str]:
    """The head of `loan show`: where the loan stands as of the date, its terms, what is owed."""
    asked = f"as of {view['as_of']}"
    if view.get("known_at"):
        asked += f", as known at {moment(view['known_at'])}"
    yield (
        f"loan {view['loan_id']}  state {view['state']}  bank {view['bank'] or '-'}  "
        f"due {view['due_date'] or '-'}  DPD {view['dpd']}  bucket {view['bucket']}"
        + (f"  collector {view['agency']}" if view.get("agency") else "")
        + f"  ({asked})"
    )
    t = view.get("terms")
    if t:
        yield (
            f"  terms    principal {t['principal']}  {t['term_days']} days  daily rate {t['daily_rate']}  "
            f"fee {t['fee']}  penalty rate {t['penalty_daily_rate']}  grace {t['grace_days']} days  "
            f"pays {', '.join(t['allocation_order'])}"
        )
        cap = view.get("ceiling", {}).get("cost_cap") or t.get("cost_cap")
        since = f" in force since {t['cost_cap_since']}" if t.get("cost_cap_since") else ""
        judged = "" if t.get("cost_cap") else " (approved before caps were recorded)"
        yield (f"  pricing  annualised cost {_percent(t.get('annualised_cost'))}  cap {_percent(cap)}{since}{judged}")
    b = view["balances"]
    yield (
        f"  owed     principal {b['principal']}  interest {b['interest']}  fee {b['fee']}  "
        f"penalty {b['penalty']}  overpayment {b['overpayment']}  total {b['total']}"
    )
    c, ceiling = view.get("capped"), view.get("ceiling")
    if c and ceiling:
        yield (
            f"  ceiling  {ceiling['ceiling']} (cap x principal-days {ceiling['principal_days']} / 365)  "
            f"capped interest {c['interest']}  fee {c['fee']}  penalty {c['penalty']}  total {c['total']}"
        )
    w = view.get("waived")
    if (w and w["total"] != "0.00") or view.get("refunded", "0.00") != "0.00":
        waived = "  ".join(f"{k} {v}" for k, v in (w or {}).items() if k != "total" and v != "0.00")
        yield f"  waived   {waived or 'nothing'}  refunded {view.get('refunded', '0.00')}"
    yield "  history  (occurred: the sender's time and zone; recorded: when the ledger stored it)"


def _percent(rate: Any) -> str:
    """``0.312857`` as ``31.29%``; ``-`` when unknown."""
    if rate is None:
        return "-"
    return f"{Decimal(str(rate)) * 100:.2f}%"


def event_line(event: dict[str, Any]) -> str:
    detail = "  ".join(f"{k} {human(v)}" for k, v in event.items() if k not in _SHOWN_APART and v not in (None, {}, []))
    return (
        f"  v{event['version']:<3} {event['type']:<11} occurred {moment(event['occurred_at'])}  "
        f"recorded {moment(event['recorded_at'])}  key {event['idempotency_key']}  {detail}".rstrip()
    )
