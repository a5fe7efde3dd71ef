"""Feeding projections from the store's notification log, exactly once.

A page's view changes and its new tracking position commit in one
transaction, and the position moves by compare-and-set: a runner that was
overtaken (another process, or a rebuild) rolls back instead of counting a
page twice. Killed mid-page, nothing of that page is kept, and the next run
starts again from the last committed position.

Gaps in notification ids are safe to step over. On PostgreSQL the library
takes an EXCLUSIVE lock on the events table for every insert, so ids are
handed out in commit order; a gap is an insert that rolled back and can never
be filled later. On SQLite writers are serialised by the database itself.
So reading "after my position" never skips a committed event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from projections import book
from projections.db import VIEWS, ViewDb

PROJECTIONS = {book.NAME: book}


class Overtaken(Exception):
    """Another runner moved the position first; this page was not written."""


@dataclass(frozen=True)
class Status:
    name: str
    position: int
    head: int

    @property
    def lag(self) -> int:
        return self.head - self.position


def views(app: Any) -> ViewDb:
    db = ViewDb(app.recorder.datastore)
    db.create()
    with db.transaction() as cursor:
        cursor.executemany("INSERT INTO proj_tracking (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                           [(name,) for name in PROJECTIONS])
    return db


def position(db: ViewDb, name: str) -> int:
    return db.query("SELECT position FROM proj_tracking WHERE name = ?", (name,))[0][0]


def status(app: Any) -> list[Status]:
    db = views(app)
    head = app.recorder.max_notification_id() or 0
    return [Status(name, position(db, name), head) for name in PROJECTIONS]


def catch_up(app: Any, name: str = book.NAME, page_size: int = 1000,
             progress: Callable[[int], None] | None = None) -> int:
    """Apply every notification after the projection's position; return how many."""
    db = views(app)
    projection = PROJECTIONS[name]
    done = 0
    at = position(db, name)
    while True:
        notes = app.recorder.select_notifications(at + 1, page_size)
        if not notes:
            return done
        new_at = notes[-1].id
        try:
            with db.transaction() as cursor:
                moved = cursor.execute("UPDATE proj_tracking SET position = ? WHERE name = ? AND position = ?",
                                       (new_at, name, at))
                if not moved:
                    raise Overtaken(f"projection {name} moved from {at}; this page was not written")
                projection.apply_page(cursor, app, notes)
        except Overtaken:
            at = position(db, name)  # another runner applied it: carry on from where it got to
            continue
        done += len(notes)
        at = new_at
        if progress:
            progress(len(notes))


def reset(app: Any, name: str = book.NAME) -> None:
    """Empty the views and the position in one transaction, ready for a rebuild from the first event."""
    db = views(app)
    with db.transaction() as cursor:
        for table in VIEWS:
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute("UPDATE proj_tracking SET position = 0 WHERE name = ?", (name,))
