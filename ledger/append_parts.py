"""`ledger append --workers N`: one file appended by N processes, a share of the loans each.

The parent reads the file and cuts it into the batches one process would append
(``ingest.numbered_batches``: ``batch_size`` lines of the file each). It sends each line to the
part its loan belongs to (``loan_uuid(loan_id).int % N``, the rule of the rebuild and the end
of day in parts), with its line number, finding the loan id without parsing the line: a line
with no usable loan id (invalid JSON, no loan_id, overlong) goes to part 0, whose parse refuses
it with the words one process uses. Each part appends its share of each batch as one batch,
in file order, through ``ingest.append_numbered``: what is answered for a line depends only on
its loan's state, its loan's lines in the same batch and the keys stored, so every line gets
the answer one process gives, unless one idempotency key is used by two different loans
(which of the two is stored then depends on which part commits first).

Each part is one long-lived process with its own input queue, at most ``DEPTH`` batches ahead,
so memory stays bounded; the parent prints the answers in line order as soon as the head of
the file is answered. A part checks between batches that it is still wanted (its parent alive,
no stop asked); it ignores SIGINT and SIGTERM itself (the terminal sends Ctrl-C to the whole
group): the parent hears them and stops the parts after their batch in flight.

When the parts stop before the end of the file (a signal, a lost store, a part killed), the
parent passes on every answer it received, in line order, then raises: the lines answered are
then not a prefix of the file, but every line not answered was not written (a signal) or may
be partly written (a lost store, a killed part); re-running the file answers stored lines as
duplicates.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from domain.errors import LedgerError
from domain.loan import loan_uuid
from ledger.app import Outcome
from ledger.config import Settings
from ledger.ingest import OverlongLine, append_numbered, numbered_batches
from ledger.parts import SPAWN, Abandoned, Part, PartCrashed, refuse_in_memory
from ledger.retry import StoreUnavailable

DEPTH = 3  # batches queued or in flight per part
POLL_SECONDS = 0.1  # how often the parent and the parts look for a stop
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# ---- routing ------------------------------------------------------------------
_LOAN_ID = re.compile(rb'"loan_id"[ \t\r\n]*:[ \t\r\n]*"([A-Za-z0-9_-]{1,64})"')


def part_of(line: bytes, count: int) -> int:
    """The part a line goes to, from its loan id found without parsing the line when it is safe.

    Without a backslash no string of the line is escaped, so a single ``"loan_id"`` followed by
    a colon is the key itself, as written (if it is a nested one, the line has no top-level
    loan_id and is refused wherever it goes). Otherwise the line is decoded as JSON; a line that
    names no loan id the parser could accept goes to part 0, which refuses it.
    """
    if isinstance(line, OverlongLine):
        return 0
    if b"\\" not in line and line.count(b'"loan_id"') == 1:
        found = _LOAN_ID.search(line)
        if found is not None:
            return loan_uuid(found.group(1).decode("ascii")).int % count
    try:
        loan_id = json.loads(line).get("loan_id")
    except (ValueError, AttributeError, RecursionError):  # not JSON, not an object, too deep
        return 0
    return loan_uuid(loan_id).int % count if isinstance(loan_id, str) else 0


# ---- a part -------------------------------------------------------------------
@dataclass(frozen=True)
class AppendPart(Part):
    job = "the append"


Answer = tuple[int, Outcome]  # line, outcome (its reason code and field included)


def _work(settings: Settings, part: Part, batches: Connection, answers: Connection, stop: Any) -> None:
    """One part, in its own process: its share of each batch, in order, answered batch by batch."""
    for s in _SIGNALS:  # started ignoring them (see _start): the parent stops us
        signal.signal(s, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    from ledger.app import Ledger
    from ledger.retry import retrying

    app = None
    try:
        app = retrying(settings.retry_seconds, "opening the store", lambda: Ledger(settings))
        while True:
            part.still_wanted(stop)
            if not batches.poll(POLL_SECONDS):
                continue
            batch = batches.recv()  # EOFError if the parent died, even halfway through sending it
            if batch is None:
                answers.send(("done", part.index))
                return
            done: list[Answer] = [(a.line, a.outcome) for a in append_numbered(app, [batch])]
            answers.send(("answers", part.index, done))
    except Abandoned:
        _tell(answers, ("stopped", part.index))  # if anyone is still listening
    except (BrokenPipeError, EOFError):
        return  # the parent is gone: no one is listening
    except StoreUnavailable as e:
        _tell(answers, ("unavailable", part.index, str(e)))
    except LedgerError as e:  # a damaged stream: one process stops on it too
        _tell(answers, ("problem", part.index, str(e)))
    except Exception as e:  # noqa: BLE001 (told to the parent in one line, never a traceback)
        _tell(answers, ("failed", part.index, f"{type(e).__name__}: {e}"))
    finally:
        if app is not None:
            app.close()


def _tell(answers: Connection, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError):  # no one is listening any more
        answers.send(message)


# ---- the parent ---------------------------------------------------------------
class _Feeder:
    """Sends a part its batches from a thread of the parent's, so the parent never blocks on a full
    pipe while the part waits for the parent to read its answers. (Not a multiprocessing.Queue: the
    part would hold the queue's writing end too, and then never see the end of a parent killed
    halfway through sending a batch.)"""

    def __init__(self, to_part: Connection):
        self._to_part, self._items = to_part, queue.SimpleQueue[Any]()
        threading.Thread(target=self._run, daemon=True, name="append part feeder").start()

    def put(self, item: Any) -> None:
        self._items.put(item)

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # the part has ended: what it never took is dropped
            while True:
                item = self._items.get()
                self._to_part.send(item)
                if item is None:
                    return


class _Running:
    def __init__(self, index: int, process: Any, batches: _Feeder, answers: Connection):
        self.index, self.process, self.batches, self.answers = index, process, batches, answers
        self.in_flight = 0
        self.finished = False  # said "done" or why it stopped


def append_in_parts(
    settings: Settings,
    lines: Iterable[bytes],
    workers: int,
    emit: Callable[[int, Outcome], None],
    check: Callable[[], None] = lambda: None,
) -> None:
    """Append ``lines`` in ``workers`` processes; ``emit(line, outcome)`` for each non-blank line in
    line order, as one process would. ``check()`` is called while waiting and raises to stop (a signal).

    On a stop, every answer received is emitted, in line order, before the cause is raised: what
    ``check`` raised, StoreUnavailable, LedgerError (a damaged stream) or PartCrashed.
    """
    refuse_in_memory(settings.db_url, "an append in parts")
    stop = SPAWN.Event()
    parts = [_start(settings, AppendPart(i, workers, os.getpid()), stop) for i in range(workers)]
    order: deque[int] = deque()  # the lines sent, in file order, not yet emitted
    received: dict[int, Outcome] = {}
    failure: list[BaseException] = []

    def emit_head() -> None:
        while order and order[0] in received:
            line = order.popleft()
            emit(line, received.pop(line))

    def pump(timeout: float) -> None:
        """Take what the parts said; a part that ended without saying why crashed."""
        waiting = [p.answers for p in parts if not p.finished]
        waiting += [p.process.sentinel for p in parts if not p.finished]
        for ready in wait(waiting, timeout):
            for p in parts:
                if ready is p.answers or ready == p.process.sentinel:
                    _hear(p, received, failure, workers)
        if failure:
            raise failure[0]

    try:
        for batch in numbered_batches(lines, settings.batch_size):
            shares: list[list[tuple[int, bytes]]] = [[] for _ in range(workers)]
            for line_no, line in batch:
                shares[part_of(line, workers)].append((line_no, line))
                order.append(line_no)
            for p, share in zip(parts, shares, strict=True):
                if not share:
                    continue
                while p.in_flight >= DEPTH:
                    check()
                    pump(POLL_SECONDS)
                    emit_head()
                p.batches.put(share)
                p.in_flight += 1
            check()
            pump(0)
            emit_head()
        for p in parts:
            p.batches.put(None)
        while not all(p.finished for p in parts):
            check()
            pump(POLL_SECONDS)
            emit_head()
        emit_head()
    except BaseException as e:
        stop.set()  # the parts stop after their batch in flight
        if getattr(e, "in_flight", False):
            for p in parts:  # asked twice: leave now; a part still sending finds no one listening
                p.answers.close()
            _emit_received(received, emit)
            raise
        try:
            _finish(parts, received, failure, workers)
        except BaseException:  # asked again while waiting: leave now, with what came
            for p in parts:
                p.answers.close()
            _emit_received(received, emit)
            raise
        _emit_received(received, emit)
        raise
    for p in parts:
        p.process.join()


def _start(settings: Settings, part: Part, stop: Any) -> _Running:
    their_batches, batches = SPAWN.Pipe(duplex=False)
    mine, theirs = SPAWN.Pipe(duplex=False)
    process = SPAWN.Process(
        target=_work, args=(settings, part, their_batches, theirs, stop), name=f"append part {part.index + 1}"
    )
    # born ignoring SIGINT and SIGTERM (a Ctrl-C reaches the whole group: only the parent acts on
    # it); blocked meanwhile here, so a signal in between reaches the parent's handler afterwards
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    handlers = {s: signal.signal(s, signal.SIG_IGN) for s in _SIGNALS}
    try:
        process.start()
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
    theirs.close()  # the part holds the only writing end: its death reads as the end of the pipe
    their_batches.close()  # and the only reading end of its batches
    return _Running(part.index, process, _Feeder(batches), mine)


def _hear(p: _Running, received: dict[int, Outcome], failure: list[BaseException], count: int) -> None:
    """Everything part ``p`` has said so far; if its process has ended without a last word, it crashed."""
    try:
        while p.answers.poll():
            message = p.answers.recv()
            kind = message[0]
            if kind == "answers":
                p.in_flight -= 1
                for line, outcome in message[2]:
                    received[line] = outcome
                continue
            p.finished = True
            if kind == "unavailable":
                failure.append(StoreUnavailable(message[2]))
            elif kind == "problem":
                failure.append(LedgerError(message[2]))
            elif kind == "failed":
                failure.append(PartCrashed(f"append part {p.index + 1} of {count} failed: {message[2]}"))
    except (EOFError, OSError):
        pass  # its end is closed: it has ended
    if not p.finished and p.process.exitcode is not None:
        p.finished = True
        failure.append(
            PartCrashed(
                f"append part {p.index + 1} of {count} (process {p.process.pid}) stopped without an answer "
                f"(exit code {p.process.exitcode})"
            )
        )


def _finish(parts: list[_Running], received: dict[int, Outcome], failure: list[BaseException], count: int) -> None:
    """Wait for every part to end (each stops after its batch in flight), taking its last answers."""
    for p in parts:
        while not p.finished:
            wait([p.answers, p.process.sentinel], POLL_SECONDS)
            _hear(p, received, failure, count)
        p.process.join()


def _emit_received(received: dict[int, Outcome], emit: Callable[[int, Outcome], None]) -> None:
    for line in sorted(received):
        emit(line, received.pop(line))
