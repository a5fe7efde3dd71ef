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
- ``DECODE_MIRRORS``: the library's decoding of a stored event (``Mapper.to_domain_event``, the JSON
  transcoder's ``decode`` and per-object hook, its transcodings' ``decode``, ``find_id_convertor``),
  which eventstore/decode.py does again faster and must do exactly alike: its ``names`` table, the
  wrapper's two keys, the constructors, the upcasting loop, ``object.__new__``. Their source is
  pinned by digest: a library that decodes differently fails a test before it misreads the books.
- The stored form (the transcoder's JSON, which commit_time.py splices a recorded time into and
  the dataset's facts decode with the library's own transcoder, store.py ``event_transcoder``) is
  pinned byte for byte by tests/test_stored_bytes.py.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    Recording,
    UUIDAsHex,
    find_id_convertor,
)
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


# What eventstore/decode.py does again (see above), and the digest of their source in 9.5.6.
DECODE_MIRRORS: tuple[Callable[..., Any], ...] = (
    Mapper.to_domain_event,
    JSONTranscoder.decode,
    JSONTranscoder._decode_obj,
    UUIDAsHex.decode,
    DecimalAsStr.decode,
    DatetimeAsISO.decode,
    find_id_convertor,
)
DECODE_MIRRORS_SHA256 = "2fa8d50ade3d6a1fd85b6d57a011364d1e56ef6f3a6536e6921a073b21b5c306"


def source_digest(functions: tuple[Callable[..., Any], ...]) -> str:
    return hashlib.sha256("\n".join(inspect.getsource(f) for f in functions).encode()).hexdigest()


def commit(app: Application[UUID], processing_event: ProcessingEvent[UUID], **kwargs: Any) -> list[Recording[UUID]]:
    """The library's save from its collected events on: one transaction, in the events' order."""
    processing_event.saved_kwargs.update(kwargs)
    recordings = app._record(processing_event)
    app._take_snapshots(processing_event)
    app._notify(recordings)
    app.notify(processing_event.events)  # deprecated, but the library still calls it
    return recordings
