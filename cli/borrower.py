"""`ledger borrower forget`: erase a borrower's personal data; the loans' history stays intact.

Personal data never enters an event (events cannot be edited); it lives in its
own table, so erasing it is a delete there and nothing else.
"""

from __future__ import annotations

import sys

import click

from cli.common import EXIT_PROBLEM, echo_json, open_ledger, store_options


@click.group()
def borrower() -> None:
    """A borrower's personal data."""


@borrower.command("forget")
@click.argument("borrower_id")
@click.option("--reason", metavar="TEXT", help="Why (kept in the erasure record; no personal data here).")
@store_options
def forget(borrower_id: str, reason: str | None, db_url: str | None, as_json: bool) -> None:
    """Erase BORROWER_ID's personal data so no byte of it stays in the store (exit 1 if there was none).

    The erasure itself is recorded (borrower id, when, why) in ledger_erasures.
    """
    app = open_ledger(db_url)
    erased = app.recorder.erase_borrower(borrower_id, reason)
    if as_json:
        echo_json({"borrower_id": borrower_id, "erased": erased})
    else:
        click.echo(f"{'erased' if erased else 'no personal data held for'} {borrower_id}")
    if not erased:
        sys.exit(EXIT_PROBLEM)
