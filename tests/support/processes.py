"""The worker processes a command spawned, found through /proc (Linux), to check they end with it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# `python -m cli.main`, with SIGINT's action put back first, as a terminal's Ctrl-C finds it. A shell without job
# control starts a background job (`pytest ... &`, a CI script) with SIGINT ignored, its children inherit that, and
# Python keeps an inherited ignore: an end of day started from such a test run never hears the test's SIGINT.
_INTERRUPTIBLE = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('cli.main', run_name='__main__', alter_sys=True)"
)


def interruptible_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`ledger ARGS` as its own process that Ctrl-C (SIGINT) interrupts however this test run was started."""
    return subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTIBLE, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


class Started:
    """The processes a test started: ``started(proc)`` notes a process (and returns it), ``started.parts``
    the pids of pool processes that its parent may leave behind when it is killed."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.parts: list[int] = []

    def __call__(self, proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
        self.procs.append(proc)
        return proc


@contextmanager
def ended() -> Iterator[Started]:
    """When the block ends, however it ends, every process noted in it is killed if it still runs, with the
    processes it started and the parts noted: a test that fails half-way leaves nothing running that holds the
    store's connections or locks into the tests after it (an end of day left waiting kept its pools open)."""
    started = Started()
    try:
        yield started
    finally:
        for proc in started.procs:
            running = [*_children(proc.pid), proc.pid] if proc.poll() is None else []
            for pid in running:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.communicate()  # reaps it and closes its pipes
        for pid in started.parts:
            if _a_part(pid):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _a_part(pid: int) -> bool:
    """Whether ``pid`` is still a pool process (``spawn_main``): a pid noted earlier may have ended, and been
    given to another process since."""
    try:
        return "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
    except FileNotFoundError:
        return False


def parts_of(pid: int) -> list[int]:
    """The pool processes `--workers N` spawned (not multiprocessing's resource tracker)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    found = []
    for child in map(int, children):
        try:
            command = Path(f"/proc/{child}/cmdline").read_text()
        except FileNotFoundError:
            continue
        if "spawn_main" in command and "resource_tracker" not in command:
            found.append(child)
    return found


def all_gone(pids: list[int], within: float = 0.0) -> bool:
    """Whether every one of ``pids`` has exited, waiting up to ``within`` seconds for it."""
    deadline = time.monotonic() + within
    while any(Path(f"/proc/{p}").exists() for p in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


@contextmanager
def writes_held(url: str) -> Iterator[Callable[[list[int]], None]]:
    """Hold the store's write lock, as another writer would, until the block ends.

    Yields ``wait(pids)``, which returns once each of those processes waits for the lock: a job
    interrupted then is certainly in the middle of a batch, whatever the machine's load, and
    cannot finish until the block ends. On PostgreSQL the waiting is read from ``pg_locks`` (a
    SHARE lock on the events table holds the library's EXCLUSIVE one off, readers pass); on SQLite
    (``BEGIN IMMEDIATE``), from each process sleeping in SQLite's busy handler (/proc/PID/wchan).
    """
    if url.startswith("sqlite"):
        holder = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")

        def wait(pids: list[int]) -> None:
            wait_until(
                lambda: _none_gone(pids) and all(_sleeping(pid) for pid in pids),
                f"processes {pids} to wait for the write lock",
            )

        try:
            yield wait
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    import psycopg

    holder, watcher = psycopg.connect(url, autocommit=True), psycopg.connect(url, autocommit=True)
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE ledger_events IN SHARE MODE")

    def waiting() -> int:
        row = watcher.execute(
            # EXCLUSIVE: the lock a batch takes to write; a process still opening the store waits with
            # another mode (its CREATE INDEX IF NOT EXISTS) and is not yet in a batch
            "SELECT count(*) FROM pg_locks WHERE relation = 'ledger_events'::regclass AND NOT granted"
            " AND mode = 'ExclusiveLock'"
        ).fetchone()
        return row[0] if row else 0

    def wait_pg(pids: list[int]) -> None:
        wait_until(
            lambda: _none_gone(pids) and waiting() >= len(pids), f"{len(pids)} writers to wait for the events table"
        )

    try:
        yield wait_pg
    finally:
        with suppress(psycopg.Error):  # the server may have been stopped meanwhile
            holder.execute("ROLLBACK")
        holder.close()
        watcher.close()


def _none_gone(pids: list[int]) -> bool:
    """True while none has ended; an AssertionError at once when one has: a process that ended before it waited
    for the lock will never wait for it (an end of day that closed the whole day, an import that finished)."""
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            state = "gone"
        if state in ("Z", "X", "gone"):
            raise AssertionError(f"process {pid} ended before it waited for the write lock")
    return True


def _sleeping(pid: int) -> bool:
    try:
        return "nanosleep" in Path(f"/proc/{pid}/wchan").read_text()
    except FileNotFoundError:
        return False


def wait_until(condition: Callable[[], bool], what: str, within: float = 120) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {within:g} s for {what}")
        time.sleep(0.01)
