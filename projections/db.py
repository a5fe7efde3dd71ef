"""The views' database: the store's own (SQLite file or PostgreSQL database), one SQL for both.

Views live beside the events so that a view change and its tracking position
commit in one transaction. SQL here is written once with ``?`` placeholders and
integer day numbers and fen, which both engines handle identically.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from eventsourcing.postgres import PostgresDatastore

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS proj_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS proj_loans ("
    " loan_id TEXT PRIMARY KEY, borrower_id TEXT NOT NULL, product TEXT NOT NULL, channel TEXT NOT NULL,"
    " phase TEXT NOT NULL, bank TEXT, score TEXT, model_version TEXT, principal_fen BIGINT,"
    " funded_day INTEGER, due_day INTEGER, written_off_day INTEGER, settled_day INTEGER,"
    " version INTEGER NOT NULL)",
    # Bitemporal: a row holds from known_from_us until known_to_us (NULL: still holds).
    "CREATE TABLE IF NOT EXISTS proj_journal ("
    " loan_id TEXT NOT NULL, line_key TEXT NOT NULL, entry TEXT NOT NULL, account TEXT NOT NULL,"
    " value_day INTEGER NOT NULL, until_day INTEGER, amount_fen BIGINT NOT NULL,"
    " known_from_us BIGINT NOT NULL, known_to_us BIGINT)",
    "CREATE INDEX IF NOT EXISTS proj_journal_current ON proj_journal (loan_id, line_key) WHERE known_to_us IS NULL",
    "CREATE INDEX IF NOT EXISTS proj_journal_value ON proj_journal (value_day)",
    "CREATE INDEX IF NOT EXISTS proj_loans_open ON proj_loans (phase, due_day)",
]
VIEWS = ("proj_loans", "proj_journal")


class ViewDb:
    def __init__(self, datastore: Any):
        self.datastore = datastore
        self.postgres = isinstance(datastore, PostgresDatastore)

    def sql(self, statement: str) -> str:
        # psycopg's placeholders are %s, so a literal % (as in LIKE) must be doubled first
        return statement.replace("%", "%%").replace("?", "%s") if self.postgres else statement

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.datastore.transaction(commit=True) as curs:
            yield Cursor(self, curs)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.datastore.transaction(commit=False) as curs:
            return Cursor(self, curs).query(statement, params)

    def create(self) -> None:
        with self.transaction() as c:
            if self.postgres:  # one creator at a time, as for the event tables
                c.execute("SELECT pg_advisory_xact_lock(1280593735)")
            for statement in SCHEMA:
                c.execute(statement)


class Cursor:
    def __init__(self, db: ViewDb, curs: Any):
        self.db, self.curs = db, curs

    def execute(self, statement: str, params: Sequence[Any] = ()) -> int:
        self.curs.execute(self.db.sql(statement), params)
        return getattr(self.curs, "sqlite_cursor", self.curs).rowcount  # the library wraps sqlite3's cursor

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.curs.executemany(self.db.sql(statement), rows)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple]:
        self.curs.execute(self.db.sql(statement), params)
        rows = self.curs.fetchall()
        return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]
