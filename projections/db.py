"""The views' database: the event store's own (SQLite file or PostgreSQL database).

Views live beside the events, reached through the store's own datastore (its
pool, its settings), so that a page's view rows and its tracking position
commit in one transaction of the same database: that is the whole of
exactly-once. The SQL itself is the store's (eventstore/sql.py): ``?`` placeholders,
tuples back, on both engines; a ViewDb adds the views' names (a rebuild's
``_next`` tables), streaming and the schema.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from eventsourcing.persistence import OperationalError
from psycopg.rows import tuple_row

from eventstore.sql import Cursor, Row, StoreSql, in_chunks, plain
from projections import schema

__all__ = ["STREAM_ROWS", "Cursor", "Row", "ViewDb", "in_chunks"]

_SCHEMA_LOCK = 0x50524F4A  # "PROJ": PostgreSQL advisory lock held while creating the views
_SCHEMA_ATTEMPTS = 5
STREAM_ROWS = 5000  # rows per fetch when a query streams (memory stays flat on a large book)


class ViewDb(StoreSql):
    def __init__(self, datastore: Any, suffix: str = ""):
        super().__init__(datastore)
        self.suffix = suffix  # REBUILD_SUFFIX: the same queries on the tables a rebuild fills

    def names(self, statement: str) -> str:
        """The statement on this ViewDb's tables (for SQL sent to the driver directly)."""
        return schema.renamed(statement, self.suffix)

    def stream(self, statement: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        """Rows a batch at a time: a server-side cursor on PostgreSQL, sqlite3's own lazy cursor."""
        if self.postgres:
            with (
                self.datastore.get_connection() as conn,
                conn.transaction(force_rollback=True),
                conn.cursor(name="proj_stream", row_factory=tuple_row) as curs,
            ):
                curs.execute(self.sql(statement), params)
                while rows := curs.fetchmany(STREAM_ROWS):
                    yield from rows
        else:
            with self.datastore.transaction(commit=False) as curs:
                sqlite_cursor = plain(curs.sqlite_cursor)
                sqlite_cursor.execute(self.sql(statement), params)
                while rows := sqlite_cursor.fetchmany(STREAM_ROWS):
                    yield from rows

    def ensure_schema(self, names: Sequence[str]) -> None:
        """Create the views (or recreate them when their version changed) and a tracking row per name."""
        for attempt in range(_SCHEMA_ATTEMPTS):
            try:
                return self._ensure_schema(names)
            except OperationalError:
                # SQLite (WAL): this transaction read the schema, then another process committed its own
                # creation before we could write; SQLite refuses the upgrade at once. Look again.
                if self.postgres or attempt == _SCHEMA_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def _ensure_schema(self, names: Sequence[str]) -> None:
        with self.transaction(commit=False) as c:
            if self._version(c) == schema.SCHEMA_VERSION and {
                r[0] for r in c.query("SELECT name FROM proj_tracking")
            } >= set(names):
                return  # the common case: a read, no write lock taken
        with self.transaction() as c:
            if self.postgres:  # one creator at a time; the others wait here, then find it done
                c.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            if self._version(c) != schema.SCHEMA_VERSION:
                for statement in schema.drop_statements() + schema.create_statements(self.postgres):
                    c.execute(statement)
                c.execute("INSERT INTO proj_meta (key, value) VALUES ('schema_version', ?)", (schema.SCHEMA_VERSION,))
            c.executemany(
                "INSERT INTO proj_tracking (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                [(name,) for name in names],
            )

    def _version(self, c: Cursor) -> str | None:
        exists = c.query(
            "SELECT to_regclass('proj_meta') IS NOT NULL"
            if self.postgres
            else "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'proj_meta'"
        )
        if not exists[0][0]:
            return None
        rows = c.query("SELECT value FROM proj_meta WHERE key = 'schema_version'")
        return rows[0][0] if rows else None
