"""What every route shares, built once per server process by ``create_app`` and found on
``request.app.state.services``: the ledger, its write lane, and a bounded pool of threads for
blocking store calls (reads, token checks, decoding large bodies)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import anyio
from anyio import to_thread
from fastapi import Request

from api.writer import WriteLane
from eventstore.retry import retrying
from ledger.app import Ledger
from ledger.config import Settings
from projections import runner

READ_THREADS = 8  # blocking store calls at once for reads and token checks: under the connection pool's size

_T = TypeVar("_T")


@dataclass
class Services:
    settings: Settings
    ledger: Ledger
    lane: WriteLane
    limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(READ_THREADS))
    catch_up_lock: Any = None  # one projection runner per process; on SQLite the lane's lock (one writer)

    def __post_init__(self) -> None:
        if self.catch_up_lock is None:
            sqlite = self.settings.db_url.startswith("sqlite")
            self.catch_up_lock = self.lane.lock if sqlite else threading.Lock()

    async def blocking(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in a worker thread: the event loop keeps serving other requests meanwhile.

        Every such call is a read (a token check, a loan, the book) or no store call at all, so a lost
        connection is retried as the CLI retries it (``settings.retry_seconds``): a database restart
        delays the answer, and only an outage past the deadline is answered 503 store_unavailable.
        """
        what = getattr(fn, "__name__", "reading the store")
        step = partial(fn, *args)
        return await to_thread.run_sync(retrying, self.settings.retry_seconds, what, step, limiter=self.limiter)

    def caught_up_views(self) -> Any:
        """The views, after applying everything appended so far (as the CLI's reads do). Blocking."""
        with self.catch_up_lock:
            runner.catch_up(self.ledger)
        return runner.views(self.ledger)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
