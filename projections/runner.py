"""Feeding projections from the store's notification log, exactly once.

A runner reads a page of notifications after its tracked position, works out
the page's view changes in memory, then writes them and moves the position in
ONE transaction of the store's own database. The position moves by
compare-and-set (``UPDATE ... WHERE position = <where this page started>``):
a runner that was overtaken meanwhile (another process, or a rebuild that
reset it) writes nothing and carries on from the position it finds. Killed at
any point, a runner leaves either the whole page and its position or neither;
the next run starts from the last committed position. So every event is
counted once, whatever stops or races.

Reading the views outside that transaction (a loan's open lines, when it is
not cached) is safe for the same reason: only a runner changes the views, and
it moves the position in the same commit, which then fails our compare-and-set.

Gaps in notification ids are safe to step over, and reading "ids after my
position" never skips a committed event:
- PostgreSQL: every insert into the events table first takes
  ``LOCK TABLE ... IN EXCLUSIVE MODE`` (the library's recorder and ours, see
  eventstore/store.py), so a transaction draws its ids from the sequence and commits
  before the next writer draws any. Ids become visible in increasing order; a
  gap is a transaction that drew ids and rolled back, and a sequence never
  hands those ids out again, so the gap can never fill in behind a reader.
- SQLite: the database admits one writer at a time, with the same effect.
tests/test_projections.py appends a batch that fails after drawing its ids and
checks that the projection still counts everything around the gap.
"""

from __future__ import annotations

import contextlib
import fcntl
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg

from domain.errors import LedgerError
from domain.loan import Loan
from eventstore.retry import CONNECTION_ERRORS, retrying
from projections import book, collector, schema
from projections.db import _SCHEMA_LOCK, ViewDb
from projections.source import EventLog

PROJECTIONS = {book.NAME: book}
_REBUILD_LOCK = 0x52454255  # "REBU": PostgreSQL advisory lock held by the one rebuild under way
PART_MARK = ":"  # a part's tracking row is "<rebuild's row>:<i>/<n>"
PAGE_SIZE = 1000  # events per transaction: long enough to amortise a commit, short enough not to block writers


_views: weakref.WeakKeyDictionary[Any, ViewDb] = weakref.WeakKeyDictionary()  # per app (schema checked once)
_caches: weakref.WeakKeyDictionary[Any, dict[str, book.LoanCache]] = (
    weakref.WeakKeyDictionary()
)  # app -> {name: LoanCache}


class LogShare(Protocol):
    """The share of the log one process of a rebuild in parts applies (partitions.Partition)."""

    @property
    def head(self) -> int: ...  # the last notification id it applies

    def still_wanted(self) -> None: ...

    def mine(self, notifications: Sequence[Any]) -> Sequence[Any]: ...


class Overtaken(Exception):
    """Another runner moved the position first; this page was not written."""


class ProjectionFailed(LedgerError):
    """An event the projection cannot apply: it stops just before it, and says which.

    The projection never steps over an event (its balances would silently be wrong); it
    stays at the event before, records the failure for ``projections status``, and tries
    again on the next catch-up. Reads from the event log (``loan show``) keep working.
    """

    def __init__(self, name: str, notification_id: int, loan_id: str, error: str):
        self.name, self.notification_id, self.loan_id, self.error = name, notification_id, loan_id, error
        super().__init__(
            f"projection {name} is stopped at notification {notification_id - 1}: it cannot apply "
            f"notification {notification_id} (loan {loan_id}): {error}"
        )


@dataclass(frozen=True)
class Status:
    name: str
    position: int  # the last notification id applied
    head: int  # the highest notification id in the store
    failure: str | None = None  # why the projection is stopped, if it is

    @property
    def lag(self) -> int:
        """Notification ids not applied yet (an upper bound on events: ids can have gaps)."""
        return self.head - self.position


def views(app: EventLog) -> ViewDb:
    """The views of this store, created on first use (or recreated for a new schema version)."""
    db = _views.get(app)
    if db is None:
        db = ViewDb(app.recorder.datastore)
        db.ensure_schema(list(PROJECTIONS))
        _views[app] = db
    return db


def cache(app: EventLog, name: str = book.NAME) -> book.LoanCache:
    return _caches.setdefault(app, {}).setdefault(name, book.LoanCache())


def position(db: ViewDb, name: str) -> int:
    at: int = db.query("SELECT position FROM proj_tracking WHERE name = ?", (name,))[0][0]
    return at


def status(app: EventLog) -> list[Status]:
    db = views(app)
    head = app.recorder.max_notification_id() or 0
    return [Status(name, position(db, name), head, _failure(db, name)) for name in PROJECTIONS]


def _failure(db: ViewDb, name: str) -> str | None:
    rows = db.query("SELECT value FROM proj_meta WHERE key = ?", (f"failed:{name}",))
    return rows[0][0] if rows else None


