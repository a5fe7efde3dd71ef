"""Writer processes for the concurrency tests: each is a separate back-office service."""

from __future__ import annotations

import time


def append_one_at_a_time(db_url: str, lines: list[str], start_at: float) -> list[str]:
    """Append each line in its own batch, maximising races with the other writers."""
    from ledger.app import Ledger
    from ledger.commands import parse_command
    from ledger.config import Settings

    app = Ledger(Settings(db_url=db_url))
    time.sleep(max(0.0, start_at - time.time()))
    statuses = []
    for line in lines:
        [outcome] = app.append([parse_command(line)])
        statuses.append(outcome.status if outcome.status != "rejected" else f"rejected: {outcome.error}")
    app.close()
    return statuses
