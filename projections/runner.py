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
  ledger/store.py), so a transaction draws its ids from the sequence and commits
  before the next writer draws any. Ids become visible in increasing order; a
  gap is a transaction that drew ids and rolled back, and a sequence never
  hands those ids out again, so the gap can never fill in behind a reader.
- SQLite: the database admits one writer at a time, with the same effect.
tests/test_projections.py appends a batch that fails after drawing its ids and
checks that the projection still counts everything around the gap.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError

from domain.errors import LedgerError
from projections import book, collector
from projections.db import ViewDb

PROJECTIONS = {book.NAME: book}
PAGE_SIZE = 1000  # events per transaction: long enough to amortise a commit, short enough not to block writers

# Losing the database is not a fault of an event: it propagates to the caller's retry.
_CONNECTION_ERRORS = (OperationalError, InterfaceError)

_views: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # app -> ViewDb (its schema checked once)
_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # app -> {name: LoanCache}


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


def views(app: Any) -> ViewDb:
    """The views of this store, created on first use (or recreated for a new schema version)."""
    db = _views.get(app)
    if db is None:
        db = ViewDb(app.recorder.datastore)
        db.ensure_schema(list(PROJECTIONS))
        _views[app] = db
    return db


def cache(app: Any, name: str = book.NAME) -> book.LoanCache:
    return _caches.setdefault(app, {}).setdefault(name, book.LoanCache())


def position(db: ViewDb, name: str) -> int:
    return db.query("SELECT position FROM proj_tracking WHERE name = ?", (name,))[0][0]


def status(app: Any) -> list[Status]:
    db = views(app)
    head = app.recorder.max_notification_id() or 0
    return [Status(name, position(db, name), head, _failure(db, name)) for name in PROJECTIONS]


def _failure(db: ViewDb, name: str) -> str | None:
    rows = db.query("SELECT value FROM proj_meta WHERE key = ?", (f"failed:{name}",))
    return rows[0][0] if rows else None


def _set_failure(db: ViewDb, name: str, failure: ProjectionFailed | None) -> None:
    with db.transaction() as c:
        c.execute("DELETE FROM proj_meta WHERE key = ?", (f"failed:{name}",))
        if failure is not None:
            c.execute("INSERT INTO proj_meta (key, value) VALUES (?, ?)", (f"failed:{name}", str(failure)))


@collector.held  # (see collector.py: a quarter of a rebuild was the GC re-walking the loan cache)
def catch_up(
    app: Any, name: str = book.NAME, page_size: int = PAGE_SIZE, progress: Callable[[int], None] | None = None
) -> int:
    """Apply every notification after the projection's position; return how many this call applied.

    ``progress`` is told how far each page moved the position, in notification ids.
    """
    assert page_size > 0
    db = views(app)
    projection = PROJECTIONS[name]
    loans = cache(app, name)
    done = 0
    at = position(db, name)
    failed_before = _failure(db, name) is not None
    size = page_size
    while notes := app.recorder.select_notifications(at + 1, size):
        new_at = notes[-1].id
        try:
            page = projection.plan_page(app, db, notes, loans)
            with db.transaction() as c:
                if not c.execute(
                    "UPDATE proj_tracking SET position = ? WHERE name = ? AND position = ?", (new_at, name, at)
                ):
                    raise Overtaken(f"projection {name} moved from {at}; this page was not written")
                page.write(c)
        except Overtaken:
            loans.clear()
            at = position(db, name)  # another runner applied it: carry on from where it got to
            continue
        except _CONNECTION_ERRORS:
            raise
        except Exception as e:  # an event this projection cannot apply (a bug, or data it does not expect)
            loans.clear()  # states may be half-applied
            if len(notes) > 1:
                size = 1  # find the one event: apply the page's events before it one at a time
                continue
            failure = ProjectionFailed(name, notes[0].id, _loan_of(app, db, notes[0]), _one_line(e))
            _set_failure(db, name, failure)
            raise failure from e
        loans.put(page.states)
        size = page_size
        done += len(notes)
        if progress:
            progress(new_at - at)
        at = new_at
    if failed_before:
        _set_failure(db, name, None)  # it got past the event that stopped it (fixed code, or a rebuild)
    return done


def _one_line(error: Exception) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}"


def _loan_of(app: Any, db: ViewDb, notification: Any) -> str:
    """The loan id of a stream, for the message; its store id if even that cannot be read."""
    rows = db.query("SELECT loan_id FROM proj_loans WHERE loan_uuid = ?", (str(notification.originator_id),))
    if rows:
        return rows[0][0]
    try:
        return str(app.mapper.to_domain_event(notification).loan_id)
    except Exception:  # the failing event may not even decode: the uuid still names the stream
        return str(notification.originator_id)


def reset(app: Any, name: str = book.NAME) -> None:
    """Empty the views and the position in one transaction, ready to replay from the first event."""
    db = views(app)
    with db.transaction() as c:
        for table in PROJECTIONS[name].VIEWS:
            c.execute(f"DELETE FROM {table}")
        c.execute("UPDATE proj_tracking SET position = 0 WHERE name = ?", (name,))
    cache(app, name).clear()


def rebuild(
    app: Any, name: str = book.NAME, page_size: int = PAGE_SIZE, progress: Callable[[int], None] | None = None
) -> int:
    """From empty: the same rows as built incrementally (ids and times come from the events)."""
    reset(app, name)
    return catch_up(app, name, page_size, progress)