def set_failure(db: ViewDb, name: str, failure: ProjectionFailed | None) -> None:
    with db.transaction() as c:
        c.execute("DELETE FROM proj_meta WHERE key = ?", (f"failed:{name}",))
        if failure is not None:
            c.execute("INSERT INTO proj_meta (key, value) VALUES (?, ?)", (f"failed:{name}", str(failure)))


@collector.held  # (see collector.py: a quarter of a rebuild was the GC re-walking the loan cache)
def catch_up(
    app: EventLog, name: str = book.NAME, page_size: int = PAGE_SIZE, progress: Callable[[int], None] | None = None
) -> int:
    """Apply every notification after the projection's position; return how many this call applied.

    ``progress`` is told how far each page moved the position, in notification ids.
    """
    if page_size <= 0:
        raise ValueError(f"page_size must be positive, not {page_size}")
    done = [0]

    def resume() -> int:
        # After a lost connection: start again from the committed position, with no cached state
        # (a page whose commit was lost with the connection may or may not have been written).
        cache(app, name).clear()
        return apply_log(app, name, page_size, progress, done)

    return retrying(app.settings.retry_seconds, f"projection {name}", resume)


def apply_log(
    app: EventLog,
    name: str,
    page_size: int,
    progress: Callable[[int], None] | None,
    done: list[int],
    db: ViewDb | None = None,
    track: str | None = None,
    loans: book.LoanCache | None = None,
    part: LogShare | None = None,
) -> int:
    """The live views by default; a rebuild passes its own tables (db), tracking row and cache,
    and a rebuild in parts the part of the log this process applies (see partitions.py)."""
    db = db or views(app)
    projection = PROJECTIONS[name]
    loans = cache(app, name) if loans is None else loans
    track = track or name
    at = position(db, track)
    failed_before = part is None and _failure(db, name) is not None
    size = page_size
    while notes := app.recorder.select_notifications(at + 1, size, stop=None if part is None else part.head):
        if part is not None:
            part.still_wanted()  # a part whose rebuild was killed stops here, before it writes again
        new_at = notes[-1].id
        try:
            mine = notes if part is None else part.mine(notes)
            page = projection.plan_page(app, db, mine, loans)
            with db.transaction() as c:
                if not c.execute(
                    "UPDATE proj_tracking SET position = ? WHERE name = ? AND position = ?", (new_at, track, at)
                ):
                    raise Overtaken(f"projection {track} moved from {at}; this page was not written")
                page.write(c)
        except Overtaken:
            loans.clear()
            at = position(db, track)  # another runner applied it: carry on from where it got to
            continue
        except CONNECTION_ERRORS:  # losing the store is no fault of an event: catch_up's retry handles it
            raise
        except Exception as e:  # an event this projection cannot apply (a bug, or data it does not expect)
            loans.clear()  # states may be half-applied
            if len(notes) > 1:
                size = 1  # find the one event: apply the page's events before it one at a time
                continue
            failure = ProjectionFailed(name, notes[0].id, _loan_of(app, db, notes[0]), _one_line(e))
            if part is None:  # a part's failure is recorded by the rebuild that started it: the first one wins
                set_failure(db, name, failure)
            raise failure from e
        loans.put(page.states)
        size = page_size
        done[0] += len(mine)
        if progress:
            progress(new_at - at)
        at = new_at
    if failed_before:
        set_failure(db, name, None)  # it got past the event that stopped it (fixed code, or a rebuild)
    return done[0]


def _one_line(error: Exception) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}"


def _loan_of(app: EventLog, db: ViewDb, notification: Any) -> str:
    """The loan id of a stream, for the message; its store id if even that cannot be read."""
    rows = db.query("SELECT loan_id FROM proj_loans WHERE loan_uuid = ?", (str(notification.originator_id),))
    if rows:
        loan_id: str = rows[0][0]
        return loan_id
    try:
        created = app.mapper.to_domain_event(notification)
    except Exception:  # the failing event may not even decode: the uuid still names the stream
        return str(notification.originator_id)
    return created.loan_id if isinstance(created, Loan.Applied) else str(notification.originator_id)


def reset(app: EventLog, name: str = book.NAME) -> None:
    """Empty the views and the position in one transaction, ready to replay from the first event."""

    def empty() -> None:
        db = views(app)
        with db.transaction() as c:
            for table in PROJECTIONS[name].VIEWS:
                c.execute(f"DELETE FROM {table}")
            c.execute("UPDATE proj_tracking SET position = 0 WHERE name = ?", (name,))

    retrying(app.settings.retry_seconds, f"resetting projection {name}", empty)
    cache(app, name).clear()


