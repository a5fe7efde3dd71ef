"""What every job split into processes by loan needs (`projections rebuild --workers`, `ledger eod --workers`).

Kept in one place because each caller must get all of it right: a pool set up by hand
without the one-task limit left a killed rebuild's processes waiting forever.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from domain.errors import LedgerError
from ledger.config import sqlite_path

# spawn, not fork: a fork would share the parent's open connections with the parts
SPAWN = multiprocessing.get_context("spawn")


def refuse_in_memory(db_url: str, job: str) -> None:
    """Each part would open an empty in-memory store of its own and work on nothing."""
    if ":memory:" in (sqlite_path(db_url) or ""):
        raise LedgerError(f"{job} needs a database file that other processes can open")


def spawn_pool(workers: int, **kwargs: Any) -> ProcessPoolExecutor:
    """One task a process: a part whose parent was killed then exits once its task ends, rather
    than waiting forever for a next task on a queue no one feeds."""
    return ProcessPoolExecutor(workers, mp_context=SPAWN, max_tasks_per_child=1, **kwargs)
