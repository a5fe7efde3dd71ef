"""`ledger borrower forget`: erase a borrower's personal data; the loans' history stays intact.

Personal data never enters an event (events cannot be edited); it lives in its
own table, so erasing it is a delete there, and then making sure the store's
files keep no copy of the deleted bytes (eventstore/audit_store.py). The command
says "erased" only once that is checked; otherwise it exits 1 naming what holds
the bytes and what to run to finish.
"""

from __future__ import annotations

import sys

import click

from cli.common import EXIT_PROBLEM, Problem, echo_json, open_ledger, store_options


@click.group()
def borrower() -> None:
    """A borrower's personal data."""


@borrower.command("forget")
@click.argument("borrower_id")
@click.option("--reason", metavar="TEXT", help="Why (kept in the erasure record; no personal data here).")
@store_options
def forget(borrower_id: str, reason: str | None, db_url: str | None, as_json: bool) -> None:
    """Erase BORROWER_ID's personal data so no byte of it stays in the store (exit 1 if there was none).

    The erasure itself is recorded (borrower id, when, why) in ledger_erasures. Exit 1, naming what
    still holds the bytes and what to run, when they could not all be removed (another process
    reading a SQLite store; a PostgreSQL role that does not own the table). A later run finishes
    the job for a borrower already erased.
    """
    app = open_ledger(db_url)
    done = app.recorder.erase_borrower(borrower_id, reason, app.settings.retry_seconds)
    if done.left is not None:
        raise Problem(f"borrower {borrower_id} is not erased yet: {done.left}")
    erased = done.held or done.finished_earlier
    if as_json:
        echo_json({"borrower_id": borrower_id, "erased": erased})
    elif done.finished_earlier:
        click.echo(f"erased {borrower_id} (the erasure on record is finished: no byte of its data is left)")
    else:
        click.echo(f"{'erased' if erased else 'no personal data held for'} {borrower_id}")
    if not erased:
        sys.exit(EXIT_PROBLEM)
