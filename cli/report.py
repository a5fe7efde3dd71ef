"""`ledger report vintage`: ever-30+ curves by funding month beside the roll-rate matrix (PNG), and the table."""

from __future__ import annotations

import click

from cli.common import echo_json, open_ledger, parse_day, store_options
from domain.loan import Loan
from ledger.eod import funded_loan_ids
from projections.loan_view import today_in_shanghai
from projections.reports import (
    ROLL_COLUMNS,
    ever30_curves,
    last_data_day,
    plot_vintage,
    roll_rate_percentages,
    roll_rates,
    vintages,
)


@click.group()
def report() -> None:
    """Portfolio reports."""


@report.command("vintage")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True), help="PNG to write.")
@click.option("--as-of", "as_of", metavar="DATE", help="Default: today in Asia/Shanghai.")
@store_options
def vintage(out: str, as_of: str | None, db_url: str | None, as_json: bool) -> None:
    """Ever-30+ DPD rate by funding month, and how loans roll between month-end buckets."""
    app = open_ledger(db_url)
    day = parse_day(as_of, "--as-of") or today_in_shanghai()
    loans: list[Loan] = [app.repository.get(i) for i in funded_loan_ids(app)]
    # a month-end after the newest fact would only repeat the last one: figures stop where the data does
    until = min(day, last_data_day(loans) or day)
    curves = ever30_curves(loans, until)
    cohorts = {v.month: v.loans for v in vintages(loans, until)}
    matrix = roll_rates(loans, until)
    rates = roll_rate_percentages(matrix)
    plot_vintage(curves, cohorts, rates, until, out)
    if as_json:
        echo_json(
            {
                "as_of": day,
                "until": until,
                "out": out,
                "ever30": curves,
                "cohorts": cohorts,
                "roll_rates": matrix,
                "roll_rate_percent": rates,
            }
        )
        return
    click.echo(f"wrote {out}")
    click.echo(f"\never 30+ DPD, % of loans funded, by month-end after funding (0 = the funding month), to {until}")
    for month, points in curves.items():
        click.echo(f"  {month} ({cohorts[month]:>6,} loans)" + "".join(f"{100 * p:>7.1f}%" for p in points))
    click.echo(f"\nroll rates, month-end to next month-end (% of row), to {until}")
    click.echo(f"  {'from / to':<12}" + "".join(f"{c:>12}" for c in ROLL_COLUMNS))
    for row, cells in rates.items():
        click.echo(f"  {row:<12}" + "".join(f"{cells[c]:>11.1f}%" for c in ROLL_COLUMNS))
