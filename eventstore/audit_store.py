"""The audit side of the store: append-only triggers, the hash chain, reads for ``verify``.

Mixed into the recorders in eventstore/store.py (kept here so that file stays about
connections and the ledger's own tables). Everything is created by
``_create_table``, which runs whenever a Ledger opens a store (``ledger init``
included), so existing stores gain it; every statement is idempotent.

- Each event row carries its chain hash in a ``chain_hash`` column (see
  eventstore/audit.py for the hash), written by the event's own INSERT. A side table
  with a row per event costs a second row and index entry per event (measured:
  docs/decisions.md, "Figures out of the code"); a column costs the hashing only. The
  previous hashes of a batch's streams are read in one query inside the events'
  transaction, by primary key; no lock is taken beyond what the event insert
  already takes, so streams never wait on each other for the chain.
- Triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the events,
  ``ledger_idempotency`` and ``ledger_erasures``. On PostgreSQL they are
  ``ENABLE ALWAYS``, so ``session_replication_role = replica`` does not skip
  them; ``ledger init`` re-enables a trigger someone disabled.
- When the column is added to a store that already holds events, those events
  are chained in the same transaction: the history before the upgrade is vouched
  for from then on. An event found later without a hash is reported as inserted,
  never chained silently.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Identifier, Literal

from domain.errors import BrokenInvariant
from eventstore.audit import chain_batch
from eventstore.commit_time import ClockPostgres, ClockSQLite

APPEND_ONLY = ("ledger_idempotency", "ledger_erasures")
BACKFILL_PAGE = 5000

Key = tuple[UUID, int]
# (stream, version, topic, state, notification id, chain hash) in (stream, version) order
EventRow = tuple[UUID, int, str, bytes, int, str | None]
# (notification id, stream, version, chain hash, state if version 1) in notification order
LogRow = tuple[int, UUID, int, str | None, bytes | None]
# For verify, the same as stored, not yet decoded: a tampered row may hold any type in any column.
# (stream, version, topic, state, notification id, chain hash) and a row's (stream, version) as stored
RawEventRow = tuple[Any, ...]
RawKey = tuple[Any, Any]
# (notification id, stream, version, chain hash, state)
RawLogRow = tuple[Any, ...]
# (notification id, stream, version, topic, state, chain hash, previous chain hash)
ExportRow = tuple[int, UUID, int, str, bytes, str | None, str | None]


@dataclass(frozen=True)
class Erasure:
    """What ``borrower forget`` did. ``held``: personal data was found and deleted now.
    ``finished_earlier``: none was held, but an earlier erasure of the borrower is on record
    and its clean-up was run again. ``left``: what still holds the bytes and how to finish,
    or None when no byte is left in the store's files."""

    borrower_id: str
    held: bool
    finished_earlier: bool = False
    left: str | None = None


def stream_id(e: StoredEvent) -> UUID:
    """The library allows string ids; the ledger's streams are always UUIDs (see domain.loan.loan_uuid)."""
    if not isinstance(e.originator_id, UUID):
        raise BrokenInvariant(f"stream id {e.originator_id!r} is not a UUID")
    return e.originator_id


def _needed_previous(stored_events: Sequence[StoredEvent]) -> list[Key]:
    first: dict[UUID, int] = {}
    for e in stored_events:
        oid = stream_id(e)
        first[oid] = min(e.originator_version, first.get(oid, e.originator_version))
    return [(oid, v - 1) for oid, v in first.items() if v > 1]


def _hashes_in_order(stored_events: Sequence[StoredEvent], previous: dict[UUID, str]) -> list[str]:
    rows = chain_batch([(stream_id(e), e.originator_version, e.topic, e.state) for e in stored_events], previous)
    by_key = {(oid, v): h for oid, v, h in rows}
    return [by_key[(stream_id(e), e.originator_version)] for e in stored_events]


def _sqlite_after(after: Key | None) -> tuple[str, list[str | int]]:
    if after is None:
        return "", []
    return "WHERE (originator_id, originator_version) > (?, ?) ", [after[0].hex, after[1]]


