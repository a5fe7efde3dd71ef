"""`ledger events export`: the audit trail as rows an auditor's own tools can read.

One row per stored event in notification (recording) order, with the recorded time
in UTC (labelled so), the occurred time as the command gave it, the value date,
the amount where there is one, the event's chain hash and the hash it chains to.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import StoredEvent

from domain.loan import loan_uuid
from eventstore.audit import loan_id_of
from projections.loan_view import EVENT_TYPES
from projections.source import EventLog

PAGE = 2000
COLUMNS = (
    "notification_id",
    "loan_id",
    "version",
    "type",
    "recorded_at_utc",
    "occurred_at",
    "value_date",
    "amount",
    "idempotency_key",
    "hash",
    "previous_hash",
    "data",
)
_INTERNAL = {"originator_id", "originator_version", "timestamp", "originator_topic"}
_VALUE_DATES = ("value_date", "as_of")  # overdue marks carry the day they were taken as of


def export_rows(
    app: EventLog,
    loan_id: str | None = None,
    recorded_from: datetime | None = None,
    recorded_to: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Rows recorded in [recorded_from, recorded_to), of one loan or all, in recording order."""
    names: dict[Any, str] = {}
    oid = loan_uuid(loan_id) if loan_id else None
    after = 0
    while page := app.recorder.audit_export_page(after, PAGE, oid):
        after = page[-1][0]
        for nid, stream, version, topic, state, hash_hex, previous in page:
            if version == 1:
                names[stream] = loan_id_of(state) or stream.hex
            event: Any = app.mapper.to_domain_event(StoredEvent(stream, version, topic, state))
            recorded = event.timestamp.astimezone(UTC)
            if (recorded_from and recorded < recorded_from) or (recorded_to and recorded >= recorded_to):
                continue
            body = {k: v for k, v in vars(event).items() if k not in _INTERNAL}
            yield {
                "notification_id": nid,
                "loan_id": loan_id or names.get(stream, stream.hex),
                "version": version,
                "type": EVENT_TYPES.get(type(event).__name__, type(event).__name__),
                "recorded_at_utc": recorded,
                "occurred_at": body.get("occurred_at"),
                "value_date": next((body[k] for k in _VALUE_DATES if body.get(k) is not None), None),
                "amount": body.get("amount"),
                "idempotency_key": body.get("idempotency_key"),
                "hash": hash_hex,
                "previous_hash": previous if version > 1 else None,
                "data": body,
            }
