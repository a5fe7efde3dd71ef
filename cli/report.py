"""`ledger report vintage` (cohort curves, roll rates) and `ledger report models` (risk-model monitoring)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import click

from cli.common import echo_json, open_ledger, parse_day, parse_moment, printable, store_options
from domain.loan import Loan
from ledger.eod import funded_loan_ids
from projections.dataset import rows
from projections.loan_view import today_in_shanghai
from projections.model_report import FEATURES, PERIODS, model_report, plot_models
from projections.reports import (
    COHORTS,
    CURVE_DAYS,
    GROUPINGS,
    ROLL_COLUMNS,
    SMALL_COHORT,
    cohort_table,
    last_data_day,
    plot_vintage,
    roll_rate_percentages,
    roll_rates,
)


@click.group()
def report() -> None:
    """Portfolio reports."""


@report.command("vintage")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True), help="PNG to write.")
@click.option("--as-of", "as_of", metavar="DATE", help="Default: today in Asia/Shanghai.")
@click.option(
    "--cohort", type=click.Choice(COHORTS), default="week", show_default=True, help="Cohorts by funding week or month."
)
@click.option("--by", type=click.Choice(GROUPINGS), help="Split each cohort by the loans' channel, bank or model.")
@store_options
def vintage(out: str, as_of: str | None, cohort: str, by: str | None, db_url: str | None, as_json: bool) -> None:
    """Cohort curves by days since the due date (FPD, ever 30+), net loss, and month-end roll rates."""
    app = open_ledger(db_url)
    day = parse_day(as_of, "--as-of") or today_in_shanghai()
    loans: list[Loan] = [app.repository.get(i) for i in funded_loan_ids(app)]
    # a day after the newest fact would only repeat the last one: figures stop where the data does
    until = min(day, last_data_day(loans) or day)
    cohorts = cohort_table(loans, until, cohort, by)
    matrix = roll_rates(loans, until)
    rates = roll_rate_percentages(matrix)
    figures = plot_vintage(cohorts, rates, until, cohort, by, out)
    if as_json:
        echo_json({"as_of": day, "out": out, "curve_days": CURVE_DAYS, "small_cohort": SMALL_COHORT,
                   **figures, "roll_rates": matrix, "roll_rate_percent": rates})  # fmt: skip
        return
    for line in vintage_text([c.as_dict(until) for c in cohorts], rates, until, cohort, by):
        click.echo(line)
    click.echo(f"\nwrote {out}")


def vintage_text(
    cohorts: list[dict[str, Any]], rates: dict[str, dict[str, float]], until: date, cohort: str, by: str | None
) -> list[str]:
    """Headed columns: one line per cohort, its size, FPD and ever 30+ by count and by amount, net loss, its curve."""
    group = f"{by:<12}" if by else ""
    out = [
        f"vintages by funding {cohort}{', by ' + by if by else ''}, data to {until}",
        "rates: % of loans (n) and % of principal funded (amt); curve: % of loans still past due at the end of "
        "due date + k days; '-' where a loan of the cohort has not reached that day yet",
        "",
        f"{'cohort':<10}{'by ' + by if by else '':<12}"[: 10 + len(group)]
        + f"{'loans':>7} {'funded CNY':>14}{'FPD n':>8}{'FPD amt':>8}{'30+ n':>8}{'30+ amt':>8}"
        + f"{'net loss CNY':>14}{'loss amt':>9}  "
        + "".join(f"{'+' + str(k):>7}" for k in CURVE_DAYS),
    ]
    for c in cohorts:
        mark = "*" if c["small"] else " "
        out.append(
            f"{c['cohort']:<10}"
            + (f"{printable(str(c['group']))[:11]:<12}" if by else "")
            + f"{c['loans']:>6}{mark} {c['funded']:>14,}"
            + "".join(_pct(c[k], 8) for k in ("fpd_rate", "fpd_rate_amount", "ever30_rate", "ever30_rate_amount"))
            + f"{c['net_loss']:>14,}{_pct(c['net_loss_rate'], 9)}  "
            + "".join(_pct(p, 7) for p in c["curve"])
        )
    out.append(f"* fewer than {SMALL_COHORT} loans: a handful of loans moves its rates")
    out += ["", f"roll rates, month-end to next month-end (% of row), to {until}"]
    out.append(f"{'from / to':<12}" + "".join(f"{c:>12}" for c in ROLL_COLUMNS))
    for row, cells in rates.items():
        out.append(f"{row:<12}" + "".join(f"{cells[c]:>11.1f}%" for c in ROLL_COLUMNS))
    return out


def _pct(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{100 * value:>{width - 1}.1f}%"


@report.command("models")
@click.option("--as-of", "as_of", metavar="DATE", required=True, help="Outcome windows are judged as of this date.")
@click.option(
    "--known-at",
    "known_at",
    metavar="TIMESTAMP",
    help="Only what the ledger had recorded by then (default: now). Give it to reproduce a report byte for byte.",
)
@click.option("--period", type=click.Choice(PERIODS), default="month", show_default=True, help="Application period.")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Also draw the report as a PNG here.")
@store_options
def models(as_of: str, known_at: str | None, period: str, out: str | None, db_url: str | None, as_json: bool) -> None:
    """How each risk-model version is doing: approvals, defaults, AUC, KS, PSI and feature drift, score deciles."""
    app = open_ledger(db_url)
    day = parse_day(as_of, "--as-of")
    if day is None:  # click enforces required=True; this satisfies the type checker without an assert
        raise click.UsageError("--as-of is required")
    moment = parse_moment(known_at, "--known-at") or datetime.now(UTC)
    data = model_report(rows(app, day, moment), day, moment, period)
    if out:
        plot_models(data, out)
    if as_json:
        echo_json(data | ({"out": out} if out else {}))
        return
    for line in models_text(data):
        click.echo(line)
    if out:
        click.echo(f"\nwrote {out}")


def _cell(value: Any, width: int, percent: bool = False) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if percent:
        return f"{value:>{width}.1%}"
    if isinstance(value, float):
        return f"{value:>{width}.4f}"
    return f"{value:>{width}}"


def models_text(data: dict[str, Any]) -> list[str]:
    """The report as headed text columns: one line per version and period, then drift and deciles."""
    out = [
        f"risk-model monitoring as of {data['as_of']}, known at {data['known_at']}, by {data['period']}",
        f"bad = {data['bad']}; PSI bands: " + ", ".join(f"{band} {limit}" for band, limit in data["psi_bands"].items()),
        "",
        f"{'model':<14}{'period':<10}{'apps':>7}{'approved':>9}{'funded':>7}{'score':>7}"
        f"{'fpd n':>7}{'fpd':>7}{'matured':>8}{'30+':>7}{'loss':>7}{'auc':>8}{'ks':>8}{'psi':>8}  band",
    ]
    for m in data["models"]:
        out.append(
            f"{printable(m['model_version'])[:13]:<14}{m['period']:<10}{m['applications']:>7}"
            + _cell(m["approval_rate"], 9, True)
            + _cell(m["funded"], 7)
            + _cell(m["mean_score"], 7).replace("0.", ".", 1)
            + _cell(m["fpd_matured"], 7)
            + _cell(m["fpd_rate"], 7, True)
            + _cell(m["matured"], 8)
            + _cell(m["ever30_rate"], 7, True)
            + _cell(m["loss_rate"], 7, True)
            + _cell(m["auc"], 8)
            + _cell(m["ks"], 8)
            + _cell(m["psi"], 8)
            + f"  {m['psi_band'] or ''}"
        )
    if not data["models"]:
        return [*out[:2], "", "no scored application is known at that time"]
    features = [c.name for c in FEATURES]
    if any(m["csi"] for m in data["models"]):
        out += ["", "feature drift (CSI against the version's first period)"]
        out.append(f"{'model':<14}{'period':<10}" + "".join(f"{name[:11]:>12}" for name in features))
        for m in data["models"]:
            if m["csi"]:
                out.append(
                    f"{printable(m['model_version'])[:13]:<14}{m['period']:<10}"
                    + "".join(_cell(m["csi"][name], 12) for name in features)
                )
    out += ["", "score deciles (all periods; 1 = lowest scores; bad rate among matured loans)"]
    out.append(f"{'model':<14}{'decile':>6}{'scores':>17}{'apps':>7}{'approved':>9}{'matured':>8}{'bad':>7}")
    for d in data["deciles"]:
        out.append(
            f"{printable(d['model_version'])[:13]:<14}{d['decile']:>6}"
            f"{d['min_score']:>9.4f}-{d['max_score']:<7.4f}{d['applications']:>7}"
            + _cell(d["approval_rate"], 9, True)
            + _cell(d["matured"], 8)
            + _cell(d["bad_rate"], 7, True)
        )
    return out


from cli.partners import partners_report  # noqa: E402  (a subcommand of its own module)

report.add_command(partners_report)
