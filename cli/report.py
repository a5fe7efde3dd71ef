"""`ledger report vintage`: ever-30+ curves by funding month (PNG) and the roll-rate matrix."""

from __future__ import annotations

import click

from cli.common import echo_json, open_ledger, parse_day, store_options
from domain.delinquency import BUCKETS
from ledger.eod import funded_loan_ids
from ledger.reports import ever30_curves, plot_ever30, roll_rates
from ledger.views import today_in_shanghai

ROWS = (*BUCKETS, "repaid", "written_off")


@click.group()
def report():
    """Portfolio reports."""


@report.command("vintage")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True), help="PNG to write.")
@click.option("--as-of", "as_of", metavar="DATE", help="Default: today in Asia/Shanghai.")
@store_options
def vintage(out, as_of, db_url, as_json):
    """Ever-30+ DPD rate by funding month, and how loans roll between month-end buckets."""
    app = open_ledger(db_url)
    day = parse_day(as_of, "--as-of") or today_in_shanghai()
    loans = [app.repository.get(i) for i in funded_loan_ids(app)]
    curves = ever30_curves(loans, day)
    plot_ever30(curves, out)
    matrix = roll_rates(loans, day)
    if as_json:
        echo_json({"as_of": day, "out": out, "ever30": curves, "roll_rates": matrix})
        return
    click.echo(f"wrote {out}")
    click.echo(f"\nroll rates, month-end to next month-end (% of row), as of {day}")
    click.echo(f"  {'from / to':<12}" + "".join(f"{c:>12}" for c in ROWS))
    for row in BUCKETS:
        counts = matrix.get(row, {})
        total = sum(counts.values())
        if total:
            click.echo(f"  {row:<12}" + "".join(f"{100 * counts.get(c, 0) / total:>11.1f}%" for c in ROWS))
