"""`ledger journal export`: the journal's lines for the general ledger."""

from __future__ import annotations

import click

from cli.common import echo_json, open_ledger, parse_day, store_options
from projections import runner
from projections.journal_export import BadRange, check_range, export_rows, write


@click.group()
def journal() -> None:
    """The double-entry journal."""


@journal.command("export")
@click.option("--from", "date_from", metavar="DATE", required=True, help="First value date.")
@click.option("--to", "date_to", metavar="DATE", required=True, help="Last value date, included.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True))
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@store_options
def export(date_from: str, date_to: str, out: str, fmt: str, db_url: str | None, as_json: bool) -> None:
    """Every journal line of the range (date, account, debit, credit, loan, event), an accrual run a row
    a night; per account the rows sum to balances --as-of TO less balances --as-of the day before FROM."""
    first, last = parse_day(date_from, "--from"), parse_day(date_to, "--to")
    if first is None or last is None:  # (both required)
        raise click.UsageError("--from and --to are required")
    try:
        check_range(first, last)  # before the store is even opened
    except BadRange as e:
        raise click.BadParameter(str(e), param_hint="--to") from None
    app = open_ledger(db_url)
    runner.catch_up(app)
    n = write(export_rows(runner.views(app), first, last), out, fmt)
    if as_json:
        echo_json({"out": out, "format": fmt, "rows": n, "from": first, "to": last})
    else:
        click.echo(f"wrote {n} journal rows to {out} ({fmt}; {first} to {last})")
