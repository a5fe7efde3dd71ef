"""The read side's port to the store: the log, a stream's events, the way to decode them, and the
views' own database, and nothing that writes. A projection never appends, erases or records.

The CLI and the API pass the concrete ``ledger.app.Ledger``, which meets it; projections/ imports
nothing of ledger/ (tests/test_house.py checks). Every member is read-only (a property), so the
write side's wider recorder and settings still meet the narrower types here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification, StoredEvent

from domain.loan import Loan
from eventstore.audit_store import ExportRow


class LogReader(Protocol):
    """The reads of the store's recorder a projection uses: the log in order, some streams whole."""

    @property
    def datastore(self) -> Any: ...  # the views' database: the same store, its own tables

    def max_notification_id(self) -> int | None: ...

    def select_notifications(
        self, start: int | None, limit: int, stop: int | None = None, topics: Sequence[str] = ()
    ) -> Sequence[Notification]: ...

    def select_events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]: ...

    def notifications_of(self, originator_ids: Sequence[UUID]) -> list[Notification]: ...

    def audit_export_page(self, after_nid: int, limit: int, originator_id: UUID | None) -> list[ExportRow]: ...


class StreamReader(Protocol):
    """One stream rebuilt, as at a version (the first event of a bank's reconciliation stream)."""

    def get(self, aggregate_id: UUID, *, version: int | None = None) -> Any: ...


class ReadSettings(Protocol):
    """What a reader needs of the deployment's settings: where the store is, how long to ride out a
    lost connection, how often to retry a lost race."""

    @property
    def db_url(self) -> str: ...

    @property
    def retry_seconds(self) -> float: ...

    @property
    def max_retries(self) -> int: ...


class EventLog(Protocol):
    @property
    def recorder(self) -> LogReader: ...

    @property
    def mapper(self) -> Mapper[UUID]: ...  # stored events to domain events

    @property
    def settings(self) -> ReadSettings: ...

    @property
    def repository(self) -> StreamReader: ...

    def notifications(self, *event_classes: type, page: int = 5000) -> Iterator[Notification]: ...

    def loan_with_events(
        self, loan_id: str, known_at: datetime | None = None
    ) -> tuple[Loan | None, list[Loan.Event]]: ...

    def close(self) -> None: ...  # (a rebuild's part closes the log it opened)
