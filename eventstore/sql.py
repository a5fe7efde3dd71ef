"""SQL on the event store's own database, written once for both engines.

Statements use ``?`` placeholders; on PostgreSQL they become ``%s``. Rows come
back as plain tuples on both. Connections are the store's own (its pool, its
settings), so the ledger's side tables (tokens) and the read models
(projections/db.py builds on this) use the same database as the events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import tuple_row

Row = tuple[Any, ...]  # one result row: portable scalars (int, str, None)
T = TypeVar("T")

# Values matched per query by in_chunks: far below SQLite's 32,766 bound variables, and a
# statement short enough that its planning stays cheap; a longer list is several queries.
IN_CHUNK = 500


def in_chunks(
    column: str, values: Sequence[T], postgres: bool = False, size: int = IN_CHUNK
) -> Iterator[tuple[str, Sequence[Any]]]:
    """``column`` matched against ``values`` a chunk at a time: each chunk's condition and parameters.

    SQLite binds each value (``column IN (?,?,...)``); PostgreSQL binds the chunk as one array
    (``column = ANY(?)``), so its statement text is the same for every chunk.
    """
    if size < 1:
        raise ValueError(f"a chunk holds at least one value, not {size}")
    for start in range(0, len(values), size):
        chunk = list(values[start : start + size])
        if postgres:
            yield f"{column} = ANY(?)", (chunk,)
        else:
            yield f"{column} IN ({','.join('?' * len(chunk))})", chunk


class StoreSql:
    def __init__(self, datastore: Any):
        self.datastore = datastore
        self.postgres = isinstance(datastore, PostgresDatastore)

    def names(self, statement: str) -> str:
        """The statement with its table names as this database holds them (a subclass may rename)."""
        return statement

    def sql(self, statement: str) -> str:
        statement = self.names(statement)
        # psycopg's placeholders are %s, so a literal % (as in LIKE) must be doubled first
        return statement.replace("%", "%%").replace("?", "%s") if self.postgres else statement

    @contextmanager
    def transaction(self, commit: bool = True) -> Iterator[Cursor]:
        if self.postgres:
            with self.datastore.get_connection() as conn, conn.transaction(force_rollback=not commit):
                yield Cursor(self, conn.cursor(row_factory=tuple_row))
        else:
            with self.datastore.transaction(commit=commit) as curs:
                yield Cursor(self, plain(curs.sqlite_cursor))  # the library wraps sqlite3's cursor

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        with self.transaction(commit=False) as c:
            return c.query(statement, params)


def plain(sqlite_cursor: Any) -> Any:
    sqlite_cursor.row_factory = None  # tuples, as on PostgreSQL (the library's connections make sqlite3.Row)
    return sqlite_cursor


class Cursor:
    def __init__(self, db: StoreSql, curs: Any):
        self.db, self.curs = db, curs
        self.postgres = db.postgres

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        self.curs.execute(self.db.sql(statement), params)
        rowcount: int = self.curs.rowcount
        return rowcount

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.curs.executemany(self.db.sql(statement), rows)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        self.curs.execute(self.db.sql(statement), params)
        rows: list[Row] = self.curs.fetchall()
        return rows
