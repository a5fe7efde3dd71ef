"""Persistence adapters: the library's recorders, plus two tables written in the same transaction.

- ``ledger_idempotency``: one row per accepted command key. Its primary key is
  what makes a retried command a duplicate even when two writers race: the
  second transaction fails as a whole and nothing of it is written.
- ``ledger_borrowers``: personal data from ``applied``, kept out of the events
  so that it can be erased without editing history (events hold only borrower_id).

Both hook into ``_insert_events``, which the library runs inside the events'
own transaction (it is how its process recorders write tracking rows).
"""

from __future__ import annotations

import fcntl
import json
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    Cipher,
    Compressor,
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    MapperDeserialisationError,
    Notification,
    StoredEvent,
    Transcoder,
    Transcoding,
    UUIDAsHex,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteTransaction
from eventsourcing.utils import TopicError
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from domain.errors import BrokenInvariant, UnreadableEvent
from eventstore import token_table

# AUDIT (issue 13): the hash chain, append-only triggers and verify's reads are mixed in
# from eventstore/audit_store.py; they must come first in the bases to wrap _insert_events.
# The PostgreSQL event INSERT below carries the chain_hash column (marked AUDIT).
from eventstore.audit_store import ChainedPostgres, ChainedSQLite
from eventstore.decode import FastDecoder
from eventstore.sql import in_chunks

# "OFFSET 0" keeps a LATERAL subquery from being flattened into a join, so PostgreSQL probes the
# primary key once per id (a nested loop) whatever its statistics say about the table's size.
BY_INDEX = "OFFSET 0"
LOAN_LOCK_SLOTS = 65_536  # distinct loans rarely share a slot; when they do, one waits briefly
SCHEMA_LOCK_KEY = 0x4C454447  # "LEDG": any constant shared by every ledger process


@dataclass(frozen=True)
class KeyRecord:
    key: str
    loan_id: str
    content_hash: str
    command: str


class DateAsISO(Transcoding):
    """Value dates are calendar dates; the default transcoder knows only datetimes."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


def event_transcoder() -> JSONTranscoder:
    """The transcoder the ledger's events are stored with, for readers without a Ledger (the dataset
    rows, the event export, Spark's workers): the library's own transcodings (UUID, Decimal,
    datetime), as ``Application.register_transcodings`` registers them, plus dates, as
    ``Ledger.register_transcodings`` adds (tests/test_dataset_facts.py checks they agree)."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), DateAsISO()):
        transcoder.register(transcoding)
    return transcoder


# What DateAsISO's decode calls on its text, for the fast decoder (the library's own are listed there).
LEDGER_CONSTRUCTORS: dict[type[Transcoding], Callable[[str], Any]] = {DateAsISO: date.fromisoformat}


class StateDecoder:
    """A stored state decoded as ``transcoder.decode`` decodes it, in about half its time: the fast
    decoder's walk (eventstore/decode.py), and the transcoder itself for anything it leaves, so it
    refuses exactly what the transcoder refuses. For readers of states without events (the dataset)."""

    def __init__(self, transcoder: JSONTranscoder):
        self.transcoder = transcoder
        self._fast = FastDecoder(transcoder, LEDGER_CONSTRUCTORS)

    def decode(self, data: bytes) -> Any:
        state = self._fast.state(data)
        return self.transcoder.decode(data) if state is None else state


class LoanMapper(Mapper[UUID]):
    """The library's mapper, saying which stream and version it could not decode (its own errors name
    the version only inside a message, and a bogus topic not at all), and decoding the usual state
    in about half its time (eventstore/decode.py: the same objects; anything unusual goes the
    library's way, so it refuses exactly what the library refuses)."""

    def __init__(self, transcoder: Transcoder, compressor: Compressor | None = None, cipher: Cipher | None = None):
        super().__init__(transcoder, compressor=compressor, cipher=cipher)
        # Enciphered, compressed or another transcoder's form: the library's own way only.
        plain = compressor is None and cipher is None and type(transcoder) is JSONTranscoder
        self._fast = FastDecoder(cast(JSONTranscoder, transcoder), LEDGER_CONSTRUCTORS) if plain else None

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        if self._fast is not None and (event := self._fast.event(stored_event)) is not None:
            return event
        return self.library_event(stored_event)

    def library_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        """The library's own decoding (the judge of every state the fast path leaves to it)."""
        try:
            return super().to_domain_event(stored_event)
        except TopicError:
            why = f"its topic {stored_event.topic[:80]!r} names no event type"
        except MapperDeserialisationError as e:
            cause = e.__cause__
            why = "its state is not JSON" if isinstance(cause, ValueError) else "its state cannot be decoded"
        raise UnreadableEvent(str(stored_event.originator_id), stored_event.originator_version, why)


