"""Recorded time is stamped at commit, by one clock, in notification order.

An event's recorded time (its ``timestamp``, what "as known at T" compares) is not
the writer's clock when it staged the command: it is taken inside the transaction
that stores the event, after the insert lock (PostgreSQL's table lock, SQLite's
write lock), as

    t = max(store clock, last recorded time + 1 µs)

and every event of that transaction gets the same ``t``: they became known
together, in one commit. The store clock is the database's ``clock_timestamp()``
on PostgreSQL (one clock for every host that writes) and the writing host's clock
on SQLite (one file, one host). The last recorded time lives in ``ledger_clock``,
one row updated under the same lock, which only ever moves forward (a trigger
refuses anything else). So recorded times never decrease in notification order nor
within a loan, whatever the writers' clocks say, and "as known at T" never changes
once a commit stamped later than T is visible.

The time is written into the state bytes the library produced, before the chain
hash is computed over them. The library's JSON puts ``timestamp`` first (the
dataclass's first field after the two it pops), so the stamp replaces one known
span and leaves every other byte as encoded; a state without that prefix is not
one of the ledger's events (the library's own recorder tests store arbitrary
bytes) and is stored as given.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Identifier

PREFIX = b'{"timestamp":{"_type_":"datetime_iso","_data_":"'
LEDGER_TOPICS = "domain.loan:"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HEAD = 96  # bytes of a state that hold the prefix and its timestamp, with room to spare


class UnstampableEvent(AssertionError):
    """A ledger event whose state does not start with its timestamp: the library's encoding changed."""


def datetime_of(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def micros_of(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


def restamp(stored_events: Sequence[StoredEvent], us: int) -> list[StoredEvent]:
    """The events with their recorded time replaced by ``us`` (microseconds since the epoch)."""
    stamp = datetime_of(us).isoformat(timespec="microseconds").encode()
    stamped = []
    for e in stored_events:
        state = e.state
        if state.startswith(PREFIX):
            end = state.index(b'"', len(PREFIX))
            state = PREFIX + stamp + state[end:]
        elif e.topic.startswith(LEDGER_TOPICS):
            raise UnstampableEvent(f"{e.topic} state does not start with its timestamp: {state[:60]!r}")
        stamped.append(StoredEvent(e.originator_id, e.originator_version, e.topic, state))
    return stamped


def recorded_us(head: bytes | None) -> int:
    """The recorded time at the start of a state (0 when it carries none)."""
    if not head or not head.startswith(PREFIX):
        return 0
    end = head.index(b'"', len(PREFIX))
    return micros_of(datetime.fromisoformat(head[len(PREFIX) : end].decode()))


def host_clock_us() -> int:
    return time.time_ns() // 1000


class ClockSQLite:
    """For the SQLite recorder: the clock table, and the stamp taken under the write lock."""

    events_table_name: str

    def _create_clock(self, c: Any) -> None:
        c.execute(
            "CREATE TABLE IF NOT EXISTS ledger_clock"
            " (one INTEGER PRIMARY KEY CHECK (one = 1), last_us INTEGER NOT NULL)"
        )
        for op, when in (("UPDATE", "WHEN NEW.last_us <= OLD.last_us OR NEW.one != OLD.one "), ("DELETE", "")):
            c.execute(
                f"CREATE TRIGGER IF NOT EXISTS ledger_clock_no_{op.lower()} BEFORE {op} ON ledger_clock {when}"
                f"BEGIN SELECT RAISE(ABORT, 'ledger_clock only moves forward: {op} refused'); END"
            )
        c.execute("SELECT 1 FROM ledger_clock")
        if c.fetchone() is None:
            # a store written before times were stamped at commit: start after its latest event
            c.execute(
                f"SELECT max(substr(state, 1, {HEAD})) FROM {self.events_table_name} "
                f"WHERE substr(state, 1, {len(PREFIX)}) = ?",
                (PREFIX,),
            )
            c.execute("INSERT OR IGNORE INTO ledger_clock VALUES (1, ?)", (recorded_us(c.fetchone()[0]),))

    def _stamp(self, c: Any, stored_events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """Call holding the write lock (the recorder's transactions begin IMMEDIATE)."""
        c.execute("UPDATE ledger_clock SET last_us = max(?, last_us + 1) RETURNING last_us", (host_clock_us(),))
        row = c.fetchone()
        if row is None:
            raise RuntimeError("ledger_clock has no row: run `ledger init` to restore it")
        return restamp(stored_events, row[0])


class ClockPostgres:
    """For the PostgreSQL recorder: the clock table, and the stamp taken under the table lock."""

    events_table_name: str
    datastore: Any

    def _create_clock(self, curs: Any) -> None:
        schema, events = Identifier(self.datastore.schema), Identifier(self.events_table_name)
        curs.execute(
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.ledger_clock"
                " (one int PRIMARY KEY CHECK (one = 1), last_us bigint NOT NULL)"
            ).format(schema)
        )
        curs.execute(
            SQL(
                "CREATE OR REPLACE FUNCTION {}.ledger_clock_forward() RETURNS trigger LANGUAGE plpgsql AS $f$ "
                "BEGIN IF TG_OP = 'DELETE' OR NEW.one <> OLD.one OR NEW.last_us <= OLD.last_us THEN "
                "RAISE EXCEPTION 'ledger_clock only moves forward: % refused', TG_OP "
                "USING ERRCODE = 'insufficient_privilege'; END IF; RETURN NEW; END $f$"
            ).format(schema)
        )
        curs.execute(
            "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = 'ledger_clock' "
            "AND t.tgname = 'ledger_clock_forward' AND t.tgenabled = 'A'",
            (self.datastore.schema,),
        )
        if curs.fetchone() is None:
            curs.execute(
                SQL(
                    "CREATE OR REPLACE TRIGGER ledger_clock_forward BEFORE UPDATE OR DELETE ON {schema}.ledger_clock "
                    "FOR EACH ROW EXECUTE FUNCTION {schema}.ledger_clock_forward()"
                ).format(schema=schema)
            )
            curs.execute(SQL("ALTER TABLE {}.ledger_clock ENABLE ALWAYS TRIGGER ledger_clock_forward").format(schema))
        curs.execute(SQL("SELECT 1 FROM {}.ledger_clock").format(schema))
        if curs.fetchone() is None:
            # a store written before times were stamped at commit: start after its latest event.
            # Hex keeps the byte order under text comparison (bytea has no max()).
            curs.execute(
                SQL(
                    "SELECT max(encode(substring(state FROM 1 FOR {}), 'hex') COLLATE \"C\") AS head FROM {}.{} "
                    "WHERE substring(state FROM 1 FOR {}) = %s"
                ).format(SQL(str(HEAD)), schema, events, SQL(str(len(PREFIX)))),
                (PREFIX,),
            )
            head = curs.fetchone()["head"]
            curs.execute(
                SQL("INSERT INTO {}.ledger_clock VALUES (1, %s) ON CONFLICT DO NOTHING").format(schema),
                (recorded_us(bytes.fromhex(head) if head else None),),
            )

    def _stamp(self, curs: Any, stored_events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """Call holding the events' table lock, so stamps follow notification ids."""
        curs.execute(
            SQL(
                "UPDATE {}.ledger_clock SET last_us = "
                "greatest((extract(epoch FROM clock_timestamp()) * 1000000)::bigint, last_us + 1) RETURNING last_us"
            ).format(Identifier(self.datastore.schema)),
            prepare=True,
        )
        row = curs.fetchone()
        if row is None:
            raise RuntimeError("ledger_clock has no row: run `ledger init` to restore it")
        return restamp(stored_events, row["last_us"])
