"""`ledger balances` and `ledger projections status|rebuild`."""

from __future__ import annotations

import sys

import click

from cli.common import echo_json, open_ledger, parse_day, store_options
from domain.money import fmt
from ledger.views import today_in_shanghai
from projections import runner
from projections.balances import GROUPINGS, PARTS, portfolio, trial_balance


@click.command()
@click.option("--as-of", "as_of", metavar="DATE", help="Value date (default: today in Asia/Shanghai).")
@click.option("--by", type=click.Choice(GROUPINGS), default="bank", show_default=True)
@store_options
def balances(as_of, by, db_url, as_json):
    """Portfolio balances from the double-entry journal, and the trial balance."""
    app = open_ledger(db_url)
    day = parse_day(as_of, "--as-of") or today_in_shanghai()
    runner.catch_up(app)  # answer from everything appended so far
    db = runner.views(app)
    groups = portfolio(db, day, by)
    trial = trial_balance(db, day)
    if as_json:
        echo_json({"as_of": day, "by": by, "trial_balance": fmt(trial), "groups": [
            {"key": g.key, "loans": g.loans, **{k: fmt(v) for k, v in g.amounts.items()}} for g in groups]})
        return
    columns = (*PARTS, "overpayment", "total")
    click.echo(f"balances as of {day} by {by}")
    click.echo(f"  {by:<12}{'loans':>7}" + "".join(f"{c:>15}" for c in columns))
    for g in groups:
        click.echo(f"  {str(g.key):<12}{g.loans:>7}" + "".join(f"{g.amounts[c]:>15,.2f}" for c in columns))
    click.echo(f"  trial balance {fmt(trial)}")
    if trial != 0:
        click.echo("error: the trial balance is not zero", err=True)
        sys.exit(1)


@click.group()
def projections():
    """Read models built from the event log."""


@projections.command("status")
@store_options
def projections_status(db_url, as_json):
    """Position, head and lag of each projection."""
    app = open_ledger(db_url)
    rows = runner.status(app)
    if as_json:
        echo_json([{"name": s.name, "position": s.position, "head": s.head, "lag": s.lag} for s in rows])
        return
    for s in rows:
        click.echo(f"{s.name}: position {s.position}, head {s.head}, lag {s.lag}")


@projections.command("rebuild")
@click.argument("name", required=False, type=click.Choice(sorted(runner.PROJECTIONS)))
@click.option("--page-size", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Events per transaction.")
@store_options
def projections_rebuild(name, page_size, db_url, as_json):
    """Rebuild from empty (all projections, or NAME): the same result as built incrementally."""
    app = open_ledger(db_url)
    for projection in [name] if name else sorted(runner.PROJECTIONS):
        runner.reset(app, projection)
        head = app.recorder.max_notification_id() or 0
        with click.progressbar(length=head, label=f"rebuilding {projection}", file=sys.stderr) as bar:
            n = runner.catch_up(app, projection, page_size=page_size, progress=bar.update)
        if as_json:
            echo_json({"name": projection, "events": n})
        else:
            click.echo(f"{projection}: rebuilt from {n} events")
