"""The one way a job runs in parts (eod and projections rebuild with --workers): ``run_parts``.

Kept in one place because each caller must get all of it right: a pool set up by hand
without the one-task limit left a killed rebuild's processes waiting forever; a part that dies
must be named, not a traceback; an interrupted job must stop its parts after their batch in flight.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from domain.errors import LedgerError
from eventstore.urls import sqlite_path

# spawn, not fork: a fork would share the parent's open connections with the parts
SPAWN = multiprocessing.get_context("spawn")
MAX_PARTS = 64  # a job is split into at most this many processes

_T = TypeVar("_T")
_stop: Any = None  # in a part: the event the job sets when it is interrupted (Ctrl-C)


def _remember(stop: Any) -> None:
    global _stop
    _stop = stop


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
        """Raise Abandoned once the job that started this part is gone, or has set ``stop`` (an Event;
        by default the one ``run_parts`` gives every part)."""
        stop = _stop if stop is None else stop
        started = f"{self.job} (process {self.parent}) that started part {self.index + 1} of {self.count}"
        if os.getppid() != self.parent:
            raise Abandoned(f"{started} is gone")
        if stop is not None and stop.is_set():
            raise Abandoned(f"{started} was stopped")


def run_parts(
    job: str,
    db_url: str,
    tasks: Sequence[tuple[Callable[..., _T], tuple[Any, ...]]],
    watch: Callable[[], None] | None = None,
    watch_seconds: float = 0.5,
) -> list[_T]:
    """Run each task (a module-level function and its arguments, a part each) in its own process.

    Every part is waited for, so none is left writing behind the job's back; then the first part's
    error, in the parts' order, is raised (a part that died without an answer as PartCrashed), or
    their answers are returned in that order. ``watch`` is called every ``watch_seconds`` while the
    parts run (a progress bar). Interrupted (Ctrl-C), the job tells its parts to stop, which they
    do after their batch in flight (``Part.still_wanted``), and waits for them before raising.
    """
    refuse_in_memory(db_url, job)
    if not 1 <= len(tasks) <= MAX_PARTS:
        raise ValueError(f"{job}: {len(tasks)} parts (1 to {MAX_PARTS})")
    stop = SPAWN.Event()
    with spawn_pool(len(tasks), initializer=_remember, initargs=(stop,)) as pool:
        futures = [pool.submit(task, *args) for task, args in tasks]
        try:
            while True:
                _, running = wait(futures, timeout=watch_seconds if watch else None)
                if watch:
                    watch()
                if not running:
                    break
        except BaseException:
            stop.set()  # leaving the pool waits for the parts, which stop after their batch in flight
            raise
    answers: list[_T] = []
    for i, future in enumerate(futures):
        try:
            answers.append(future.result())
        except BrokenProcessPool:
            raise PartCrashed(f"{job}: part {i + 1} of {len(tasks)} stopped without an answer") from None
    return answers