class _WriteTransaction(SQLiteTransaction):
    """``BEGIN IMMEDIATE``: the write lock first, then the reads.

    An insert reads before it writes (the chain's previous hashes). In a deferred
    transaction that read pins a snapshot, and if another process commits meanwhile
    SQLite cannot upgrade it: it answers "database is locked" at once, without waiting
    for the lock timeout. Taking the write lock up front makes writers queue instead.
    """

    def __enter__(self) -> Any:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        return cursor


class LedgerSQLiteRecorder(ChainedSQLite, SQLiteApplicationRecorder):
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        with self.datastore.get_connection(commit=True) as conn, _WriteTransaction(conn, commit=True) as c, c:
            return self._insert_events(c, stored_events, **kwargs)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS ledger_idempotency ("
            " key TEXT PRIMARY KEY, loan_id TEXT NOT NULL,"
            " content_hash TEXT NOT NULL, command TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS ledger_borrowers ( borrower_id TEXT PRIMARY KEY, data TEXT NOT NULL)",
            token_table.SQLITE_CREATE_TABLE,
        ]

    def _create_table(self, c: Any) -> None:
        super()._create_table(c)
        token_table.upgrade_sqlite(c)  # an older store's token table gains the party and expiry columns

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        returning: Sequence[int] | None = super()._insert_events(c, stored_events, **kwargs)
        keys: Sequence[KeyRecord] = kwargs.get("idempotency", ())
        if keys:
            c.executemany(
                "INSERT INTO ledger_idempotency VALUES (?,?,?,?)",
                [(k.key, k.loan_id, k.content_hash, k.command) for k in keys],
            )
        borrowers: dict[str, dict[str, Any]] = kwargs.get("borrowers", {})
        if borrowers:
            c.executemany(
                "INSERT INTO ledger_borrowers VALUES (?,?) ON CONFLICT(borrower_id) DO UPDATE SET data=excluded.data",
                [(b, json.dumps(d, sort_keys=True)) for b, d in borrowers.items()],
            )
        return returning

    def select_events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every event of several aggregates in one query (a batch's loans), in version order."""
        return [StoredEvent(UUID(r[0]), r[1], r[2], r[3]) for r in self._rows_of(originator_ids)]

    def notifications_of(self, originator_ids: Sequence[UUID]) -> list[Notification]:
        """As ``select_events_of``, each event with its notification id (its place in the log)."""
        return [Notification(UUID(r[0]), r[1], r[2], r[3], r[4]) for r in self._rows_of(originator_ids)]

    def _rows_of(self, originator_ids: Sequence[UUID]) -> list[Any]:
        rows: list[Any] = []
        with self.datastore.transaction(commit=False) as c:
            for where, params in in_chunks("originator_id", [i.hex for i in originator_ids]):
                c.execute(
                    f"SELECT originator_id, originator_version, topic, state, rowid FROM {self.events_table_name} "
                    f"WHERE {where} ORDER BY originator_id, originator_version",
                    params,
                )
                rows += c.fetchall()
        return rows

    def last_events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """The last event of each of several aggregates (none for one without events), in one read
        transaction: where each bank's settlements stand (ledger/settle.py)."""
        rows: list[Any] = []
        with self.datastore.transaction(commit=False) as c:
            for originator_id in originator_ids:
                c.execute(
                    f"SELECT originator_id, originator_version, topic, state FROM {self.events_table_name} "
                    "WHERE originator_id = ? ORDER BY originator_version DESC LIMIT 1",
                    (originator_id.hex,),
                )
                rows += c.fetchall()
        return [StoredEvent(UUID(r[0]), r[1], r[2], r[3]) for r in rows]

    @contextmanager
    def loan_lock(self, loan_id: str) -> Iterator[None]:
        """Writers retrying one loan take turns instead of racing, as on PostgreSQL.

        SQLite admits one writer at a time, but each optimistic retry reads before it writes,
        so writers that lost a race on one loan could keep losing it to each other and run out
        of attempts. A byte-range lock on a file beside the database, one byte per slot of the
        loan id's hash, queues them across processes (the equivalent of pg_advisory_lock).
        """
        db_name = self.datastore.pool.db_name
        if self.datastore.pool.is_sqlite_memory_mode:
            yield  # one process, one connection: nothing to queue
            return
        slot = zlib.crc32(loan_id.encode()) % LOAN_LOCK_SLOTS
        with open(f"{db_name}.loan-locks", "a") as f:
            fcntl.lockf(f, fcntl.LOCK_EX, 1, slot)
            try:
                yield
            finally:
                fcntl.lockf(f, fcntl.LOCK_UN, 1, slot)

    def borrower_data(self, borrower_id: str) -> dict[str, Any] | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT data FROM ledger_borrowers WHERE borrower_id = ?", (borrower_id,))
            row = c.fetchone()
        return None if row is None else json.loads(row[0])

    def find_keys(self, keys: Sequence[str]) -> dict[str, KeyRecord]:
        found: dict[str, KeyRecord] = {}
        with self.datastore.transaction(commit=False) as c:
            for where, params in in_chunks("key", keys):
                c.execute(f"SELECT key, loan_id, content_hash, command FROM ledger_idempotency WHERE {where}", params)
                for row in c.fetchall():
                    found[row[0]] = KeyRecord(row[0], row[1], row[2], row[3])
        return found

    def find_keys_then_events(
        self, keys: Sequence[str], ids_for: Callable[[dict[str, KeyRecord]], Sequence[UUID]]
    ) -> tuple[dict[str, KeyRecord], list[StoredEvent]]:
        """``find_keys``, then ``select_events_of(ids_for(found))``, in ONE read transaction (an append's
        two reads: the keys already stored, then the loans the rest of its commands stage on)."""
        found: dict[str, KeyRecord] = {}
        rows: list[Any] = []
        with self.datastore.transaction(commit=False) as c:
            for where, params in in_chunks("key", keys):
                c.execute(f"SELECT key, loan_id, content_hash, command FROM ledger_idempotency WHERE {where}", params)
                for row in c.fetchall():
                    found[row[0]] = KeyRecord(row[0], row[1], row[2], row[3])
            for where, params in in_chunks("originator_id", [i.hex for i in ids_for(found)]):
                c.execute(  # the query of _rows_of
                    f"SELECT originator_id, originator_version, topic, state FROM {self.events_table_name} "
                    f"WHERE {where} ORDER BY originator_id, originator_version",
                    params,
                )
                rows += c.fetchall()
        return found, [StoredEvent(UUID(r[0]), r[1], r[2], r[3]) for r in rows]


class LedgerPostgresRecorder(ChainedPostgres, PostgresApplicationRecorder):
    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        schema = Identifier(self.datastore.schema)
        self._schema = self.datastore.schema
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.ledger_idempotency ("
                " key text PRIMARY KEY, loan_id text NOT NULL,"
                " content_hash text NOT NULL, command text NOT NULL)"
            ).format(schema),
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.ledger_borrowers ( borrower_id text PRIMARY KEY, data jsonb NOT NULL)"
            ).format(schema),
            *token_table.postgres_create_table(self._schema),
        ]
        # One statement with five arrays: the library's composite-array insert is text-encoded and
        # costs as much again in escaping and parsing. %b sends them binary: as text, psycopg quotes
        # every bytea element in Python (measured: docs/decisions.md, "Figures out of the code").
        self._insert_unnest = SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state, chain_hash) "  # AUDIT: chain_hash
            "SELECT * FROM unnest(%b::{}[], %b::bigint[], %b::text[], %b::bytea[], %b::text[]) "
            "RETURNING notification_id"
        ).format(schema, Identifier(self.events_table_name), SQL(self.datastore.originator_id_type))
        self._insert_keys = SQL(
            "INSERT INTO {}.ledger_idempotency (key, loan_id, content_hash, command) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[])"
        ).format(schema)
        self._upsert_borrowers = SQL(
            "INSERT INTO {}.ledger_borrowers (borrower_id, data) "
            "SELECT * FROM unnest(%s::text[], %s::jsonb[]) "
            "ON CONFLICT (borrower_id) DO UPDATE SET data = excluded.data"
        ).format(schema)

    def create_table(self) -> None:
        """Services starting together on a new database take turns: one creates, the rest wait.

        Held for the whole setup, on a connection of its own, because the library creates its
        composite types in transactions of their own before the tables: two processes racing on
        ``CREATE TYPE`` get a unique violation on ``pg_type`` (not the DuplicateObject it expects),
        and the loser failed to open the store (1 start in 10 of six processes at once); racing on
        ``CREATE OR REPLACE FUNCTION`` gives "tuple concurrently updated".
        """
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """The library's insert (one transaction), without pipeline mode and without its retries.

        Not pipelined: psycopg's pipeline mode hung a large batch for good under load (the server
        waiting in ClientRead for the rest of the INSERT, the client waiting for its results; seen
        in the suite, 23 minutes, psycopg 3.3.9), the failure its issue #685 describes. The
        statements of one insert are few, and the clock's stamp already waits for a result mid-way,
        so the pipeline saved little. A unique violation (another writer stored one of our keys
        or loan versions first) is raised by its statement, and the pool turns it into the
        IntegrityError that Ledger.append's fallback handles; the library would keep it aside,
        commit, and retry a "pipeline aborted" ten times over 2 s. Connection loss is retried by the
        ledger (eventstore.retry), with a deadline, not here.
        """
        if self.datastore.enable_db_functions:
            raise BrokenInvariant("the database-function path skips _insert_events: it must stay off")
        with self.datastore.get_connection() as conn, conn.transaction():
            with conn.cursor() as curs:
                self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            with conn.cursor() as curs:
                self._insert_stored_events(curs, stored_events, **kwargs)
                return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        # As the library does: the table lock hands out notification ids in commit order;
        # recorded times are stamped under it, so they follow the same order.
        self._lock_and_notify(curs)
        stored_events = self._stamp(curs, stored_events)
        curs.execute(
            self._insert_unnest,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
                self.chain_for(stored_events),  # AUDIT: from the previous hashes read in ChainedPostgres._insert_events
            ),
            binary=True,
        )

    def _lock_and_notify(self, curs: Any) -> None:
        """What the library's ``_lock_table`` and ``_notify_channel`` send (its lock timeout, the EXCLUSIVE
        table lock, the NOTIFY its subscribers wait for), in that order, as ONE simple query: one round
        trip where they took three. They take no parameters, so one query may hold all of them."""
        statements = [*self.lock_table_statements, SQL("NOTIFY {0}").format(Identifier(self.channel_name))]
        if len(statements) != 3:
            raise BrokenInvariant(f"the library's table lock is {len(statements) - 1} statements, not 2 (library.py)")
        curs.execute(SQL("; ").join(statements))

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        # Sorted, so two writers racing on overlapping keys wait rather than deadlock.
        keys = sorted(kwargs.get("idempotency", ()), key=lambda k: k.key)
        if keys:
            curs.execute(
                self._insert_keys,
                (
                    [k.key for k in keys],
                    [k.loan_id for k in keys],
                    [k.content_hash for k in keys],
                    [k.command for k in keys],
                ),
                binary=True,
            )
        borrowers = sorted(kwargs.get("borrowers", {}).items())
        if borrowers:
            curs.execute(
                self._upsert_borrowers,
                ([b for b, _ in borrowers], [json.dumps(d, sort_keys=True) for _, d in borrowers]),
            )

    def select_events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """Every event of several aggregates in one query (a batch's loans), in version order."""
        return [StoredEvent(r[0], r[1], r[2], bytes(r[3])) for r in self._rows_of(originator_ids)]

    def notifications_of(self, originator_ids: Sequence[UUID]) -> list[Notification]:
        """As ``select_events_of``, each event with its notification id (its place in the log)."""
        return [Notification(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in self._rows_of(originator_ids)]

    def _rows_of(self, originator_ids: Sequence[UUID]) -> list[Any]:
        if not originator_ids:
            return []
        with self.datastore.transaction(commit=False) as curs:
            curs.row_factory = tuple_row  # the library's connections make a dict of each row: tuples are cheaper
            # One index probe per id (see BY_INDEX): a plain join or "= ANY(ids)" lets the planner
            # pick a hash join over the whole table whenever its statistics lag a bulk load, and an
            # append batch then costs as much as scanning the book (seen at 500k events: 0.2-0.5 s).
            curs.execute(
                "SELECT e.originator_id, e.originator_version, e.topic, e.state, e.notification_id "
                "FROM unnest(%s::uuid[]) AS i(id), "
                f'LATERAL (SELECT * FROM "{self._schema}"."{self.events_table_name}" '
                f"WHERE originator_id = i.id {BY_INDEX}) e ORDER BY e.originator_id, e.originator_version",
                (list(originator_ids),),
            )
            rows: list[Any] = curs.fetchall()
            return rows

    def last_events_of(self, originator_ids: Sequence[UUID]) -> list[StoredEvent]:
        """The last event of each of several aggregates (none for one without events): where each bank's
        settlements stand (ledger/settle.py). ONE round trip on a pooled connection, without BEGIN and
        ROLLBACK (as ``find_keys_then_events``), where the library's ``select_events(desc=True,
        limit=1)`` took three for each."""
        if not originator_ids:
            return []
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            if not conn.autocommit:  # the library's pool sets it on every connection (after_connect)
                raise BrokenInvariant("a pooled connection does not autocommit: its reads would hold a transaction")
            curs.execute(
                "SELECT e.originator_id, e.originator_version, e.topic, e.state FROM unnest(%s::uuid[]) AS i(id), "
                f'LATERAL (SELECT * FROM "{self._schema}"."{self.events_table_name}" '
                "WHERE originator_id = i.id ORDER BY originator_version DESC LIMIT 1) e",
                (list(originator_ids),),
            )
            rows = curs.fetchall()
        return [StoredEvent(r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"])) for r in rows]

    def borrower_data(self, borrower_id: str) -> dict[str, Any] | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL("SELECT data FROM {}.ledger_borrowers WHERE borrower_id = %s").format(Identifier(self._schema)),
                (borrower_id,),
            )
            row = curs.fetchone()
        return None if row is None else row["data"]

    @contextmanager
    def loan_lock(self, loan_id: str) -> Iterator[None]:
        """Writers retrying one loan take turns instead of racing (session advisory lock)."""
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (loan_id,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (loan_id,))

    def find_keys(self, keys: Sequence[str]) -> dict[str, KeyRecord]:
        if not keys:
            return {}
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT k.key, k.loan_id, k.content_hash, k.command FROM unnest(%s::text[]) AS i(key), "
                f'LATERAL (SELECT * FROM "{self._schema}".ledger_idempotency WHERE key = i.key {BY_INDEX}) k',
                (list(keys),),
            )
            return {
                r["key"]: KeyRecord(r["key"], r["loan_id"], r["content_hash"], r["command"]) for r in curs.fetchall()
            }

    def find_keys_then_events(
        self, keys: Sequence[str], ids_for: Callable[[dict[str, KeyRecord]], Sequence[UUID]]
    ) -> tuple[dict[str, KeyRecord], list[StoredEvent]]:
        """``find_keys``, then ``select_events_of(ids_for(found))``, on ONE pooled connection and without
        BEGIN and ROLLBACK: an append's two reads (the keys already stored, then the loans the rest of its
        commands stage on) in two round trips where they took six. Each query is its own snapshot
        (the pool's connections autocommit), as when they were two transactions: the ledger rechecks a
        rejection against the keys, and a write on a loan that moved is refused by its version. The
        queries are those of ``find_keys`` and ``_rows_of``."""
        found: dict[str, KeyRecord] = {}
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            if not conn.autocommit:  # the library's pool sets it on every connection (after_connect)
                raise BrokenInvariant("a pooled connection does not autocommit: its reads would hold a transaction")
            if keys:
                curs.execute(
                    "SELECT k.key, k.loan_id, k.content_hash, k.command FROM unnest(%s::text[]) AS i(key), "
                    f'LATERAL (SELECT * FROM "{self._schema}".ledger_idempotency WHERE key = i.key {BY_INDEX}) k',
                    (list(keys),),
                )
                for r in curs.fetchall():
                    found[r["key"]] = KeyRecord(r["key"], r["loan_id"], r["content_hash"], r["command"])
            ids = list(ids_for(found))
            if not ids:
                return found, []
            curs.execute(
                "SELECT e.originator_id, e.originator_version, e.topic, e.state "
                "FROM unnest(%s::uuid[]) AS i(id), "
                f'LATERAL (SELECT * FROM "{self._schema}"."{self.events_table_name}" '
                f"WHERE originator_id = i.id {BY_INDEX}) e ORDER BY e.originator_id, e.originator_version",
                (ids,),
            )
            rows = curs.fetchall()
        return found, [
            StoredEvent(r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"])) for r in rows
        ]


# What the ledger's store is: the library's application recorder plus the ledger's own tables
# (keys, borrowers, the audit chain). Ledger.recorder is declared as this, so its callers
# reach find_keys, select_events_of, erase_borrower and the audit reads without casts.
LedgerRecorder = LedgerSQLiteRecorder | LedgerPostgresRecorder
