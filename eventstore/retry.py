"""Riding through a lost connection (a database restart, a failover) for a bounded time.

Every write of the ledger is idempotent (keys for appends, compare-and-set
positions for projections), so the safe response to a dropped connection is to
do the same step again once the store answers: what was committed before the
loss is then found and answered as stored, what was not is written now. The
retry is bounded (Settings.retry_seconds); past it the caller gets
StoreUnavailable, which names the step, and the CLI says what was committed.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
import psycopg_pool
from eventsourcing.persistence import InterfaceError, OperationalError

T = TypeVar("T")

# What a lost or refused connection looks like through the library (its own wrappers) or from
# psycopg directly (our own SQL on the pool's connections). SQLite's "database is locked" is an
# OperationalError too: waiting for it is just as right.
CONNECTION_ERRORS = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
)
_FIRST_WAIT, _MAX_WAIT = 0.05, 2.0
log = logging.getLogger("ledger")


def transient(error: BaseException) -> bool:
    """Worth waiting for: any PostgreSQL connection or operational error (a restart, a lock
    timeout, a pool with no connection), but of SQLite's only a busy or locked database: its
    other OperationalErrors ("no such table") are mistakes that waiting would only hide."""
    cause = error.__cause__ or error
    if isinstance(cause, sqlite3.OperationalError) or (
        isinstance(error, OperationalError) and not isinstance(cause, psycopg.Error)
    ):
        text = str(cause).lower()
        return "locked" in text or "busy" in text
    return True


class StoreUnavailable(Exception):
    """The store did not answer within the retry deadline: the CLI exits 2.

    ``what`` names the step that gave up; ``why`` says for how long and the driver's last words.
    """

    def __init__(self, what: str, why: str = ""):
        super().__init__(f"{what}: {why}" if why else what)
        self.why = why


def retrying(seconds: float, what: str, step: Callable[[], T]) -> T:
    """``step()``, again after a connection error, with jittered backoff, for up to ``seconds``.

    A step may retry inner steps of its own (the end of day's batch retries its append): when an
    inner one gives up, the message names this step, the one the operator ran, whichever inner
    step the outage happened to land in.
    """
    deadline = time.monotonic() + seconds
    wait = _FIRST_WAIT
    while True:
        try:
            return step()
        except StoreUnavailable as e:
            raise StoreUnavailable(what, e.why) from None
        except CONNECTION_ERRORS as e:
            if not transient(e):
                raise
            left = deadline - time.monotonic()
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if wait == _FIRST_WAIT:
                log.warning("%s: lost the store (%s); retrying for up to %g s", what, reason, seconds)
            if left <= 0:
                raise StoreUnavailable(what, f"the store did not answer for {seconds:g} s ({reason})") from None
            # full jitter: processes cut off together should not all come back at the same instant
            time.sleep(min(left, random.uniform(0, wait)))
            wait = min(_MAX_WAIT, wait * 2)
