"""`ledger settle`: the daily settlement with a funding bank."""

from __future__ import annotations

import itertools
import re
import sys
from pathlib import Path

import click

from cli.common import EXIT_PROBLEM, closable_day, echo_json, open_ledger, store_options
from ledger.settle import SettlementOrder, bank_days, run_settle
from projections.loan_view import today_in_shanghai
from projections.runner import catch_up, views
from projections.settlements import bank_loan_uuids

BANK = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)  # as the funded command's bank


@click.command()
@click.option("--bank", required=True, help="The funding bank, as the funded commands name it.")
@click.option("--date", "day", metavar="DATE", help="The day to settle (default: yesterday in Asia/Shanghai).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write the statement here (CSV).")
@store_options
def settle(bank: str, day: str | None, out: str | None, db_url: str | None, as_json: bool) -> None:
    """The bank-day settlement: per loan, principal received, the bank's interest and compensation,
    remitted and recorded once. Safe to run twice; a day after today, or before the bank's last
    settled day, is refused (exit 2)."""
    today = today_in_shanghai()
    settle_on = closable_day(day, today)
    if not BANK.fullmatch(bank):
        raise click.BadParameter(f"{bank[:80]!r} is not a bank as funded commands name one", param_hint="--bank")
    app = open_ledger(db_url)
    catch_up(app)  # the view knows which of the bank's loans may have something to remit
    days = bank_days(app, bank)
    candidates = bank_loan_uuids(views(app), bank, settle_on, None if days is None else days.last_day)
    first = next(candidates, None)
    if first is None and days is None:
        raise click.BadParameter(f"no loan was funded by {bank} by {settle_on}: nothing to settle", param_hint="--bank")
    candidates = itertools.chain([] if first is None else [first], candidates)
    try:
        statement = run_settle(app, bank, settle_on, today, candidates=candidates)
    except SettlementOrder as e:
        raise click.BadParameter(str(e), param_hint="--date") from None

    if out:
        Path(out).write_text(statement.csv_text(), encoding="utf-8")
    summary = statement.as_dict()
    if as_json:
        echo_json({**summary, "appended": statement.appended, "out": out})
    else:
        state = (
            "already settled, nothing added" if statement.already_settled else f"{statement.appended} loans remitted"
        )
        click.echo(
            f"settle {bank} {settle_on}: {state}; {summary['loans']} loans, principal {summary['principal']}, "
            f"interest {summary['interest']}, compensation {summary['compensation']}, total {summary['total']}"
            + (f" -> {out}" if out else "")
        )
        for loan_id, error in statement.rejected:
            click.echo(f"  {loan_id}: {error}")
    if statement.rejected:
        sys.exit(EXIT_PROBLEM)
