"""How a long `ledger append` stops: on a signal at a batch boundary, or when the store is gone.

Either way the operator learns exactly what was committed: every line up to the
last one answered, and nothing after it (a signal lets the batch in flight
finish; a lost store may have taken part of one batch with it, which re-running
the file answers as duplicates).
"""

from __future__ import annotations

import signal
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from ledger.retry import StoreUnavailable

EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as shells report it


class Interrupted(Exception):
    def __init__(self, signum: int, in_flight: bool):
        self.signum, self.in_flight = signum, in_flight
        super().__init__(signal.Signals(signum).name)


class _StopAtBatchBoundary:
    """The ledger as append_lines sees it, refusing to start a batch once a signal came."""

    def __init__(self, app: Any):
        self._app, self.signum = app, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)

    def append(self, commands: Sequence[Any]) -> Any:
        if self.signum:
            raise Interrupted(self.signum, in_flight=False)
        return self._app.append(commands)

    def on_signal(self, signum: int, _frame: Any) -> None:
        if self.signum:  # asked twice: stop now; the batch in flight is rolled back or committed whole
            raise Interrupted(signum, in_flight=True)
        self.signum = signum


@contextmanager
def stop_at_batch_boundary(app: Any) -> Iterator[Any]:
    guarded = _StopAtBatchBoundary(app)
    previous = {s: signal.signal(s, guarded.on_signal) for s in EXIT_SIGNAL}
    try:
        yield guarded
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def report_stop(error: Exception, totals: Counter[str], last_line: int, as_json: bool) -> None:
    """One line on stderr naming what was committed, then the exit code for the cause."""
    done = f"appended {totals['appended']}, duplicate {totals['duplicate']}, rejected {totals['rejected']}"
    upto = f"lines up to {last_line}" if last_line else "no line"
    if not as_json:
        click.echo(done)
    if isinstance(error, Interrupted):
        tail = (
            "the batch in flight was written whole or not at all" if error.in_flight else "nothing after it was written"
        )
        click.echo(
            f"Error: interrupted by {error}: {upto} answered ({done}); {tail}; "
            "re-run the file to continue (stored lines are answered duplicate)",
            err=True,
        )
        sys.exit(EXIT_SIGNAL[signal.Signals(error.signum)])
    assert isinstance(error, StoreUnavailable)
    click.echo(
        f"Error: {error}; {upto} answered ({done}); later lines may be partly written: "
        "re-run the file when the store is back (stored lines are answered duplicate)",
        err=True,
    )
    sys.exit(2)