class ChainedSQLite(ClockSQLite):
    """For LedgerSQLiteRecorder."""

    events_table_name: str
    datastore: Any

    def _create_table(self, c: Any) -> None:
        super()._create_table(c)  # type: ignore[misc]
        events = self.events_table_name
        c.execute(f"SELECT 1 FROM pragma_table_info('{events}') WHERE name = 'chain_hash'")
        if c.fetchone() is None:
            c.execute(f"ALTER TABLE {events} ADD COLUMN chain_hash TEXT")
            c.execute(f"DROP TRIGGER IF EXISTS {events}_no_update")  # the backfill's one UPDATE; made again below
            self._backfill_chain(c)
        self._create_clock(c)
        c.execute(
            "CREATE TABLE IF NOT EXISTS ledger_erasures (erasure_id INTEGER PRIMARY KEY,"
            " borrower_id TEXT NOT NULL, erased_at TEXT NOT NULL, reason TEXT)"
        )
        for table in (events, *APPEND_ONLY):
            for op in ("UPDATE", "DELETE"):
                # by its definition, not its name: one replaced by "... WHEN 0 BEGIN ..." is made again
                name = f"{table}_no_{op.lower()}"
                definition = (
                    f"CREATE TRIGGER {name} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
                )
                c.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,))
                found = c.fetchone()
                if found is None or found[0] != definition:
                    c.execute(f"DROP TRIGGER IF EXISTS {name}")
                    c.execute(definition)

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        if kwargs.get("borrowers"):
            # a borrower's data replaced by an upsert must not linger in free space either
            c.execute("PRAGMA secure_delete = ON")
        if stored_events:
            stored_events = self._stamp(c, stored_events)  # recorded time, under the write lock
        # the library's insert (its statement names no columns, so it cannot be reused), plus the hash
        hashes: Sequence[str | None] = [None] * len(stored_events)
        if stored_events:
            hashes = _hashes_in_order(stored_events, self._previous_hashes(c, stored_events))
        statement = (
            f"INSERT INTO {self.events_table_name} (originator_id, originator_version, topic, state, chain_hash) "
            "VALUES (?,?,?,?,?)"
        )
        returning = []
        for e, h in zip(stored_events, hashes, strict=True):
            c.execute(statement, (stream_id(e).hex, e.originator_version, e.topic, e.state, h))
            returning.append(c.lastrowid)
        return returning

    def _previous_hashes(self, c: Any, stored_events: Sequence[StoredEvent]) -> dict[UUID, str]:
        previous: dict[UUID, str] = {}
        needed = _needed_previous(stored_events)
        for start in range(0, len(needed), 400):
            chunk = needed[start : start + 400]
            c.execute(
                # a join, not a row-value IN: SQLite plans that IN as a scan of the whole table
                f"SELECT e.originator_id, e.chain_hash FROM (VALUES {','.join(['(?,?)'] * len(chunk))}) AS w "
                f"JOIN {self.events_table_name} e ON e.originator_id = w.column1 AND e.originator_version = w.column2",
                [x for oid, v in chunk for x in (oid.hex, v)],
            )
            previous.update((UUID(r[0]), r[1]) for r in c.fetchall() if r[1] is not None)
        return previous

    def _backfill_chain(self, c: Any) -> None:
        after: Key | None = None
        previous: dict[UUID, str] = {}
        while page := self._events_page(c, after, BACKFILL_PAGE):
            rows = chain_batch([(oid, v, topic, state) for oid, v, topic, state, _, _ in page], previous)
            c.executemany(
                f"UPDATE {self.events_table_name} SET chain_hash = ? "
                "WHERE originator_id = ? AND originator_version = ?",
                [(h, oid.hex, v) for oid, v, h in rows],
            )
            previous = {oid: h for oid, _, h in rows[-1:]}
            after = (page[-1][0], page[-1][1])

    def erase_borrower(self, borrower_id: str, reason: str | None, wait_seconds: float) -> Erasure:
        """Delete the personal data so no byte of it stays in the files, and record the erasure.

        The deleted row's old page images stay in the write-ahead log until a checkpoint
        copies the log back and truncates it, which SQLite can do only once no other
        connection is in the middle of a read through the log (a long request to ``ledger serve``, a
        backup, a sqlite3 shell left in a transaction). The
        checkpoint waits up to ``wait_seconds`` for them, and its result is checked. A
        borrower already erased (by a run whose checkpoint could not finish) is checkpointed
        again, so a later run finishes what an earlier one could not.
        """
        path = self.datastore.pool.db_name
        with self.datastore.get_connection(commit=True) as conn:
            with conn.transaction(commit=True) as c:
                c.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left readable
                c.execute("DELETE FROM ledger_borrowers WHERE borrower_id = ?", (borrower_id,))
                erased: bool = c.sqlite_cursor.rowcount > 0
                if erased:
                    c.execute(
                        "INSERT INTO ledger_erasures (borrower_id, erased_at, reason) VALUES (?, ?, ?)",
                        (borrower_id, datetime.now(UTC).isoformat(), reason),
                    )
                    earlier = False
                else:
                    c.execute("SELECT 1 FROM ledger_erasures WHERE borrower_id = ? LIMIT 1", (borrower_id,))
                    earlier = c.fetchone() is not None
            if not erased and not earlier:
                return Erasure(borrower_id, held=False)
            cursor = conn.cursor().sqlite_cursor
            timeout_ms = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
            cursor.execute(f"PRAGMA busy_timeout = {int(wait_seconds * 1000)}")
            try:
                # TRUNCATE waits (through the busy handler) for every reader to leave the log
                busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                cursor.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
                cursor.close()
        if busy:
            return Erasure(
                borrower_id,
                held=erased,
                left=(
                    f"old copies of its pages stay in {path}-wal (and {path}) while another process is reading "
                    f"the store (a long request to `ledger serve`, a backup; waited {wait_seconds:g} s for it): "
                    "stop the processes that have the store open, then run "
                    f"`ledger borrower forget {borrower_id}` again to finish"
                ),
            )
        return Erasure(borrower_id, held=erased, finished_earlier=earlier)

    # ---- reads for verify, checkpoint and export ----------------------------------
    def _events_page(self, c: Any, after: Key | None, limit: int) -> list[EventRow]:
        where, params = _sqlite_after(after)
        c.execute(
            f"SELECT originator_id, originator_version, topic, state, rowid, chain_hash FROM {self.events_table_name} "
            f"{where}ORDER BY originator_id, originator_version LIMIT ?",
            [*params, limit],
        )
        return [(UUID(r[0]), r[1], r[2], bytes(r[3]), r[4], r[5]) for r in c.fetchall()]

    def audit_events_page(self, after: RawKey | None, limit: int) -> list[RawEventRow]:
        """Rows in (stream, version) order after ``after`` (a row's stored key, as returned), as
        stored: verify decodes them, so a row of the wrong type is a named problem, not a crash."""
        where = "WHERE originator_id IS NOT NULL AND originator_version IS NOT NULL "
        params: list[Any] = []
        if after is not None:
            where += "AND (originator_id, originator_version) > (?, ?) "
            params = list(after)
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT originator_id, originator_version, topic, state, rowid, chain_hash "
                f"FROM {self.events_table_name} {where}ORDER BY originator_id, originator_version LIMIT ?",
                [*params, limit],
            )
            return [tuple(r) for r in c.fetchall()]

    def audit_log_page(self, after_nid: int, head: int, limit: int, *, states: bool = False) -> list[RawLogRow]:
        """Rows in notification order, as stored; the state of every row with ``states``, else only
        of versions 1 (the loan's own id is there)."""
        state = "state" if states else "CASE WHEN originator_version = 1 THEN state END"
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, originator_id, originator_version, chain_hash, {state} FROM {self.events_table_name} "
                "WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?",
                (after_nid, head, limit),
            )
            return [tuple(r) for r in c.fetchall()]

    def audit_keys_page(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        """(idempotency key, loan id) in key order after ``after``."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT key, loan_id FROM ledger_idempotency WHERE key > ? ORDER BY key LIMIT ?",
                ("" if after is None else after, limit),
            )
            return [(r[0], r[1]) for r in c.fetchall()]

    def audit_export_page(self, after_nid: int, limit: int, originator_id: UUID | None) -> list[ExportRow]:
        where, params = ("AND e.originator_id = ? ", [originator_id.hex]) if originator_id else ("", [])
        events = self.events_table_name
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state, e.chain_hash, p.chain_hash "
                f"FROM {events} e LEFT JOIN {events} p ON p.originator_id = e.originator_id "
                "AND p.originator_version = e.originator_version - 1 "
                f"WHERE e.rowid > ? {where}ORDER BY e.rowid LIMIT ?",
                [after_nid, *params, limit],
            )
            return [(r[0], UUID(r[1]), r[2], r[3], bytes(r[4]), r[5], r[6]) for r in c.fetchall()]


class ChainedPostgres(ClockPostgres):
    """For LedgerPostgresRecorder.

    The previous hashes are read in ``_insert_events``, before the library takes its
    table lock, so that read is not inside the lock. The hashes themselves are
    computed by ``chain_for`` for the recorder's own event INSERT, under the lock,
    because they cover the recorded time stamped there: both run in one thread
    within one ``insert_events`` call.
    """

    events_table_name: str
    datastore: Any
    _pending = threading.local()

    def _audit_names(self) -> tuple[Identifier, Identifier]:
        return Identifier(self.datastore.schema), Identifier(self.events_table_name)

    def _create_table(self, curs: Any) -> None:
        schema, events = self._audit_names()
        super()._create_table(curs)  # type: ignore[misc]
        curs.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "AND column_name = 'chain_hash'",
            (self.datastore.schema, self.events_table_name),
        )
        if curs.fetchone() is None:
            curs.execute(SQL("ALTER TABLE {}.{} ADD COLUMN chain_hash text").format(schema, events))
            # the backfill is the one UPDATE ever allowed; the trigger is made again below
            curs.execute(SQL("DROP TRIGGER IF EXISTS ledger_append_only ON {}.{}").format(schema, events))
            self._backfill_chain(curs)
        self._create_clock(curs)
        curs.execute(
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.ledger_erasures (erasure_id bigserial PRIMARY KEY,"
                " borrower_id text NOT NULL, erased_at timestamptz NOT NULL, reason text)"
            ).format(schema)
        )
        curs.execute(
            SQL(
                "CREATE OR REPLACE FUNCTION {}.ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $f$ "
                "BEGIN RAISE EXCEPTION '%.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP "
                "USING ERRCODE = 'insufficient_privilege'; END $f$"
            ).format(schema)
        )
        for table in (self.events_table_name, *APPEND_ONLY):
            # Only when missing, disabled or defined otherwise (a WHEN clause, UPDATE OF a column, other
            # events or function): CREATE TRIGGER and ALTER TABLE lock the table against writers, and
            # every process that opens the store runs this. tgtype: 2 BEFORE, 8 DELETE, 16 UPDATE,
            # 32 TRUNCATE; no 1 (FOR EACH ROW).
            intact = (
                "tgrelid = rel AND tgenabled = 'A' AND tgqual IS NULL AND tgnargs = 0 "
                "AND cardinality(tgattr::int2[]) = 0 AND tgfoid = {function}::regprocedure AND "
            )
            curs.execute(
                SQL(
                    "DO $d$ DECLARE rel oid := (SELECT c.oid FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = {schema_name} AND c.relname = {table_name}); "
                    "BEGIN "
                    "IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE " + intact + "tgname = 'ledger_append_only' "
                    "AND tgtype = 26) THEN "
                    "CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON {schema}.{table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.ledger_refuse_change(); "
                    "ALTER TABLE {schema}.{table} ENABLE ALWAYS TRIGGER ledger_append_only; END IF; "
                    "IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE " + intact + "tgname = 'ledger_no_truncate' "
                    "AND tgtype = 34) THEN "
                    "CREATE OR REPLACE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON {schema}.{table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.ledger_refuse_change(); "
                    "ALTER TABLE {schema}.{table} ENABLE ALWAYS TRIGGER ledger_no_truncate; END IF; "
                    "END $d$"
                ).format(
                    schema=schema,
                    table=Identifier(table),
                    schema_name=Literal(self.datastore.schema),
                    table_name=Literal(table),
                    function=Literal(f"{Identifier(self.datastore.schema).as_string()}.ledger_refuse_change()"),
                )
            )

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)  # type: ignore[misc]
        self._pending.previous = None
        if stored_events:
            self._pending.previous = self._previous_hashes(curs, stored_events)

    def chain_for(self, stored_events: Sequence[StoredEvent]) -> list[str | None]:
        """The hashes of these (stamped) events, from the previous hashes ``_insert_events`` read."""
        previous: dict[UUID, str] | None = getattr(self._pending, "previous", None)
        self._pending.previous = None
        if previous is None:
            return [None] * len(stored_events)
        return list(_hashes_in_order(stored_events, previous))

    def _previous_hashes(self, curs: Any, stored_events: Sequence[StoredEvent]) -> dict[UUID, str]:
        needed = _needed_previous(stored_events)
        if not needed:
            return {}
        schema, events = self._audit_names()
        curs.execute(
            SQL(
                "SELECT e.originator_id, e.chain_hash FROM unnest(%s::uuid[], %s::bigint[]) AS w(id, v), "
                "LATERAL (SELECT originator_id, chain_hash FROM {}.{} "
                "WHERE originator_id = w.id AND originator_version = w.v OFFSET 0) e"
            ).format(schema, events),
            ([oid for oid, _ in needed], [v for _, v in needed]),
        )
        return {r["originator_id"]: r["chain_hash"] for r in curs.fetchall() if r["chain_hash"] is not None}

    def _backfill_chain(self, curs: Any) -> None:
        schema, events = self._audit_names()
        after: Key | None = None
        previous: dict[UUID, str] = {}
        while page := self._events_page(curs, after, BACKFILL_PAGE):
            rows = chain_batch([(oid, v, topic, state) for oid, v, topic, state, _, _ in page], previous)
            curs.execute(
                SQL(
                    "UPDATE {}.{} e SET chain_hash = w.h FROM unnest(%s::uuid[], %s::bigint[], %s::text[]) "
                    "AS w(id, v, h) WHERE e.originator_id = w.id AND e.originator_version = w.v"
                ).format(schema, events),
                ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
            )
            previous = {oid: h for oid, _, h in rows[-1:]}
            after = (page[-1][0], page[-1][1])

    def erase_borrower(self, borrower_id: str, reason: str | None, wait_seconds: float) -> Erasure:
        """Delete the personal data, record the erasure, then rewrite the table without the dead row.

        A plain VACUUM leaves old row versions' bytes in pages' free space (seen here
        for data replaced by an upsert); VACUUM FULL writes a new file. It locks the
        borrowers table, so appends carrying personal data wait for it: one table of
        small rows, once per erasure. Only the table's owner may run it: anyone else's
        VACUUM is skipped with a mere warning, so whether the table was rewritten is read
        from its file number (a rewrite always gives it a new file), not assumed. A
        borrower already erased (by a role that could not rewrite) is rewritten again,
        so the owner's later run finishes the job. ``wait_seconds`` bounds the wait for
        the table's lock.
        """
        schema, _ = self._audit_names()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(SQL("DELETE FROM {}.ledger_borrowers WHERE borrower_id = %s").format(schema), (borrower_id,))
            erased: bool = curs.rowcount > 0
            earlier = False
            if erased:
                curs.execute(
                    SQL(
                        "INSERT INTO {}.ledger_erasures (borrower_id, erased_at, reason) VALUES (%s, now(), %s)"
                    ).format(schema),
                    (borrower_id, reason),
                )
            else:
                curs.execute(
                    SQL("SELECT 1 FROM {}.ledger_erasures WHERE borrower_id = %s LIMIT 1").format(schema),
                    (borrower_id,),
                )
                earlier = curs.fetchone() is not None
        if not erased and not earlier:
            return Erasure(borrower_id, held=False)
        table = SQL("{}.ledger_borrowers").format(schema)
        filenode = SQL("SELECT pg_relation_filenode({})").format(Literal(f"{schema.as_string()}.ledger_borrowers"))
        said: list[str] = []

        def hear(notice: Any) -> None:
            said.append(notice.message_primary or "")

        with self.datastore.get_connection() as conn:
            conn.autocommit = True  # VACUUM cannot run inside a transaction
            conn.add_notice_handler(hear)
            try:
                conn.execute(SQL("SET lock_timeout = {}").format(Literal(f"{int(wait_seconds * 1000)}ms")))
                before = conn.execute(filenode).fetchone()
                try:
                    conn.execute(SQL("VACUUM FULL {}").format(table))
                except psycopg.errors.LockNotAvailable:
                    said.append(f"another transaction held the table for {wait_seconds:g} s")
                after = conn.execute(filenode).fetchone()
            finally:
                conn.execute("RESET lock_timeout")
                conn.remove_notice_handler(hear)
                conn.autocommit = False
        if before == after:
            why = "; ".join(said) or "the table was not rewritten"
            return Erasure(
                borrower_id,
                held=erased,
                left=(
                    f"its row is deleted, but the bytes stay in ledger_borrowers' data file until the table is "
                    f"rewritten, which only the table's owner may do (the server said: {why}): run "
                    f"`ledger borrower forget {borrower_id}` again as the owner (the role that ran `ledger init`), "
                    "or `VACUUM FULL ledger_borrowers` as the owner"
                ),
            )
        return Erasure(borrower_id, held=erased, finished_earlier=earlier)

    # ---- reads for verify, checkpoint and export ----------------------------------
    def _events_page(self, curs: Any, after: Key | None, limit: int) -> list[EventRow]:
        schema, events = self._audit_names()
        where = SQL("WHERE (originator_id, originator_version) > (%s, %s) " if after else "")
        curs.execute(
            SQL(
                "SELECT originator_id, originator_version, topic, state, notification_id, chain_hash FROM {}.{} {}"
                "ORDER BY originator_id, originator_version LIMIT %s"
            ).format(schema, events, where),
            [*(after or ()), limit],
        )
        return [
            (
                r["originator_id"],
                r["originator_version"],
                r["topic"],
                bytes(r["state"]),
                r["notification_id"],
                r["chain_hash"],
            )
            for r in curs.fetchall()
        ]

    def audit_events_page(self, after: RawKey | None, limit: int) -> list[RawEventRow]:
        """As ChainedSQLite.audit_events_page: rows as stored, for verify to decode."""
        schema, events = self._audit_names()
        where = "WHERE originator_id IS NOT NULL AND originator_version IS NOT NULL "
        if after is not None:
            where += "AND (originator_id, originator_version) > (%s, %s) "
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT originator_id, originator_version, topic, state, notification_id, chain_hash FROM {}.{} "
                ).format(schema, events)
                + SQL(where)  # a constant: no input in it
                + SQL("ORDER BY originator_id, originator_version LIMIT %s"),
                [*(after or ()), limit],
            )
            return [
                (
                    r["originator_id"],
                    r["originator_version"],
                    r["topic"],
                    r["state"],
                    r["notification_id"],
                    r["chain_hash"],
                )
                for r in curs.fetchall()
            ]

    def audit_log_page(self, after_nid: int, head: int, limit: int, *, states: bool = False) -> list[RawLogRow]:
        """As ChainedSQLite.audit_log_page."""
        schema, events = self._audit_names()
        state = SQL("state" if states else "CASE WHEN originator_version = 1 THEN state END")
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT notification_id, originator_id, originator_version, chain_hash, {} AS state FROM {}.{} "
                    "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id LIMIT %s"
                ).format(state, schema, events),
                (after_nid, head, limit),
            )
            return [
                (r["notification_id"], r["originator_id"], r["originator_version"], r["chain_hash"], r["state"])
                for r in curs.fetchall()
            ]

    def audit_keys_page(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        """(idempotency key, loan id) in key order after ``after``."""
        schema, _ = self._audit_names()
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT key, loan_id FROM {}.ledger_idempotency WHERE key > %s ORDER BY key LIMIT %s").format(
                    schema
                ),
                ("" if after is None else after, limit),
            )
            return [(r["key"], r["loan_id"]) for r in curs.fetchall()]

    def audit_export_page(self, after_nid: int, limit: int, originator_id: UUID | None) -> list[ExportRow]:
        schema, events = self._audit_names()
        where, params = (SQL("AND e.originator_id = %s "), [originator_id]) if originator_id else (SQL(""), [])
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state,"
                    " e.chain_hash, p.chain_hash AS previous FROM {}.{} e "
                    "LEFT JOIN {}.{} p ON p.originator_id = e.originator_id "
                    "AND p.originator_version = e.originator_version - 1 "
                    "WHERE e.notification_id > %s {}ORDER BY e.notification_id LIMIT %s"
                ).format(schema, events, schema, events, where),
                [after_nid, *params, limit],
            )
            return [
                (
                    r["notification_id"],
                    r["originator_id"],
                    r["originator_version"],
                    r["topic"],
                    bytes(r["state"]),
                    r["chain_hash"],
                    r["previous"],
                )
                for r in curs.fetchall()
            ]
