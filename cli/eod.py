"""`ledger eod`: the end-of-day job, in one process or in parts."""

from __future__ import annotations

import sys

import click

from cli.common import EXIT_PROBLEM, Unavailable, closable_day, echo_json, open_ledger, store_options, workers_option
from eventstore.parts import PartCrashed
from ledger.eod import run_eod
from projections.balances import open_loan_uuids
from projections.loan_view import today_in_shanghai
from projections.runner import catch_up
from projections.runner import views as projection_views


@click.command()
@click.option("--date", "day", metavar="DATE", help="Value date to close (default: yesterday in Asia/Shanghai).")
@workers_option("closing the day", "the same events and report")
@store_options
def eod(day: str | None, workers: int, db_url: str | None, as_json: bool) -> None:
    """End-of-day job: overdue marks and write-offs. Safe to run twice; a day after today is refused (exit 2)."""
    close = closable_day(day, today_in_shanghai())
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
