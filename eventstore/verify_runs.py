"""The record of `ledger verify` runs: when each ran and what it found, for the auditor's web view.

`ledger verify` appends one row after it has read the whole log (``ledger_verify_runs``, created on
the first run, beside the store's other side tables); only the latest ``KEEP`` runs are kept. A row
holds counts and the time, never a loan's data: what the problems were is `verify`'s own output.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from eventstore.sql import StoreSql

KEEP = 100  # runs kept: the web view shows the latest; the rest is history enough for a glance

_CREATE = (
    "CREATE TABLE IF NOT EXISTS ledger_verify_runs ("
    " ran_at TEXT NOT NULL, finished_at TEXT NOT NULL, ok INTEGER NOT NULL, events INTEGER NOT NULL,"
    " streams INTEGER NOT NULL, problems INTEGER NOT NULL, checkpoint_head INTEGER)"
)


def record_verify_run(
    app: Any, ran_at: datetime, ok: bool, events: int, streams: int, problems: int, checkpoint_head: int | None
) -> None:
    db = StoreSql(app.recorder.datastore)
    finished = datetime.now(UTC)
    with db.transaction() as c:
        c.execute(_CREATE)
        c.execute(
            "INSERT INTO ledger_verify_runs (ran_at, finished_at, ok, events, streams, problems, checkpoint_head)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ran_at.astimezone(UTC).isoformat(), finished.isoformat(), int(ok), events, streams, problems,
             checkpoint_head),
        )  # fmt: skip
        c.execute(
            "DELETE FROM ledger_verify_runs WHERE ran_at NOT IN"
            " (SELECT ran_at FROM ledger_verify_runs ORDER BY ran_at DESC LIMIT ?)",
            (KEEP,),
        )


def last_verify_run(app: Any) -> dict[str, Any] | None:
    """The latest recorded run, or None when `ledger verify` has never recorded one in this store."""
    db = StoreSql(app.recorder.datastore)
    exists = (
        "SELECT to_regclass('ledger_verify_runs') IS NOT NULL"
        if db.postgres
        else "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'ledger_verify_runs'"
    )
    if not db.query(exists)[0][0]:
        return None
    found = db.query(
        "SELECT ran_at, finished_at, ok, events, streams, problems, checkpoint_head FROM ledger_verify_runs"
        " ORDER BY ran_at DESC LIMIT 1"
    )
    if not found:
        return None
    ran_at, finished_at, ok, events, streams, problems, head = found[0]
    return {
        "ran_at": datetime.fromisoformat(ran_at),
        "finished_at": datetime.fromisoformat(finished_at),
        "ok": bool(ok),
        "events": events,
        "streams": streams,
        "problems": problems,
        "checkpoint_head": head,
    }
