"""`ledger`: the operators' and finance's entry point. Thin: parse, call the application, render."""

from __future__ import annotations

import sys
from collections import Counter
from typing import IO

import click

from cli.common import (
    EXIT_PROBLEM,
    echo_json,
    open_ledger,
    parse_day,
    parse_moment,
    store_options,
)
from cli.stopping import Interrupted, report_stop, stop_at_batch_boundary
from domain.loan import loan_uuid
from ledger.eod import run_eod
from ledger.ingest import append_lines
from ledger.retry import StoreUnavailable
from ledger.views import loan_view, today_in_shanghai
from projections.balances import open_loan_ids
from projections.runner import catch_up
from projections.runner import views as projection_views


@click.group()
def cli() -> None:
    """Event-sourced ledger for short-term consumer micro-loans."""


@cli.command()
@store_options
def init(db_url: str | None, as_json: bool) -> None:
    """Create the store and its tables (safe to run again)."""
    app = open_ledger(db_url)
    projection_views(app)
    if as_json:
        echo_json({"store": app.settings.db_url, "status": "ready"})
    else:
        click.echo(f"ledger ready at {app.settings.db_url}")


@cli.command()
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
@store_options
def append(source: IO[str], db_url: str | None, as_json: bool) -> None:
    """Append JSON Lines commands from FILE (or - for stdin).

    Each line is reported appended, duplicate or rejected (with its line number
    and reason). Valid lines are appended even when others are rejected;
    re-running a file appends nothing new. Exit 1 if any line was rejected.
    """
    app = open_ledger(db_url)
    totals: Counter = Counter()
    last_line = 0
    with stop_at_batch_boundary(app) as guarded:  # SIGINT/SIGTERM: finish the batch in flight, then stop
        try:
            for item in append_lines(guarded, source):
                o = item.outcome
                totals[o.status] += 1
                last_line = item.line
                if as_json:
                    row = {"line": item.line, "status": o.status, "loan_id": o.loan_id}
                    if o.error:
                        row["error"] = o.error
                    echo_json(row)
                elif o.error:
                    click.echo(f"line {item.line}: rejected: {o.error}")
        except (Interrupted, StoreUnavailable) as stop:
            report_stop(stop, totals, last_line, as_json)
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
    app = open_ledger(db_url)
    day = parse_day(as_of, "--as-of") or today_in_shanghai()
    moment = parse_moment(known_at, "--known-at")
    events = app.loan_events(loan_id, moment)
    loan_obj = app.get_loan(loan_id, moment) if events else None
    if loan_obj is None:
        click.echo(f"error: no loan {loan_id}" + (f" known at {known_at}" if moment else ""), err=True)
        sys.exit(EXIT_PROBLEM)
    view = loan_view(loan_obj, events, day, moment)
    if as_json:
        echo_json(view)
        return
    b = view["balances"]
    click.echo(
        f"loan {view['loan_id']}  state {view['state']}  bank {view['bank'] or '-'}  "
        f"due {view['due_date'] or '-'}  DPD {view['dpd']}  bucket {view['bucket']}  (as of {day})"
    )
    click.echo(
        f"  principal {b['principal']}  interest {b['interest']}  fee {b['fee']}  "
        f"penalty {b['penalty']}  overpayment {b['overpayment']}  total owed {b['total']}"
    )
    for e in view["events"]:
        detail = ", ".join(
            f"{k}={v}"
            for k, v in e.items()
            if k not in ("version", "type", "recorded_at", "idempotency_key", "occurred_at")
        )
        click.echo(f"  v{e['version']} {e['type']:<11} recorded {e['recorded_at']:%Y-%m-%d %H:%M:%S}  {detail}")


@cli.command()
@click.option("--date", "day", metavar="DATE", help="Value date to close (default: yesterday in Asia/Shanghai).")
@store_options
def eod(day: str | None, db_url: str | None, as_json: bool) -> None:
    """End-of-day job: overdue marks and write-offs. Safe to run twice."""
    from datetime import timedelta

    app = open_ledger(db_url)
    close = parse_day(day, "--date") or today_in_shanghai() - timedelta(days=1)
    catch_up(app)  # the projection knows which loans are open and past due
    candidates = [loan_uuid(loan_id) for loan_id in open_loan_ids(projection_views(app), close)]
    report = run_eod(app, close, candidates=candidates)
    counts = {f"{kind}:{status}": n for (kind, status), n in sorted(report.outcomes.items())}
    if as_json:
        echo_json(
            {
                "date": close,
                "loans_checked": report.loans_checked,
                "outcomes": counts,
                "rejected": [{"loan_id": loan_id, "error": e} for loan_id, e in report.rejected],
            }
        )
    else:
        click.echo(
            f"eod {close}: {report.loans_checked} loans checked; "
            + (", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing to do")
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

cli.add_command(reconcile)

from cli.dataset import dataset  # noqa: E402

cli.add_command(dataset)

from cli.report import report  # noqa: E402

cli.add_command(report)

from cli.borrower import borrower  # noqa: E402

cli.add_command(borrower)


if __name__ == "__main__":
    cli()