def rebuild(
    app: EventLog,
    name: str = book.NAME,
    page_size: int = PAGE_SIZE,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
) -> int:
    """From empty: the same rows as built incrementally (ids and times come from the events).

    Readers never see a partial book: the new views are filled beside the live ones (tables
    named with schema.REBUILD_SUFFIX, their own tracking row and cache) and swapped in by one
    transaction. Until then readers, and runners keeping the live views up to date, carry on
    with the old book. One rebuild at a time per store (a second waits for the first).

    ``workers`` > 1 first fills the new tables in that many processes, each applying the loans
    of its share up to the head found at the start (partitions.py); this process then catches
    them up from there as usual. The rows are the same: a loan's rows depend on its own events
    and their notification ids only.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    live = views(app)
    shadow = ViewDb(app.recorder.datastore, schema.REBUILD_SUFFIX)
    track = name + schema.REBUILD_SUFFIX
    seconds = app.settings.retry_seconds
    with _one_rebuild_at_a_time(live):
        retrying(seconds, f"preparing to rebuild {name}", lambda: _prepare(shadow, track))
        loans, done = book.LoanCache(), [0]
        if workers > 1:
            from projections import partitions  # (it runs this module's catch-up in each part)

            done[0] = partitions.fill(app, name, page_size, progress, workers, shadow, track)

        def resume() -> int:
            loans.clear()
            return apply_log(app, name, page_size, progress, done, db=shadow, track=track, loans=loans)

        retrying(seconds, f"rebuilding projection {name}", resume)
        retrying(seconds, f"swapping in the rebuilt {name}", lambda: _swap(live, name, track))
    cache(app, name).clear()
    return done[0] + catch_up(app, name, page_size)  # what was appended while it was being built


def _prepare(shadow: ViewDb, track: str) -> None:
    """Empty new view tables and a tracking row at 0, in one transaction."""
    with shadow.transaction() as c:
        if shadow.postgres:  # the same lock as view setup: DDL one process at a time
            c.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
        for table in schema.VIEW_TABLES:
            c.execute(f"DROP TABLE IF EXISTS {table}")  # the cursor names them with the suffix
        for statement in schema.view_statements(shadow.postgres):
            c.execute(statement)
        c.execute(
            "INSERT INTO proj_tracking (name, position) VALUES (?, 0) ON CONFLICT (name) DO UPDATE SET position = 0",
            (track,),
        )
        # the parts of a rebuild in parts that was killed: one still running finds its row gone and stops
        c.execute("DELETE FROM proj_tracking WHERE substr(name, 1, ?) = ?", (len(track) + 1, track + PART_MARK))


def _swap(live: ViewDb, name: str, track: str) -> None:
    """The rebuilt tables become the live ones, with the rebuild's position, in one transaction."""
    suffix = schema.REBUILD_SUFFIX
    with live.transaction() as c:
        if live.postgres:
            # Wait for no reader longer than the deadlock check (1 s) would: a reader holding one view
            # while it asks for the other must win, and this swap is retried (eventstore.retry).
            c.execute("SET LOCAL lock_timeout = '500ms'")
            c.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            # Tracking rows before tables, in the order runners take them.
            c.query("SELECT position FROM proj_tracking WHERE name IN (?, ?) FOR UPDATE", (name, track))
            # readers join in this order (proj_loans, proj_journal, then the custody tables and the sums)
            c.execute(
                "LOCK TABLE proj_loans, proj_journal, proj_assignments, proj_collections, proj_loan_sums "
                "IN ACCESS EXCLUSIVE MODE"
            )
        [(built_to,)] = c.query("SELECT position FROM proj_tracking WHERE name = ?", (track,))
        for table in schema.VIEW_TABLES:
            c.execute(f"DROP TABLE {table}")
            c.execute(f"ALTER TABLE {table}{suffix} RENAME TO {table}")
        if live.postgres:
            for index in (*schema.VIEW_INDEXES, *(f"{t}_pkey" for t in schema.VIEW_TABLES)):
                base = index.removesuffix("_pkey")
                renamed_from = f"{base}{suffix}_pkey" if index.endswith("_pkey") else f"{index}{suffix}"
                c.execute(f"ALTER INDEX {renamed_from} RENAME TO {index}")
        else:  # SQLite cannot rename an index: build the live-named ones (readers are not blocked)
            for index in schema.VIEW_INDEXES:
                c.execute(f"DROP INDEX {index}{suffix}")
            for statement in schema.view_statements(postgres=False):
                if statement.startswith("CREATE INDEX"):
                    c.execute(statement)
        c.execute("UPDATE proj_tracking SET position = ? WHERE name = ?", (built_to, name))
        c.execute("DELETE FROM proj_tracking WHERE name = ?", (track,))


@contextmanager
def _one_rebuild_at_a_time(db: ViewDb) -> Iterator[None]:
    if db.postgres:
        with db.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_REBUILD_LOCK,))
            try:
                yield
            finally:
                # a session lock goes with its session: after a restart there is nothing to unlock
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (_REBUILD_LOCK,))
        return
    path = Path(f"{db.datastore.pool.db_name}.rebuild-lock")  # beside the database file
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
