"""What every route shares, built once per server process by ``create_app`` and found on
``request.app.state.services``: the ledger, its write lane, and a bounded pool of threads for
blocking store calls (reads, token checks, decoding large bodies)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

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
_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")

MAX_KEYS_PER_LOOKUP = 256  # keys one coalesced lookup answers; more wait for the next one


class Coalesced(Generic[_K, _V]):
    """Concurrent lookups answered together: one worker-thread call for every request waiting, not one each.

    A request's key joins the next lookup to start; a lookup already running takes no newcomers, so every
    answer was read after its request arrived (a token revoked before a request came in is refused, exactly
    as with a lookup of its own). Keys asked twice are looked up once. Nothing is kept between lookups.
    """

    def __init__(self, lookup: Callable[[list[_K]], Awaitable[dict[_K, _V]]]):
        self._lookup = lookup
        self._waiting: dict[_K, list[asyncio.Future[_V | None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def get(self, key: _K) -> _V | None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (a test client's): nothing of the old one carries over
            self._loop, self._waiting, self._task = loop, {}, None
        done: asyncio.Future[_V | None] = loop.create_future()
        self._waiting.setdefault(key, []).append(done)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        while self._waiting:
            keys = list(self._waiting)[:MAX_KEYS_PER_LOOKUP]
            batch = {key: self._waiting.pop(key) for key in keys}
            try:
                found = await self._lookup(keys)
            except BaseException as e:  # every request waiting on this lookup gets its error, as alone
                for waiters in batch.values():
                    for w in waiters:
                        if not w.done():
                            w.set_exception(e if isinstance(e, Exception) else RuntimeError("lookup stopped"))
                if not isinstance(e, Exception):
                    raise
                continue
            for key, waiters in batch.items():
                for w in waiters:
                    if not w.done():
                        w.set_result(found.get(key))


@dataclass
class Services:
    settings: Settings
    ledger: Ledger
    lane: WriteLane
    limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(READ_THREADS))
    catch_up_lock: Any = None  # one projection runner per process; on SQLite the lane's lock (one writer)
    token_checks: Coalesced[str, Any] | None = None  # api/auth.py's, made on the first request

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
