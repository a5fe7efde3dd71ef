"""`ledger balances` and `ledger projections status|catch-up|rebuild`."""

from __future__ import annotations

import sys

import click

from cli.common import (
    EXIT_PROBLEM,
    Unavailable,
    echo_json,
    open_ledger,
    parse_day,
    parse_moment,
    store_options,
    workers_option,
)
from domain.money import fmt
from eventstore.parts import PartCrashed
from projections import runner
from projections.balances import (
    AMOUNTS,
    GROUPINGS,
    account_balances,
    bank_payables,
    bank_payables_json,
    portfolio,
    trial_balance,
)
from projections.loan_view import today_in_shanghai

_page_size = click.option(
    "--page-size",
    type=click.IntRange(1, 100_000),
    default=runner.PAGE_SIZE,
    show_default=True,
    help="Events per transaction.",
)


@click.command()
@click.option("--as-of", "as_of", metavar="DATE", help="Value date (default: today in Asia/Shanghai).")
@click.option("--known-at", "known_at", metavar="TIMESTAMP", help="As the ledger knew it then (ISO 8601 with offset).")
@click.option("--by", type=click.Choice(GROUPINGS), default="bank", show_default=True)
@click.option("--accounts", is_flag=True, help="Also list every account's balance (the trial balance in full).")
@store_options
def balances(
    as_of: str | None, known_at: str | None, by: str, accounts: bool, db_url: str | None, as_json: bool
) -> None:
    """Portfolio balances from the double-entry journal, and the trial balance (exit 1 unless zero)."""
    app = open_ledger(db_url)
    day = parse_day(as_of, "--as-of") or today_in_shanghai()
    moment = parse_moment(known_at, "--known-at")
    runner.catch_up(app)  # answer from everything appended so far
    db = runner.views(app)
    groups = portfolio(db, day, by, moment)
    trial = trial_balance(db, day, moment)
    by_account = account_balances(db, day, moment) if accounts else None
    banks = bank_payables(db, day, moment) if by == "bank" else []
    if as_json:
        out = {
            "as_of": day,
            "by": by,
            "groups": [{"key": g.key, "loans": g.loans, **{k: fmt(v) for k, v in g.amounts.items()}} for g in groups],
            "trial_balance": fmt(trial),
        }
        if moment:
            out["known_at"] = moment
        if by_account is not None:
            out["accounts"] = {account: fmt(v) for account, v in by_account.items()}
        if by == "bank":
            out["banks"] = bank_payables_json(banks)
        echo_json(out)
    else:
        click.echo(f"balances as of {day} by {by}" + (f", as known at {moment.isoformat()}" if moment else ""))
        click.echo(f"  {by:<12}{'owing':>7}{'funded':>8}" + "".join(f"{c:>15}" for c in AMOUNTS))
        for g in groups:
            amounts = g.amounts
            click.echo(
                f"  {str(g.key):<12}{g.loans:>7}{g.funded:>8}" + "".join(f"{amounts[c]:>15,.2f}" for c in AMOUNTS)
            )
        if banks:
            names = ("funded", "remitted", "compensated", "interest", "owed")
            click.echo("  what each bank advanced, was remitted (principal, its interest) and is still owed")
            click.echo(f"  {'bank':<12}" + "".join(f"{n:>15}" for n in names))
            for b in banks:
                click.echo(f"  {b.bank:<12}" + "".join(f"{getattr(b, n):>15,.2f}" for n in names))
        for account, balance in (by_account or {}).items():
            click.echo(f"  {account:<40}{balance:>18,.2f}")
        click.echo(f"  trial balance {fmt(trial)}")
    if trial != 0:
        click.echo("Error: the trial balance is not zero", err=True)
        sys.exit(EXIT_PROBLEM)


@click.group()
def projections() -> None:
    """Read models built from the event log, exactly once."""


@projections.command("status")
@store_options
def projections_status(db_url: str | None, as_json: bool) -> None:
    """Position, head and lag (in notification ids) of each projection."""
    app = open_ledger(db_url)
    rows = runner.status(app)
    if as_json:
        echo_json(
            [{"name": s.name, "position": s.position, "head": s.head, "lag": s.lag, "failure": s.failure} for s in rows]
        )
    else:
        for s in rows:
            click.echo(f"{s.name}: position {s.position}, head {s.head}, lag {s.lag}")
            if s.failure:
                click.echo(f"  STOPPED: {s.failure}")
    if any(s.failure for s in rows):
        sys.exit(EXIT_PROBLEM)


@projections.command("catch-up")
@click.argument("name", required=False, type=click.Choice(sorted(runner.PROJECTIONS)))
@_page_size
@store_options
def projections_catch_up(name: str | None, page_size: int, db_url: str | None, as_json: bool) -> None:
    """Apply what was appended since the last run (all projections, or NAME)."""
    app = open_ledger(db_url)
    for projection in [name] if name else sorted(runner.PROJECTIONS):
        n = runner.catch_up(app, projection, page_size=page_size)
        echo_json({"name": projection, "events": n}) if as_json else click.echo(f"{projection}: {n} events applied")


@projections.command("rebuild")
@click.argument("name", required=False, type=click.Choice(sorted(runner.PROJECTIONS)))
@_page_size
@workers_option("filling the new views", "the rows are the same")
@store_options
def projections_rebuild(name: str | None, page_size: int, workers: int, db_url: str | None, as_json: bool) -> None:
    """Rebuild from empty (all projections, or NAME): the same rows as built incrementally."""
    app = open_ledger(db_url)
    for projection in [name] if name else sorted(runner.PROJECTIONS):
        head = app.recorder.max_notification_id() or 0
        with click.progressbar(length=head, label=f"rebuilding {projection}", file=sys.stderr, hidden=as_json) as bar:
            try:
                n = runner.rebuild(app, projection, page_size=page_size, progress=bar.update, workers=workers)
            except PartCrashed as e:  # the live views are untouched; the next rebuild drops the new tables
                raise Unavailable(f"{e}; the live views are unchanged, and running the command again is safe") from None
        echo_json({"name": projection, "events": n}) if as_json else click.echo(
            f"{projection}: rebuilt from {n} events"
        )
