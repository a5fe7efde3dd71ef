"""One write lane per process: concurrent requests' commands go to the ledger together.

Every append in a server process goes through one queue and one task that
calls ``Ledger.append`` in a worker thread. Requests that arrive while an
append is running are coalesced into the next call (group commit), so sixteen
clients posting one command each cost one transaction, not sixteen. The lane
also means a process never races itself: on SQLite, which admits one writer at
a time, nothing here ever meets "database is locked"; other processes (more
workers, the CLI) are still handled by the ledger's own conflict retries and
SQLite's lock timeout.

Coalescing is safe because ``Ledger.append`` answers each command on its own:
a command that breaks a rule is rejected alone, and two requests carrying one
idempotency key are one append and one duplicate, exactly as if they had come
one after the other.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from anyio import to_thread

from domain.errors import DamagedStream
from ledger.app import DAMAGED_STREAM, REJECTED, Ledger, Outcome
from ledger.commands import _Command

# How long the lane holds a transaction for requests already on their way to it (see ``announce``)
GATHER_SECONDS = 0.002


@dataclass
class _Job:
    commands: Sequence[_Command]
    done: asyncio.Future[list[Outcome]] = field(repr=False)


class Announced:
    """A request on its way to the lane (its token and body being checked): counted until it appends or
    leaves, whichever comes first."""

    def __init__(self, lane: WriteLane):
        self._lane: WriteLane | None = lane
        self.number = lane._announced
        lane._announced += 1
        lane._on_the_way.add(self.number)

    def arrived(self) -> None:
        lane, self._lane = self._lane, None
        if lane is not None:
            lane._on_the_way.discard(self.number)
            if lane._arrival is not None:
                lane._arrival.set()

    withdraw = arrived  # refused before appending (401, 422, ...): the lane stops waiting for it


class WriteLane:
    def __init__(self, ledger: Ledger, batch_size: int | None = None, gather_seconds: float = GATHER_SECONDS):
        self.ledger = ledger
        self.batch_size = batch_size or ledger.settings.batch_size
        self.gather_seconds = gather_seconds
        # held around every write this process makes to the store (appends here, projection catch-up
        # in reads), so that on SQLite a process has one writer at a time
        self.lock = threading.Lock()
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._announced = 0  # requests announced so far: each one's number
        self._on_the_way: set[int] = set()  # the numbers of those announced that have not appended or left
        self._arrival: asyncio.Event | None = None

    def announce(self) -> Announced:
        """A single request says it is coming, before its token check, so that a transaction about to start
        waits briefly (up to ``gather_seconds``) for the requests that were on their way when it started.

        Sixteen clients fell into two cohorts: a transaction of the fourteen or fifteen answered together,
        and the one or two whose requests came in meanwhile, appended alone at nearly the same cost
        (issue 29: 147 of 510 transactions held one or two commands). Waiting for requests already
        received joins the cohorts; a transaction never waits for requests announced after it started,
        so a steady stream of them cannot hold it past the ones it found."""
        return Announced(self)

    async def append(self, commands: Sequence[_Command], announced: Announced | None = None) -> list[Outcome]:
        if announced is not None:
            announced.arrived()
        if not commands:
            return []
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None or self._task is None or self._task.done():
            self._loop, self._queue, self._arrival = loop, asyncio.Queue(), asyncio.Event()
            self._task = loop.create_task(self._run(self._queue))
        job = _Job(commands, loop.create_future())
        self._queue.put_nowait(job)
        if self._arrival is not None:
            self._arrival.set()
        return await job.done

    async def close(self) -> None:
        """Finish what is queued, then stop (called after the server stopped taking requests)."""
        if self._task is not None and self._queue is not None and not self._task.done():
            await self._queue.join()
            self._task.cancel()
        self._task = None

    async def _run(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            jobs = [await queue.get()]
            size = len(jobs[0].commands)
            started, deadline = self._announced, None  # wait only for those announced before now
            while size < self.batch_size:
                if not queue.empty():
                    job = queue.get_nowait()
                    jobs.append(job)
                    size += len(job.commands)
                    continue
                if self._arrival is None or min(self._on_the_way, default=started) >= started:
                    break
                loop = asyncio.get_running_loop()
                deadline = deadline or loop.time() + self.gather_seconds
                if loop.time() >= deadline:
                    break
                self._arrival.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._arrival.wait(), deadline - loop.time())
            try:
                commands = [cmd for job in jobs for cmd in job.commands]
                outcomes = await to_thread.run_sync(self._append_all, commands)
                start = 0
                for job in jobs:
                    end = start + len(job.commands)
                    if not job.done.done():
                        job.done.set_result(outcomes[start:end])
                    start = end
            except BaseException as e:  # the requests waiting here answer 500; the lane keeps going
                for job in jobs:
                    if not job.done.done():
                        job.done.set_exception(e if isinstance(e, Exception) else RuntimeError("write lane stopped"))
                if not isinstance(e, Exception):
                    raise
            finally:
                for _ in jobs:
                    queue.task_done()

    def _append_all(self, commands: list[_Command]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        with self.lock:
            for start in range(0, len(commands), self.batch_size):
                outcomes += self._append_apart_from_damage(commands[start : start + self.batch_size])
        return outcomes

    def _append_apart_from_damage(self, commands: list[_Command]) -> list[Outcome]:
        """``Ledger.append``, with the commands of a loan whose stored events are damaged answered alone.

        Reading a damaged loan raises before anything is written, and would fail every request that
        happened to be coalesced with it: its commands are set aside (rejected, naming the loan and
        ``ledger verify``) and the rest appended again, once per damaged loan at most.
        """
        damaged: dict[str, DamagedStream] = {}
        loans = {cmd.loan_id for cmd in commands}
        while True:
            rest = [cmd for cmd in commands if cmd.loan_id not in damaged]
            try:
                answers = iter(self.ledger.append(rest))
                break
            except DamagedStream as e:
                if e.loan not in loans or e.loan in damaged:
                    raise
                damaged[e.loan] = e
        return [
            Outcome(REJECTED, cmd.loan_id, str(damaged[cmd.loan_id]), DAMAGED_STREAM)
            if cmd.loan_id in damaged
            else next(answers)
            for cmd in commands
        ]
