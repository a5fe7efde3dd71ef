"""A rebuild in parts: the new view tables filled by several processes at once, a share of the loans each.

Every row of the book belongs to one loan, and depends only on that loan's events and their
notification ids (line ids are built from them). So the loans can be shared out by a stable
hash of their stream id, and each process applies the events of its share, in log order, up
to the head found at the start, exactly as one process would: the rows are the same. Each part
writes its pages and its own tracking row (``<rebuild's row>:<i>/<n>``) in one transaction, as
any runner does, so a part that loses its connection carries on from its last page. A part reads
``page_size`` times the number of parts notifications a page, so that each of its transactions
still carries about ``page_size`` events.

When every part has reached the head, the rebuild's own tracking row moves to it and the
rebuild goes on as in one process (catch up past the head, swap in). If a part cannot apply an
event, the parts stop, the earliest such event is recorded as the projection's failure (the one
a single process would have met first) and nothing is swapped in. If the rebuild itself is
killed, its parts stop before their next page: they only ever wrote to the new tables, which
the next rebuild drops.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from eventstore.parts import Part, refuse_in_memory, run_parts
from projections import book, runner, schema
from projections.db import ViewDb
from projections.source import EventLog

PROGRESS_SECONDS = 0.5  # how often the parts' positions are read for the progress bar


@dataclass(frozen=True)
class Partition(Part):
    head: int = 0  # the last notification id the part applies: the log's head when the rebuild began
    job = "the rebuild"

    def mine(self, notifications: Sequence[Any]) -> Sequence[Any]:
        index, count = self.index, self.count
        return [n for n in notifications if n.originator_id.int % count == index]


def part_track(track: str, index: int, count: int) -> str:
    return f"{track}{runner.PART_MARK}{index}/{count}"


def fill(
    app: EventLog,
    name: str,
    page_size: int,
    progress: Callable[[int], None] | None,
    workers: int,
    shadow: ViewDb,
    track: str,
) -> int:
    """Fill the new tables up to today's head in ``workers`` processes; move ``track`` there.

    Returns the events applied. Raises the projection's failure if a part met an event it
    cannot apply (recorded, as one process would).
    """
    job = f"a rebuild of {name} in parts"
    refuse_in_memory(app.settings.db_url, job)  # before the new tables are touched (run_parts checks again)
    head = app.recorder.max_notification_id() or 0
    tracks = [part_track(track, i, workers) for i in range(workers)]
    with shadow.transaction() as c:
        c.executemany("INSERT INTO proj_tracking (name, position) VALUES (?, 0)", [(t,) for t in tracks])
    # each part opens the store again in its own process, with the class of the log it was given
    # (ledger.app.Ledger from the CLI and the API), sent by name: projections/ never imports it
    opener = cast("Callable[[Any], EventLog]", type(app))
    tasks = [
        (_part, (opener, app.settings, name, page_size, Partition(i, workers, os.getpid(), head)))
        for i in range(workers)
    ]
    reported = [0]

    def watch() -> None:
        at = min(_positions(shadow, tracks))
        if progress and at > reported[0]:  # (asked for only with a progress bar)
            progress(at - reported[0])
            reported[0] = at

    results = run_parts(job, app.settings.db_url, tasks, watch if progress else None, PROGRESS_SECONDS)
    failures = sorted(failure for _, failure in results if failure is not None)
    if failures:
        failure = runner.ProjectionFailed(name, *failures[0])
        runner.set_failure(shadow, name, failure)
        raise failure
    with shadow.transaction() as c:
        c.execute("UPDATE proj_tracking SET position = ? WHERE name = ?", (head, track))
        c.executemany("DELETE FROM proj_tracking WHERE name = ?", [(t,) for t in tracks])
    if progress and head > reported[0]:
        progress(head - reported[0])
    return sum(done for done, _ in results)


def _positions(db: ViewDb, tracks: list[str]) -> list[int]:
    rows = db.query(f"SELECT position FROM proj_tracking WHERE name IN ({', '.join('?' * len(tracks))})", tracks)
    return [position for (position,) in rows] or [0]


def _part(
    opener: Callable[[Any], EventLog], settings: Any, name: str, page_size: int, part: Partition
) -> tuple[int, tuple[int, str, str] | None]:
    """One part, in its own process: (events applied, (notification id, loan, error) if it stopped on one)."""
    from eventstore.retry import retrying

    app = opener(settings)
    try:
        shadow = ViewDb(app.recorder.datastore, schema.REBUILD_SUFFIX)
        track = part_track(name + schema.REBUILD_SUFFIX, part.index, part.count)
        loans, done = book.LoanCache(), [0]

        def resume() -> int:
            loans.clear()
            return runner.apply_log(
                app, name, page_size * part.count, None, done, db=shadow, track=track, loans=loans, part=part
            )

        try:
            retrying(app.settings.retry_seconds, f"rebuilding projection {name} (part {part.index})", resume)
        except runner.ProjectionFailed as failed:  # (its own arguments do not survive pickling)
            return done[0], (failed.notification_id, failed.loan_id, failed.error)
        return done[0], None
    finally:
        app.close()
