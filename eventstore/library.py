"""Where the ledger reaches into the ``eventsourcing`` library's private internals (written against
9.5.6, pinned in pyproject.toml and requirements.lock), in one list, each pinned by
tests/test_library_adapter.py so that an upgrade which moves one fails a test, not the books.

- ``commit``: the library's ``Application.save`` from its collected events on. The ledger collects
  a batch's events itself (ledger/app.py ``Ledger.save``, ``Ledger._save``) and must then record,
  snapshot and notify exactly as the library does, in one transaction.
- ``RECORDER_HOOKS``: the private methods of the library's recorders that the ledger's recorders
  (eventstore/store.py, audit_store.py, commit_time.py) override or call. The hash chain, the
  recorded time and the append-only triggers are written from inside them: if the library stopped
  calling one, events would be stored without their chain, silently. ``_lock_table`` and
  ``_notify_channel`` are listed because the ledger's PostgreSQL insert does what they do, from the
  library's own ``lock_table_statements`` and ``channel_name``, in one query (store.py
  ``_lock_and_notify``; tests/test_write_path.py holds the lock and the NOTIFY to acting).
- The stored form (the transcoder's JSON, which commit_time.py splices a recorded time into and
  the dataset's facts decode with the library's own transcoder, store.py ``event_transcoder``) is
  pinned byte for byte by tests/test_stored_bytes.py.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import Recording
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

LIBRARY_VERSION = "9.5.6"

# (the library's class, its private method, the public method of that class that calls it)
RECORDER_HOOKS: tuple[tuple[type, str, str], ...] = (
    (SQLiteApplicationRecorder, "_create_table", "create_table"),
    (SQLiteApplicationRecorder, "_insert_events", "insert_events"),
    (PostgresApplicationRecorder, "_create_table", "create_table"),
    (PostgresApplicationRecorder, "_insert_events", "insert_events"),
    (PostgresApplicationRecorder, "_insert_stored_events", "insert_events"),
    (PostgresApplicationRecorder, "_lock_table", "_insert_stored_events"),
    (PostgresApplicationRecorder, "_notify_channel", "_insert_stored_events"),
    (PostgresApplicationRecorder, "_fetch_ids_after_insert_events", "insert_events"),
)


def commit(app: Application[UUID], processing_event: ProcessingEvent[UUID], **kwargs: Any) -> list[Recording[UUID]]:
    """The library's save from its collected events on: one transaction, in the events' order."""
    processing_event.saved_kwargs.update(kwargs)
    recordings = app._record(processing_event)
    app._take_snapshots(processing_event)
    app._notify(recordings)
    app.notify(processing_event.events)  # deprecated, but the library still calls it
    return recordings
