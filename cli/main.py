"""`ledger`: the operators' and finance's entry point. Thin: parse, call the application, render."""

from __future__ import annotations

import sys
from collections import Counter
from typing import BinaryIO

import click

from cli.common import (
    DB_HELP,
    EXIT_PROBLEM,
    LedgerGroup,
    Problem,
    Unavailable,
    echo_json,
    open_ledger,
    parse_day,
    parse_moment,
    printable,
    store_options,
    workers_option,
)
from cli.render import event_line, loan_lines
from cli.stopping import Interrupted, report_stop, stop_at_batch_boundary
from domain.delinquency import BUCKETS
from eventstore.parts import PartCrashed
from eventstore.retry import StoreUnavailable
from ledger.app import Outcome
from ledger.config import redact
from ledger.eod import run_eod
from ledger.ingest import UnreadableInput, append_lines, read_lines
from projections.balances import STATES, open_loan_uuids
from projections.lists import BadCursor, loan_page
from projections.loan_view import show_loan, today_in_shanghai
from projections.parties import sent_by
from projections.runner import catch_up
from projections.runner import views as projection_views


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


@cli.group()
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


@cli.command()
@click.option("--date", "day", metavar="DATE", help="Value date to close (default: yesterday in Asia/Shanghai).")
@workers_option("closing the day", "the same events and report")
@store_options
def eod(day: str | None, workers: int, db_url: str | None, as_json: bool) -> None:
    """End-of-day job: overdue marks and write-offs. Safe to run twice; a day after today is refused (exit 2)."""
    from datetime import timedelta

    from ledger.eod import FutureDay, check_closable

    today = today_in_shanghai()
    close = parse_day(day, "--date") or today - timedelta(days=1)
    try:
        check_closable(close, today)  # before the store is even opened: nothing written
    except FutureDay as e:
        raise click.BadParameter(str(e), param_hint="--date") from None
    app = open_ledger(db_url)
    catch_up(app)  # the projection knows which loans are open and past due
    candidates = open_loan_uuids(projection_views(app), close)
    if workers == 1:
        report = run_eod(app, close, candidates=candidates)
    else:
        from ledger.eod_parts import run_eod_in_parts

        try:
            report = run_eod_in_parts(app.settings, close, candidates, workers)
        except PartCrashed as e:
            raise Unavailable(f"{e}; what was committed before stays, and running the command again is safe") from None
    counts = {f"{kind}:{status}": n for (kind, status), n in sorted(report.outcomes.items())}
    if as_json:
        echo_json(
            {
                "date": close,
                "loans_checked": report.loans_checked,
                "already_closed": report.already_closed,
                "outcomes": counts,
                "rejected": [{"loan_id": loan_id, "error": e} for loan_id, e in report.rejected],
            }
        )
    else:
        click.echo(
            f"eod {close}: {report.loans_checked} loans checked; "
            + (", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing to do")
            + (f" ({report.already_closed} already closed for a later day)" if report.already_closed else "")
        )
        for loan_id, error in report.rejected:
            click.echo(f"  {loan_id}: {error}")
    if report.rejected:
        sys.exit(EXIT_PROBLEM)


from cli.simulate import demo, simulate  # noqa: E402

cli.add_command(simulate)
cli.add_command(demo)

from cli.projections import balances, projections  # noqa: E402

cli.add_command(balances)
cli.add_command(projections)

from cli.reconcile import reconcile  # noqa: E402
from cli.settle import settle  # noqa: E402

cli.add_command(settle)

from cli.journal import journal  # noqa: E402

cli.add_command(journal)

cli.add_command(reconcile)

from cli.dataset import dataset  # noqa: E402

cli.add_command(dataset)

from cli.report import report  # noqa: E402

cli.add_command(report)

from cli.partners import partners_report  # noqa: E402

report.add_command(partners_report)

from cli.borrower import borrower  # noqa: E402

cli.add_command(borrower)

from cli.serve import serve  # noqa: E402

cli.add_command(serve)

from cli.token import token  # noqa: E402

cli.add_command(token)

from cli.audit import checkpoint, events, verify  # noqa: E402

cli.add_command(verify)
cli.add_command(checkpoint)
cli.add_command(events)


if __name__ == "__main__":
    cli()
