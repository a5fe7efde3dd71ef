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

from ledger.retry import retrying
from projections import book
from projections.db import ViewDb

PROJECTIONS = {book.NAME: book}
PAGE_SIZE = 1000  # events per transaction: long enough to amortise a commit, short enough not to block writers

_views: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # app -> ViewDb (its schema checked once)
_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # app -> {name: LoanCache}


class Overtaken(Exception):
    """Another runner moved the position first; this page was not written."""


@dataclass(frozen=True)
class Status:
    name: str
    position: int  # the last notification id applied
    head: int  # the highest notification id in the store

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
    return [Status(name, position(db, name), head) for name in PROJECTIONS]


def catch_up(
    app: Any, name: str = book.NAME, page_size: int = PAGE_SIZE, progress: Callable[[int], None] | None = None
) -> int:
    """Apply every notification after the projection's position; return how many this call applied.

    ``progress`` is told how far each page moved the position, in notification ids.
    """
    assert page_size > 0
    done = [0]

    def resume() -> int:
        # After a lost connection: start again from the committed position, with no cached state
        # (a page whose commit was lost with the connection may or may not have been written).
        cache(app, name).clear()
        return _catch_up(app, name, page_size, progress, done)

    return retrying(app.settings.retry_seconds, f"projection {name}", resume)


def _catch_up(app: Any, name: str, page_size: int, progress: Callable[[int], None] | None, done: list[int]) -> int:
    db = views(app)
    projection = PROJECTIONS[name]
    loans = cache(app, name)
    at = position(db, name)
    while notes := app.recorder.select_notifications(at + 1, page_size):
        new_at = notes[-1].id
        page = projection.plan_page(app, db, notes, loans)
        try:
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
        loans.put(page.states)
        done[0] += len(notes)
        if progress:
            progress(new_at - at)
        at = new_at
    return done[0]


def reset(app: Any, name: str = book.NAME) -> None:
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
    app: Any, name: str = book.NAME, page_size: int = PAGE_SIZE, progress: Callable[[int], None] | None = None
) -> int:
    """From empty: the same rows as built incrementally (ids and times come from the events)."""
    reset(app, name)
    return catch_up(app, name, page_size, progress)
