"""`ledger dataset export`: training rows for the risk model, as of a date and as known at a time."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from cli.common import echo_json, open_ledger, parse_day, parse_moment, store_options
from projections.dataset import rows, write


@click.group()
def dataset() -> None:
    """Risk-model training datasets."""


@dataset.command("export")
@click.option("--as-of", "as_of", metavar="DATE", required=True, help="Outcome windows are judged as of this date.")
@click.option(
    "--known-at",
    "known_at",
    metavar="TIMESTAMP",
    help="Only what the ledger had recorded by then (default: now). Give it to make an export reproducible.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True))
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@store_options
def export(as_of: str, known_at: str | None, out: str, fmt: str, db_url: str | None, as_json: bool) -> None:
    """One row per application: features known before the decision, labels once matured."""
    app = open_ledger(db_url)
    day = parse_day(as_of, "--as-of")
    if day is None:  # --as-of is required: click refuses its absence first
        raise click.BadParameter("is required", param_hint="--as-of")
    moment = parse_moment(known_at, "--known-at") or datetime.now(UTC)
    n = write(rows(app, day, moment), out, fmt, day, moment)
    if as_json:
        echo_json({"out": out, "format": fmt, "rows": n, "as_of": day, "known_at": moment})
    else:
        click.echo(f"wrote {n} rows to {out} ({fmt}; as of {day}, known at {moment.isoformat()})")
