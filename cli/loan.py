"""`ledger loan show` and `ledger loan list`: one loan, and the funded loans from the book."""

from __future__ import annotations

import click

from cli.common import Problem, echo_json, open_ledger, parse_day, parse_moment, store_options
from cli.render import event_line, loan_lines
from domain.delinquency import BUCKETS
from projections.balances import STATES
from projections.lists import BadCursor, loan_page
from projections.loan_view import show_loan, today_in_shanghai
from projections.parties import sent_by
from projections.runner import catch_up
from projections.runner import views as projection_views


@click.group()
def loan() -> None:
    """One loan."""


@loan.command("show")
@click.argument("loan_id")
@click.option("--as-of", "as_of", metavar="DATE", help="Value date (default: today in Asia/Shanghai).")
@click.option("--known-at", "known_at", metavar="TIMESTAMP", help="Only what the ledger had recorded by then.")
@store_options
def loan_show(loan_id: str, as_of: str | None, known_at: str | None, db_url: str | None, as_json: bool) -> None:
    """State, terms, balances, DPD and history of LOAN_ID, as of a date and as known at a time."""
    day = parse_day(as_of, "--as-of") or today_in_shanghai()
    moment = parse_moment(known_at, "--known-at")
    view = show_loan(open_ledger(db_url), loan_id, day, moment)
    if view is None:
        raise Problem(f"no loan {loan_id}" + (f" known at {moment.isoformat()}" if moment else ""))
    if as_json:
        echo_json(view)
        return
    for line in loan_lines(view):
        click.echo(line)
    for e in view["events"]:
        click.echo(event_line(e))


@loan.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only loans in this state as of the date.")
@click.option("--bucket", type=click.Choice(BUCKETS), help="Only loans in this delinquency bucket.")
@click.option("--bank", help="Only loans funded by this bank.")
@click.option("--channel", help="Only loans whose application came through this channel.")
@click.option("--as-of", "as_of", metavar="DATE", help="Value date (default: today in Asia/Shanghai).")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=100, show_default=True, help="At most this many.")
@click.option("--cursor", metavar="CURSOR", help="Start after the page that gave this next_cursor.")
@store_options
def loan_list(
    state: str | None,
    bucket: str | None,
    bank: str | None,
    channel: str | None,
    as_of: str | None,
    limit: int,
    cursor: str | None,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Funded loans from the book, in loan id order: state, bucket, DPD, bank, what the book holds.

    A written-off loan holds 0.00 on the book; `loan show` gives what its borrower still owes.
    With more than --limit, --json gives next_cursor: pass it as --cursor for the next page.
    """
    day = parse_day(as_of, "--as-of") or today_in_shanghai()
    app = open_ledger(db_url)
    catch_up(app)  # answer from everything appended so far
    where = [] if channel is None else [sent_by(channel).condition]
    try:
        rows, next_cursor = loan_page(
            projection_views(app),
            day,
            state=state,
            bucket=bucket,
            bank=bank,
            where_loans=where,
            cursor=cursor,
            limit=limit,
        )
    except BadCursor as e:
        raise click.BadParameter(str(e), param_hint="--cursor") from None
    more = next_cursor is not None
    if as_json:
        echo_json({"as_of": day, "loans": rows, "more": more, "next_cursor": next_cursor})
        return
    click.echo(f"{len(rows)} loans as of {day}" + (f" (first {limit}; there are more)" if more else ""))
    if rows:
        click.echo(
            f"  {'loan':<20} {'state':<12} {'bucket':<8} {'DPD':>5}  {'bank':<12} {'due':<10} {'on the book':>14}"
        )
    for r in rows:
        click.echo(
            f"  {r['loan_id']:<20} {r['state']:<12} {r['bucket']:<8} {r['dpd']:>5}  {r['bank']:<12} "
            f"{r['due_date']} {r['total']:>14}"
        )
    if next_cursor:
        click.echo(f"  next page: --cursor {next_cursor}")
