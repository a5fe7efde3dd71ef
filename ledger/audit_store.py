"""The audit side of the store: append-only triggers, the hash chain table, reads for ``verify``.

Mixed into the recorders in ledger/store.py (kept here so that file stays about
connections and the ledger's own tables). Everything is created by
``_create_table``, which runs whenever a Ledger opens a store (``ledger init``
included), so existing stores gain it; every statement is idempotent.

- ``ledger_chain(originator_id, originator_version, hash)``: one row per event,
  written in the events' own transaction from ``_insert_events`` (see
  ledger/audit.py for the hash). The previous hashes of a batch's streams are read
  in one query inside that transaction; no lock is taken beyond what the event
  insert already takes, so streams never wait on each other for the chain.
- Triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the events,
  ``ledger_idempotency``, ``ledger_chain`` and ``ledger_erasures``. On PostgreSQL
  they are ``ENABLE ALWAYS``, so ``session_replication_role = replica`` does not
  skip them; ``ledger init`` re-enables a trigger someone disabled.
- When the chain table is created on a store that already holds events, those
  events are chained in the same transaction: the history before the upgrade is
  vouched for from then on. An event found later without a chain row is reported
  as inserted, never chained silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Identifier, Literal

from ledger.audit import chain_batch

APPEND_ONLY = ("ledger_idempotency", "ledger_chain", "ledger_erasures")
BACKFILL_PAGE = 5000

Key = tuple[UUID, int]
# (notification id, stream, version, chain hash or None, state if version 1) in notification order
LogRow = tuple[int, UUID, int, str | None, bytes | None]
# (notification id, stream, version, topic, state, chain hash, previous chain hash)
ExportRow = tuple[int, UUID, int, str, bytes, str | None, str | None]


def _needed_previous(stored_events: Sequence[StoredEvent]) -> list[Key]:
    first: dict[UUID, int] = {}
    for e in stored_events:
        first[e.originator_id] = min(e.originator_version, first.get(e.originator_id, e.originator_version))
    return sorted((oid, v - 1) for oid, v in first.items() if v > 1)


def _as_tuples(stored_events: Sequence[StoredEvent]) -> list[tuple[UUID, int, str, bytes]]:
    return [(e.originator_id, e.originator_version, e.topic, e.state) for e in stored_events]


def _sqlite_after(after: Key | None) -> tuple[str, list]:
    if after is None:
        return "", []
    return "WHERE (originator_id, originator_version) > (?, ?) ", [after[0].hex, after[1]]


class ChainedSQLite:
    """For LedgerSQLiteRecorder. ``chain_enabled`` is for the benchmark's no-chain baseline only."""

    chain_enabled = True
    events_table_name: str
    datastore: Any

    def _create_table(self, c: Any) -> None:
        c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger_chain'")
        had_chain = c.fetchone() is not None
        super()._create_table(c)  # type: ignore[misc]
        c.execute(
            "CREATE TABLE IF NOT EXISTS ledger_chain (originator_id TEXT NOT NULL,"
            " originator_version INTEGER NOT NULL, hash TEXT NOT NULL,"
            " PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID"
        )
        c.execute(
            "CREATE TABLE IF NOT EXISTS ledger_erasures (erasure_id INTEGER PRIMARY KEY,"
            " borrower_id TEXT NOT NULL, erased_at TEXT NOT NULL, reason TEXT)"
        )
        for table in (self.events_table_name, *APPEND_ONLY):
            for op in ("UPDATE", "DELETE"):
                c.execute(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
                )
        if not had_chain:
            self._backfill_chain(c)

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        if kwargs.get("borrowers"):
            # a borrower's data replaced by an upsert must not linger in free space either
            c.execute("PRAGMA secure_delete = ON")
        returning = super()._insert_events(c, stored_events, **kwargs)  # type: ignore[misc]
        if self.chain_enabled and stored_events:
            self._write_chain(c, stored_events)
        return returning

    def erase_borrower(self, borrower_id: str, reason: str | None) -> bool:
        """Delete the personal data so no byte of it stays in the file, and record the erasure."""
        with self.datastore.get_connection(commit=True) as conn:
            with conn.transaction(commit=True) as c:
                c.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left readable
                c.execute("DELETE FROM ledger_borrowers WHERE borrower_id = ?", (borrower_id,))
                erased = c.sqlite_cursor.rowcount > 0
                if erased:
                    c.execute(
                        "INSERT INTO ledger_erasures (borrower_id, erased_at, reason) VALUES (?, ?, ?)",
                        (borrower_id, datetime.now(UTC).isoformat(), reason),
                    )
            if erased:
                # the old page images sit in the write-ahead log until it is checkpointed
                conn.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return erased

    def _write_chain(self, c: Any, stored_events: Sequence[StoredEvent]) -> None:
        previous: dict[UUID, str] = {}
        needed = _needed_previous(stored_events)
        for start in range(0, len(needed), 400):
            chunk = needed[start : start + 400]
            c.execute(
                # a join, not a row-value IN: SQLite plans the IN as a scan of the whole table
                f"SELECT c.originator_id, c.hash FROM (VALUES {','.join(['(?,?)'] * len(chunk))}) AS w "
                "JOIN ledger_chain c ON c.originator_id = w.column1 AND c.originator_version = w.column2",
                [x for oid, v in chunk for x in (oid.hex, v)],
            )
            previous.update((UUID(r[0]), r[1]) for r in c.fetchall())
        rows = chain_batch(_as_tuples(stored_events), previous)
        c.executemany("INSERT INTO ledger_chain VALUES (?,?,?)", [(oid.hex, v, h) for oid, v, h in rows])

    def _backfill_chain(self, c: Any) -> None:
        after: Key | None = None
        previous: dict[UUID, str] = {}
        while page := self._events_page(c, after, BACKFILL_PAGE):
            batch = [StoredEvent(oid, v, topic, state) for oid, v, topic, state, _ in page]
            rows = chain_batch(_as_tuples(batch), previous)
            c.executemany("INSERT INTO ledger_chain VALUES (?,?,?)", [(oid.hex, v, h) for oid, v, h in rows])
            previous = {oid: h for oid, _, h in rows[-1:]}
            after = (page[-1][0], page[-1][1])

    # ---- reads for verify, checkpoint and export ----------------------------------
    def _events_page(self, c: Any, after: Key | None, limit: int) -> list[tuple[UUID, int, str, bytes, int]]:
        where, params = _sqlite_after(after)
        c.execute(
            f"SELECT originator_id, originator_version, topic, state, rowid FROM {self.events_table_name} {where}"
            "ORDER BY originator_id, originator_version LIMIT ?",
            [*params, limit],
        )
        return [(UUID(r[0]), r[1], r[2], bytes(r[3]), r[4]) for r in c.fetchall()]

    def audit_events_page(self, after: Key | None, limit: int) -> list[tuple[UUID, int, str, bytes, int]]:
        with self.datastore.transaction(commit=False) as c:
            return self._events_page(c, after, limit)

    def audit_chain_page(self, after: Key | None, limit: int) -> list[tuple[UUID, int, str]]:
        where, params = _sqlite_after(after)
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT originator_id, originator_version, hash FROM ledger_chain {where}"
                "ORDER BY originator_id, originator_version LIMIT ?",
                [*params, limit],
            )
            return [(UUID(r[0]), r[1], r[2]) for r in c.fetchall()]

    def audit_log_page(self, after_nid: int, head: int, limit: int) -> list[LogRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT e.rowid, e.originator_id, e.originator_version, h.hash,"
                f" CASE WHEN e.originator_version = 1 THEN e.state END FROM {self.events_table_name} e "
                "LEFT JOIN ledger_chain h USING (originator_id, originator_version) "
                "WHERE e.rowid > ? AND e.rowid <= ? ORDER BY e.rowid LIMIT ?",
                (after_nid, head, limit),
            )
            return [(r[0], UUID(r[1]), r[2], r[3], r[4]) for r in c.fetchall()]

    def audit_export_page(self, after_nid: int, limit: int, originator_id: UUID | None) -> list[ExportRow]:
        where, params = ("AND e.originator_id = ? ", [originator_id.hex]) if originator_id else ("", [])
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state, h.hash, p.hash "
                f"FROM {self.events_table_name} e "
                "LEFT JOIN ledger_chain h USING (originator_id, originator_version) "
                "LEFT JOIN ledger_chain p ON p.originator_id = e.originator_id "
                "AND p.originator_version = e.originator_version - 1 "
                f"WHERE e.rowid > ? {where}ORDER BY e.rowid LIMIT ?",
                [after_nid, *params, limit],
            )
            return [(r[0], UUID(r[1]), r[2], r[3], bytes(r[4]), r[5], r[6]) for r in c.fetchall()]

    def audit_loan_ids(self) -> list[str]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT DISTINCT loan_id FROM ledger_idempotency")
            return [r[0] for r in c.fetchall()]


