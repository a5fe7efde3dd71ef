"""`ledger report partners`: each bank's, channel's, agency's or model version's own book."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import click

from cli.common import echo_json, open_ledger, parse_day, parse_moment, printable, store_options
from projections import runner
from projections.partners import BY, partners

# (column, heading, width) in the order shown; amounts and rates right-aligned
_COMMON = [
    ("funded", "funded", 7),
    ("funded_amount", "funded amount", 15),
    ("loans", "owing", 6),
    ("total", "outstanding", 14),
    ("repaid", "repaid", 7),
    ("overdue", "overdue", 8),
    ("written_off", "w/off", 6),
    ("written_off_amount", "written off", 13),
    ("recovered", "recovered", 11),
    ("net_loss", "net loss", 12),
    ("loss_rate", "loss", 7),
]
_APPLICATIONS = [("applications", "applied", 8), ("approved", "approved", 9), ("approval_rate", "appr.", 7)]
_AGENCY = [
    ("assigned", "assigned", 9),
    ("assigned_amount", "owed at hand-over", 18),
    ("collected", "collected", 13),
    ("collection_rate", "rate", 7),
]
_KEY_WIDTH = 16


def _cell(name: str, value: Any, width: int) -> str:
    if value is None:  # a rate of nothing
        return f"{'-':>{width}}"
    if name.endswith("_rate"):
        return f"{value:>{width}.1%}"
    if isinstance(value, Decimal):
        return f"{value:>{width},}"
    return f"{value:>{width}}"


@click.command("partners")
@click.option("--as-of", "as_of", metavar="DATE", required=True, help="Value date of the books.")
@click.option("--known-at", "known_at", metavar="TIMESTAMP", help="As the ledger knew it then (ISO 8601 with offset).")
@click.option("--by", type=click.Choice(BY), required=True, help="Which kind of party.")
@store_options
def partners_report(as_of: str, known_at: str | None, by: str, db_url: str | None, as_json: bool) -> None:
    """Each party's own book as of a date: its loans, amounts and outcomes.

    Channels: applications and approval rate. Model versions: decisions and approval rate.
    Agencies: loans handed over (count, what they owed then), collected, and the collection
    rate by DPD bucket at hand-over; `inhouse` holds every loan no agency holds. Banks: funded,
    outstanding, losses. The loans and amounts are those of `ledger balances --by` (bank,
    channel, agency, model).
    """
    day = parse_day(as_of, "--as-of")
    if day is None:  # (click requires it; an empty value is not a date either)
        raise click.BadParameter("a date is required", param_hint="--as-of")
    moment = parse_moment(known_at, "--known-at")
    app = open_ledger(db_url)
    runner.catch_up(app)  # answer from everything appended so far
    rows = [p.figures(by) for p in partners(runner.views(app), day, by, moment)]
    if as_json:
        out: dict[str, Any] = {"as_of": day, "by": by, "parties": rows}
        if moment:
            out["known_at"] = moment
        echo_json(out)
        return
    columns = _COMMON + (_APPLICATIONS if by in ("channel", "model") else _AGENCY if by == "agency" else [])
    click.echo(f"partners by {by} as of {day}" + (f", as known at {moment.isoformat()}" if moment else ""))
    click.echo(f"  {by:<{_KEY_WIDTH}}" + "".join(f"{heading:>{width}}" for _, heading, width in columns))
    for row in rows:
        click.echo(
            f"  {printable(str(row['key'])):<{_KEY_WIDTH}}"
            + "".join(_cell(name, row[name], width) for name, _, width in columns)
        )
        for line in row.get("by_bucket", []):
            click.echo(
                f"    {line['bucket']:<4} at hand-over: {line['assigned']:>7} handed over, owing "
                f"{line['assigned_amount']:>14,}, collected {line['collected']:>14,} "
                f"({_cell('collection_rate', line['collection_rate'], 7).strip()})"
            )
