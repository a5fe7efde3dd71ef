"""Writer processes for the concurrency tests: each is a separate back-office service."""

from __future__ import annotations

from typing import Any

_start: Any = None  # the pool's barrier: every writer connected before the first appends


def started_together(barrier: Any) -> None:
    """The pool's initializer: ``Pool(n, started_together, (ctx.Barrier(n),))``."""
    global _start
    _start = barrier


def append_one_at_a_time(db_url: str, lines: list[str]) -> list[str]:
    """Append each line in its own batch, maximising races with the other writers: each starts once
    every writer of the pool has opened the store (the barrier), not after a fixed time."""
    from ledger.app import Ledger
    from ledger.commands import parse_command
    from ledger.config import Settings

    app = Ledger(Settings(db_url=db_url))
    if _start is not None:
        _start.wait(timeout=120)
    statuses = []
    for line in lines:
        [outcome] = app.append([parse_command(line)])
        statuses.append(outcome.status if outcome.status != "rejected" else f"rejected: {outcome.error}")
    app.close()
    return statuses