class ChainedPostgres:
    """For LedgerPostgresRecorder. ``chain_enabled`` is for the benchmark's no-chain baseline only."""

    chain_enabled = True
    events_table_name: str
    datastore: Any

    def _audit_names(self) -> tuple[Identifier, Identifier]:
        return Identifier(self.datastore.schema), Identifier(self.events_table_name)

    def _create_table(self, curs: Any) -> None:
        schema, events = self._audit_names()
        curs.execute("SELECT to_regclass(%s) IS NOT NULL AS had", (f'"{self.datastore.schema}".ledger_chain',))
        had_chain = curs.fetchone()["had"]
        super()._create_table(curs)  # type: ignore[misc]
        curs.execute(
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.ledger_chain (originator_id uuid NOT NULL,"
                " originator_version bigint NOT NULL, hash text NOT NULL,"
                " PRIMARY KEY (originator_id, originator_version))"
            ).format(schema)
        )
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
            # Only when missing or disabled: CREATE TRIGGER and ALTER TABLE lock the table
            # against writers, and every process that opens the store runs this.
            curs.execute(
                SQL(
                    "DO $d$ DECLARE rel oid := (SELECT c.oid FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE n.nspname = {schema_name} AND c.relname = {table_name}); "
                    "BEGIN "
                    "IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel "
                    "AND tgname = 'ledger_append_only' AND tgenabled = 'A') THEN "
                    "CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON {schema}.{table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.ledger_refuse_change(); "
                    "ALTER TABLE {schema}.{table} ENABLE ALWAYS TRIGGER ledger_append_only; END IF; "
                    "IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = rel "
                    "AND tgname = 'ledger_no_truncate' AND tgenabled = 'A') THEN "
                    "CREATE OR REPLACE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON {schema}.{table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.ledger_refuse_change(); "
                    "ALTER TABLE {schema}.{table} ENABLE ALWAYS TRIGGER ledger_no_truncate; END IF; "
                    "END $d$"
                ).format(
                    schema=schema,
                    table=Identifier(table),
                    schema_name=Literal(self.datastore.schema),
                    table_name=Literal(table),
                )
            )
        if not had_chain:
            self._backfill_chain(curs)

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)  # type: ignore[misc]
        if self.chain_enabled and stored_events:
            self._write_chain(curs, stored_events)

    def erase_borrower(self, borrower_id: str, reason: str | None) -> bool:
        """Delete the personal data, record the erasure, then rewrite the table without the dead row.

        A plain VACUUM leaves old row versions' bytes in pages' free space (seen here
        for data replaced by an upsert); VACUUM FULL writes a new file. It locks the
        borrowers table, so appends carrying personal data wait for it: one table of
        small rows, once per erasure.
        """
        schema, _ = self._audit_names()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(SQL("DELETE FROM {}.ledger_borrowers WHERE borrower_id = %s").format(schema), (borrower_id,))
            erased = curs.rowcount > 0
            if erased:
                curs.execute(
                    SQL(
                        "INSERT INTO {}.ledger_erasures (borrower_id, erased_at, reason) VALUES (%s, now(), %s)"
                    ).format(schema),
                    (borrower_id, reason),
                )
        if erased:
            with self.datastore.get_connection() as conn:
                conn.autocommit = True  # VACUUM cannot run inside a transaction
                try:
                    conn.execute(SQL("VACUUM FULL {}.ledger_borrowers").format(schema))
                finally:
                    conn.autocommit = False
        return erased

    def _write_chain(self, curs: Any, stored_events: Sequence[StoredEvent]) -> None:
        schema, _ = self._audit_names()
        previous: dict[UUID, str] = {}
        needed = _needed_previous(stored_events)
        if needed:
            curs.execute(
                SQL(
                    "SELECT originator_id, hash FROM {}.ledger_chain WHERE (originator_id, originator_version) "
                    "IN (SELECT * FROM unnest(%s::uuid[], %s::bigint[]))"
                ).format(schema),
                ([oid for oid, _ in needed], [v for _, v in needed]),
            )
            previous = {r["originator_id"]: r["hash"] for r in curs.fetchall()}
        self._insert_chain(curs, chain_batch(_as_tuples(stored_events), previous))

    def _insert_chain(self, curs: Any, rows: list[tuple[UUID, int, str]]) -> None:
        # Sorted by key (chain_batch does), so writers racing on one stream wait rather than deadlock.
        schema, _ = self._audit_names()
        curs.execute(
            SQL(
                "INSERT INTO {}.ledger_chain (originator_id, originator_version, hash) "
                "SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[])"
            ).format(schema),
            ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
            binary=True,
        )

    def _backfill_chain(self, curs: Any) -> None:
        after: Key | None = None
        previous: dict[UUID, str] = {}
        while page := self._events_page(curs, after, BACKFILL_PAGE):
            batch = [StoredEvent(oid, v, topic, state) for oid, v, topic, state, _ in page]
            rows = chain_batch(_as_tuples(batch), previous)
            self._insert_chain(curs, rows)
            previous = {oid: h for oid, _, h in rows[-1:]}
            after = (page[-1][0], page[-1][1])

    # ---- reads for verify, checkpoint and export ----------------------------------
    def _events_page(self, curs: Any, after: Key | None, limit: int) -> list[tuple[UUID, int, str, bytes, int]]:
        schema, events = self._audit_names()
        where = SQL("WHERE (originator_id, originator_version) > (%s, %s) " if after else "")
        curs.execute(
            SQL(
                "SELECT originator_id, originator_version, topic, state, notification_id FROM {}.{} {}"
                "ORDER BY originator_id, originator_version LIMIT %s"
            ).format(schema, events, where),
            [*(after or ()), limit],
        )
        return [
            (r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]), r["notification_id"])
            for r in curs.fetchall()
        ]

    def audit_events_page(self, after: Key | None, limit: int) -> list[tuple[UUID, int, str, bytes, int]]:
        with self.datastore.transaction(commit=False) as curs:
            return self._events_page(curs, after, limit)

    def audit_chain_page(self, after: Key | None, limit: int) -> list[tuple[UUID, int, str]]:
        schema, _ = self._audit_names()
        where = SQL("WHERE (originator_id, originator_version) > (%s, %s) " if after else "")
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT originator_id, originator_version, hash FROM {}.ledger_chain {}"
                    "ORDER BY originator_id, originator_version LIMIT %s"
                ).format(schema, where),
                [*(after or ()), limit],
            )
            return [(r["originator_id"], r["originator_version"], r["hash"]) for r in curs.fetchall()]

    def audit_log_page(self, after_nid: int, head: int, limit: int) -> list[LogRow]:
        schema, events = self._audit_names()
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT e.notification_id, e.originator_id, e.originator_version, h.hash,"
                    " CASE WHEN e.originator_version = 1 THEN e.state END AS created FROM {}.{} e "
                    "LEFT JOIN {}.ledger_chain h USING (originator_id, originator_version) "
                    "WHERE e.notification_id > %s AND e.notification_id <= %s ORDER BY e.notification_id LIMIT %s"
                ).format(schema, events, schema),
                (after_nid, head, limit),
            )
            return [
                (
                    r["notification_id"],
                    r["originator_id"],
                    r["originator_version"],
                    r["hash"],
                    None if r["created"] is None else bytes(r["created"]),
                )
                for r in curs.fetchall()
            ]

    def audit_export_page(self, after_nid: int, limit: int, originator_id: UUID | None) -> list[ExportRow]:
        schema, events = self._audit_names()
        where, params = (SQL("AND e.originator_id = %s "), [originator_id]) if originator_id else (SQL(""), [])
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT e.notification_id, e.originator_id, e.originator_version, e.topic, e.state,"
                    " h.hash, p.hash AS previous FROM {}.{} e "
                    "LEFT JOIN {}.ledger_chain h USING (originator_id, originator_version) "
                    "LEFT JOIN {}.ledger_chain p ON p.originator_id = e.originator_id "
                    "AND p.originator_version = e.originator_version - 1 "
                    "WHERE e.notification_id > %s {}ORDER BY e.notification_id LIMIT %s"
                ).format(schema, events, schema, schema, where),
                [after_nid, *params, limit],
            )
            return [
                (
                    r["notification_id"],
                    r["originator_id"],
                    r["originator_version"],
                    r["topic"],
                    bytes(r["state"]),
                    r["hash"],
                    r["previous"],
                )
                for r in curs.fetchall()
            ]

    def audit_loan_ids(self) -> list[str]:
        schema, _ = self._audit_names()
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT DISTINCT loan_id FROM {}.ledger_idempotency").format(schema))
            return [r["loan_id"] for r in curs.fetchall()]
