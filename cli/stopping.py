"""How a long `ledger append` stops: on a signal at a batch boundary, or when the store is gone.

Either way the operator learns exactly what was committed: every line up to the
last one answered, and nothing after it (a signal lets the batch in flight
finish; a lost store may have taken part of one batch with it, which re-running
the file answers as duplicates). With ``--workers N`` the lines answered are not
a prefix of the file (each part stops after its own batch in flight), so the
message says how many were answered, and that those not answered were not written.
"""

from __future__ import annotations

import signal
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO, TypeVar

import click

from eventstore.retry import StoreUnavailable
from ledger.ingest import UnreadableInput

EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report it


class Interrupted(Exception):
    def __init__(self, signum: int, in_flight: bool):
        self.signum, self.in_flight = signum, in_flight
        super().__init__(signal.Signals(signum).name)


_S = TypeVar("_S", bound="Signals")


class Signals:
    """Remembers a SIGINT/SIGTERM; ``check()`` raises Interrupted once one came. A second one
    raises at once, wherever the program is."""

    def __init__(self) -> None:
        self.signum = 0

    def check(self) -> None:
        if self.signum:
            raise Interrupted(self.signum, in_flight=False)

    def on_signal(self, signum: int, _frame: Any) -> None:
        if self.signum:  # asked twice: stop now; the batch in flight is rolled back or committed whole
            raise Interrupted(signum, in_flight=True)
        self.signum = signum


class _StopAtBatchBoundary(Signals):
    """The ledger as append_lines sees it, refusing to start a batch once a signal came.

    Between batches it reads the input (``watch``): a signal then stops it at once, even inside a
    read that would block until input comes (a FIFO, a pipe, a terminal), since no batch is in
    flight; nothing read since the last batch was written.
    """

    def __init__(self, app: Any):
        super().__init__()
        self._app = app
        self.reading = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def append(self, commands: Sequence[Any]) -> Any:
        self.check()
        return self._app.append(commands)

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.reading and not self.signum:
            self.signum = signum
            raise Interrupted(signum, in_flight=False)  # out of the read: nothing is in flight
        super().on_signal(signum, frame)

    def watch(self, stream: BinaryIO) -> BinaryIO:
        """``stream`` read through this: each read first checks for a signal, and is interruptible."""
        return _WatchedInput(stream, self)  # type: ignore[return-value]  # readline is all read_lines uses


class _WatchedInput:
    def __init__(self, stream: BinaryIO, signals: _StopAtBatchBoundary):
        self._stream, self._signals = stream, signals

    def readline(self, size: int = -1) -> bytes:
        self._signals.check()  # a signal that came during the batch before: stop before reading on
        self._signals.reading = True
        try:
            return self._stream.readline(size)
        finally:
            self._signals.reading = False


@contextmanager
def stop_at_batch_boundary(app: Any) -> Iterator[Any]:
    with _on_signals(_StopAtBatchBoundary(app)) as guarded:
        yield guarded


@contextmanager
def _on_signals(signals: _S) -> Iterator[_S]:
    previous = {s: signal.signal(s, signals.on_signal) for s in EXIT_SIGNAL}
    try:
        yield signals
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def report_stop(error: Exception, totals: Counter[str], last_line: int, as_json: bool) -> None:
    """One line on stderr naming what was committed, then the exit code for the cause."""
    done = f"appended {totals['appended']}, duplicate {totals['duplicate']}, rejected {totals['rejected']}"
    answered = (f"lines up to {last_line}" if last_line else "no line") + f" answered ({done})"
    if not as_json:
        click.echo(done)
    if isinstance(error, Interrupted):
        tail = (
            "the batch in flight was written whole or not at all" if error.in_flight else "nothing after it was written"
        )
        click.echo(
            f"Error: interrupted by {error}: {answered}; {tail}; "
            "re-run the file to continue (stored lines are answered duplicate)",
            err=True,
        )
        sys.exit(EXIT_SIGNAL[signal.Signals(error.signum)])
    if isinstance(error, UnreadableInput):
        click.echo(
            f"Error: {error}; {answered}; nothing after it was written; "
            "fix the input, then re-run it (stored lines are answered duplicate)",
            err=True,
        )
        sys.exit(2)
    if not isinstance(error, StoreUnavailable):
        raise error
    click.echo(
        f"Error: {error}; {answered}; later lines may be partly written: re-run the file when the store is back "
        "(stored lines are answered duplicate)",
        err=True,
    )
    sys.exit(2)
