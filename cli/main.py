"""`ledger`: the operators' and finance's entry point. Thin: parse, call the application, render."""

from __future__ import annotations

import sys
from collections import Counter
from typing import TYPE_CHECKING, BinaryIO

import click

from cli.common import DB_HELP, EXIT_PROBLEM, Lazy, LedgerGroup, echo_json, open_ledger, printable, store_options

if TYPE_CHECKING:
    from ledger.app import Outcome


@click.group(cls=LedgerGroup)
@click.option("--db", "db_url", default=None, metavar="URL", help=DB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (errors too), for any command.")
@click.version_option(package_name="loan-ledger", prog_name="ledger")
def cli(db_url: str | None, as_json: bool) -> None:
    """Event-sourced ledger for short-term consumer micro-loans.

    Every command takes --db URL (here or after the command) and --json.
    Exit codes: 0 success, 1 a problem found (rejected lines, breaks, unknown loan),
    2 bad usage or configuration.
    """


@cli.command()
@store_options
def init(db_url: str | None, as_json: bool) -> None:
    """Create the store and its tables (safe to run again)."""
    from ledger.config import redact
    from projections.runner import views as projection_views

    app = open_ledger(db_url, create=True)
    projection_views(app)
    if as_json:
        echo_json({"store": redact(app.settings.db_url), "status": "ready"})
    else:
        click.echo(f"ledger ready at {redact(app.settings.db_url)}")


@cli.command()
@click.argument("source", type=click.File("rb"), default="-")
@store_options
def append(source: BinaryIO, db_url: str | None, as_json: bool) -> None:
    """Append JSON Lines commands from FILE (or - for stdin).

    Each line is reported appended, duplicate or rejected (with its line number
    and reason). Valid lines are appended even when others are rejected;
    re-running a file appends nothing new. Exit 1 if any line was rejected.
    """
    from cli.stopping import Interrupted, report_stop, stop_at_batch_boundary
    from eventstore.retry import StoreUnavailable
    from ledger.ingest import UnreadableInput, append_lines, read_lines

    totals: Counter[str] = Counter()
    last_line = 0

    def emit(line: int, o: Outcome) -> None:
        nonlocal last_line
        totals[o.status] += 1
        last_line = line
        if as_json:
            row = {"line": line, "status": o.status, "loan_id": o.loan_id}
            if o.error:
                row["error"] = o.error
            echo_json(row)
        elif o.error:
            click.echo(f"line {line}: rejected: {printable(o.error)}")

    app = open_ledger(db_url)
    with stop_at_batch_boundary(app) as guarded:  # SIGINT/SIGTERM: finish the batch in flight, then stop
        try:
            for item in append_lines(guarded, read_lines(guarded.watch(source))):
                emit(item.line, item.outcome)
        except (Interrupted, StoreUnavailable) as stop:
            report_stop(stop, totals, last_line, as_json)
        except UnreadableInput as e:
            report_stop(UnreadableInput(f"cannot read {source.name}: {e}"), totals, last_line, as_json)
    if not as_json:
        click.echo(f"appended {totals['appended']}, duplicate {totals['duplicate']}, rejected {totals['rejected']}")
    if totals["rejected"]:
        sys.exit(EXIT_PROBLEM)


# Every other command, imported when it runs: (module, command, what `ledger --help` says of it).
# `ledger --help` lists them all; tests/test_cli_start.py holds each line to the command's own docstring.
cli.lazy = {
    "balances": Lazy(
        "cli.projections",
        "balances",
        "Portfolio balances from the double-entry journal, and the trial balance (exit 1 unless zero).",
    ),
    "borrower": Lazy("cli.borrower", "borrower", "A borrower's personal data."),
    "checkpoint": Lazy(
        "cli.audit",
        "checkpoint",
        "Write the log's head and a digest over everything up to it, for `verify --checkpoint`.",
    ),
    "dataset": Lazy("cli.dataset", "dataset", "Risk-model training datasets."),
    "demo": Lazy(
        "cli.simulate",
        "demo",
        "A fresh embedded ledger, three months of simulated lending, and the lender's report.",
    ),
    "eod": Lazy("cli.eod", "eod", "End-of-day job: overdue marks and write-offs."),
    "events": Lazy("cli.audit", "events", "The stored events themselves."),
    "journal": Lazy("cli.journal", "journal", "The double-entry journal."),
    "loan": Lazy("cli.loan", "loan", "One loan."),
    "projections": Lazy("cli.projections", "projections", "Read models built from the event log, exactly once."),
    "reconcile": Lazy(
        "cli.reconcile",
        "reconcile",
        "Compare a bank's settlement FILE (bank_ref,loan_id,type,amount,value_date) with the ledger.",
    ),
    "report": Lazy("cli.report", "report", "Portfolio reports."),
    "serve": Lazy("cli.serve", "serve", "Serve the HTTP API (docs/api.md)."),
    "settle": Lazy(
        "cli.settle",
        "settle",
        "The bank-day settlement: per loan, principal received, the bank's interest and "
        "compensation, remitted and recorded once.",
    ),
    "simulate": Lazy(
        "cli.simulate",
        "simulate",
        "Simulate a micro-loan platform and append its stream day by day, running EOD after each day.",
    ),
    "token": Lazy("cli.token", "token", "Bearer tokens for the HTTP API (only a hash of each is stored)."),
    "verify": Lazy(
        "cli.audit",
        "verify",
        "Recompute every loan's hash chain; exit 1 naming each edited, removed, inserted or reordered event.",
    ),
}


if __name__ == "__main__":
    cli()
