"""What every job split into processes by loan needs (eod and projections rebuild with --workers).

Kept in one place because each caller must get all of it right: a pool set up by hand
without the one-task limit left a killed rebuild's processes waiting forever.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from domain.errors import LedgerError
from eventstore.urls import sqlite_path

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


class PartCrashed(Exception):
    """A part's process died without an answer (killed, out of memory): what it committed stays."""


class Abandoned(Exception):
    """The job that started this part is gone (killed) or stopped: the part writes nothing more."""


@dataclass(frozen=True)
class Part:
    """One process's share of a job: ``index`` of ``count``, started by process ``parent``."""

    index: int
    count: int
    parent: int  # the job's process id: a part outliving it is reparented, and stops
    job: ClassVar[str] = "job"  # how messages name the job ("the end of day")

    def still_wanted(self, stop: Any = None) -> None:
        """Raise Abandoned once the job that started this part is gone, or has set ``stop`` (an Event)."""
        started = f"{self.job} (process {self.parent}) that started part {self.index + 1} of {self.count}"
        if os.getppid() != self.parent:
            raise Abandoned(f"{started} is gone")
        if stop is not None and stop.is_set():
            raise Abandoned(f"{started} was stopped")
