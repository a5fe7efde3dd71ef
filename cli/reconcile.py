"""`ledger reconcile`: a bank's settlement file against the ledger; exit 1 on any break."""

from __future__ import annotations

import csv
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click

from cli.common import EXIT_PROBLEM, echo_json, open_ledger, parse_day, store_options
from domain.money import fmt
from ledger.reconciliation_runs import record_run
from projections.jsonable import to_jsonable
from projections.reconciliation import TYPES, ReconciliationReport, history
from projections.reconciliation import reconcile as run_reconcile


@click.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--bank", help="The bank whose file this is.")
@click.option("--from", "date_from", metavar="DATE", help="First value date to check (default: the file's first).")
@click.option("--to", "date_to", metavar="DATE", help="Last value date to check (default: the file's last).")
@click.option(
    "--tolerance-days",
    type=click.IntRange(0, 30),
    default=0,
    show_default=True,
    help="Value dates this far apart still match.",
)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="Write the breaks as CSV here.")
@click.option("--history", "show_history", is_flag=True, help="List the recorded runs (for --bank, or all).")
@store_options
def reconcile(
    file: Path | None,
    bank: str | None,
    date_from: str | None,
    date_to: str | None,
    tolerance_days: int,
    out: str | None,
    show_history: bool,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Compare a bank's settlement FILE (bank_ref,loan_id,type,amount,value_date) with the ledger."""
    app = open_ledger(db_url)
    if show_history:
        runs = history(app, bank)
        if as_json:
            echo_json(runs)
        for r in [] if as_json else runs:
            click.echo(
                f"{r['recorded_at']:%Y-%m-%d %H:%M:%S} {r['bank']} {r['file_name']} sha256 {r['file_sha256'][:12]} "
                f"{_range(r['date_from'], r['date_to'])} rows {r['rows']} matched {r['matched']} "
                f"breaks {_counts(r['breaks'])} malformed {r['malformed']} net {r['net_difference']}"
            )
        return
    if file is None or not bank:
        raise click.UsageError("reconcile needs FILE and --bank (or --history)")
    try:
        report = run_reconcile(
            app, file, bank, parse_day(date_from, "--from"), parse_day(date_to, "--to"), tolerance_days
        )
    except ValueError as e:
        raise click.UsageError(f"{file}: {e}") from None
    # Everything shown is rendered before the run is recorded, so a run that fails to report is not on record.
    totals = {t: {"bank": fmt(report.bank_totals[t]), "ledger": fmt(report.ledger_totals[t])} for t in TYPES}
    if as_json:
        lines = [
            json_text(
                {
                    "bank": bank,
                    "file_sha256": report.file_sha256,
                    "date_from": report.date_from,
                    "date_to": report.date_to,
                    "rows": report.rows,
                    "matched": report.matched,
                    "breaks": report.breaks,
                    "malformed": report.malformed,
                    "totals": totals,
                    "net_difference": fmt(report.net_difference),
                }
            )
        ]
    else:
        lines = _human(bank, file.name, report, totals)
    if out:
        try:
            _write_out(out, report)
        except OSError as e:
            raise click.UsageError(f"cannot write --out {out}: {e.strerror}") from None
    record_run(app, bank, report.run_record())
    for line in lines:
        click.echo(line)
    if not report.clean:
        sys.exit(EXIT_PROBLEM)


OUT_COLUMNS = (
    "kind",
    "bank_ref",
    "loan_id",
    "line",
    "ledger_type",
    "ledger_amount",
    "ledger_value_date",
    "bank_type",
    "bank_amount",
    "bank_value_date",
    "error",
)


def _write_out(out: str, report: ReconciliationReport) -> None:
    """The breaks, then the malformed rows (kind ``malformed``, with the reason): every row needing a look."""
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(OUT_COLUMNS)
        for b in report.breaks:
            mine, theirs = b["ledger"] or {}, b["bank"] or {}
            w.writerow(
                [
                    b["kind"],
                    b["bank_ref"],
                    b["loan_id"],
                    b["line"] or "",
                    *(mine.get(k, "") for k in ("type", "amount", "value_date")),
                    *(theirs.get(k, "") for k in ("type", "amount", "value_date")),
                    "",
                ]
            )
        for m in report.malformed:
            w.writerow(["malformed", "", "", m["line"], "", "", "", "", "", "", m["error"]])


def _side(movement: dict[str, str] | None) -> str:
    return "-" if movement is None else f"{movement['type']} {movement['amount']} {movement['value_date']}"


def _safe(text: str) -> str:
    """A value from the bank's file, escaped if it holds anything (a newline, say) that could forge a line."""
    return text if text.isprintable() else json.dumps(text, ensure_ascii=True)


def _range(date_from: date | None, date_to: date | None) -> str:
    return f"{date_from}..{date_to}" if date_from and date_to else "no dated rows"


def _human(bank: str, file_name: str, report: ReconciliationReport, totals: dict[str, dict[str, str]]) -> list[str]:
    lines = [
        f"{bank} {file_name} ({_range(report.date_from, report.date_to)}): {report.rows} rows, "
        f"{report.matched} matched, {len(report.breaks)} breaks, {len(report.malformed)} malformed rows"
    ]
    for t in TYPES:
        lines.append(f"  {t:<13} bank {totals[t]['bank']:>15}  ledger {totals[t]['ledger']:>15}")
    lines.append(f"  net difference (bank - ledger) {fmt(report.net_difference)}")
    for b in report.breaks[:50]:
        lines.append(
            f"  {b['kind']:<19} {_safe(b['bank_ref'])} loan {_safe(b['loan_id']) or '-'}  "
            f"ledger {_side(b['ledger'])}  bank {_side(b['bank'])}"
        )
    for m in report.malformed[:50]:
        lines.append(f"  line {m['line']}: {m['error']}")
    return lines


def _counts(breaks: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(breaks.items())) or "0"


def json_text(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), ensure_ascii=False)
