"""`ledger simulate` and `ledger demo`: a synthetic portfolio through the real append path."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click

from cli.common import EXIT_PROBLEM, echo_json, open_ledger, parse_day, store_options
from domain.errors import BrokenInvariant
from domain.loan import Loan
from ledger.app import Ledger
from ledger.config import parse_bank_terms, redact
from ledger.eod import funded_loan_ids
from projections import runner
from projections.balances import PARTS, Group, bank_payables, portfolio
from projections.reports import vintages
from simulator.platform import Simulator
from simulator.run import AGREEMENTS, SimulationReport, run_simulation

DEMO_START = date(2026, 1, 1)
DEMO_BOOKS = ("bank", "bucket", "channel", "agency", "model")  # the book is shown grouped by each


@click.command()
@click.option("--loans", type=click.IntRange(1, 5_000_000), required=True, help="Applications to simulate.")
@click.option("--seed", type=int, required=True, help="Same seed, same stream.")
@click.option("--start", "start", metavar="DATE", help=f"First day (default {DEMO_START}).")
@click.option(
    "--days", type=click.IntRange(1, 3650), default=90, show_default=True, help="Days over which applications arrive."
)
@click.option("--banks", type=click.IntRange(2, 4), default=3, show_default=True)
@click.option("--bad-lines", is_flag=True, help="Plant a few invalid commands (keys bad-...) that must be rejected.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the JSON Lines stream here instead "
    "of appending (the end-of-day job is not run then: its commands come from the ledger).",
)
@store_options
def simulate(
    loans: int,
    seed: int,
    start: str | None,
    days: int,
    banks: int,
    bad_lines: bool,
    out: str | None,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Simulate a micro-loan platform and append its stream day by day, running EOD after each day."""
    first = parse_day(start, "--start") or DEMO_START
    if out:
        sim = Simulator(seed, loans, first, days=days, banks=banks, bad_lines=bad_lines)
        with open(out, "w", encoding="utf-8") as f:
            n = sum(f.write(line + "\n") > 0 for line in sim.lines())
        echo_json({"out": out, "commands": n}) if as_json else click.echo(f"wrote {n} commands to {out}")
        return
    app = _with_agreements(open_ledger(db_url, create=True))
    sim = Simulator(
        seed, loans, first, days=days, banks=banks, bad_lines=bad_lines, cost_cap=app.settings.cost_caps.lowest()
    )
    report = _run(app, sim, None, show_progress=not as_json)
    _summary(report, as_json)
    if report.unplanned_rejections:
        sys.exit(EXIT_PROBLEM)


@click.command()
@click.option("--loans", type=click.IntRange(100, 100_000), default=3000, show_default=True)
@click.option("--seed", type=int, default=2026, show_default=True)
@store_options
def demo(loans: int, seed: int, db_url: str | None, as_json: bool) -> None:
    """A fresh embedded ledger, three months of simulated lending, and the lender's report."""
    if db_url is None:
        path = Path("ledger-demo.db")
        for leftover in (path, Path("ledger-demo.db-wal"), Path("ledger-demo.db-shm")):
            leftover.unlink(missing_ok=True)
        db_url = f"sqlite:///{path}"
    app = _with_agreements(open_ledger(db_url, create=True))
    sim = Simulator(seed, loans, DEMO_START, days=90, cost_cap=app.settings.cost_caps.lowest())
    foreign = _other_loan(app, {p.loan_id for p in sim.plan()})
    if foreign is not None:  # synthetic loans must never mix into a real book
        raise click.UsageError(
            f"the store already holds loans that are not this demo's (e.g. {foreign}); "
            "run the demo without --db (a fresh ledger-demo.db) or on an empty store"
        )
    as_of = DEMO_START + timedelta(days=149)  # five months: the first vintages have run to write-off
    report = _run(app, sim, as_of, show_progress=not as_json)
    loans_now: list[Loan] = [app.repository.get(i) for i in funded_loan_ids(app)]
    runner.catch_up(app)  # the book is the balances' own computation, from the journal
    db = runner.views(app)
    # the loans on the book: owing something (repaid and written-off loans are off it)
    books = {by: [g for g in portfolio(db, as_of, by) if g.loans] for by in DEMO_BOOKS}
    vintage = vintages(loans_now, as_of)
    monitoring = _models(app, as_of)
    banks = bank_payables(db, as_of)
    if as_json:
        echo_json(
            {
                "store": redact(db_url),
                "as_of": as_of,
                "commands": {f"{t}:{s}": n for (t, s), n in sorted(report.commands.items())},
                **{f"book_by_{by}": [_book_row(g) for g in groups] for by, groups in books.items()},
                "vintages": [vars(v) | {"net_loss_rate": v.net_loss_rate} for v in vintage],
                "models": monitoring,
                "banks": [{k: str(v) for k, v in vars(b).items()} for b in banks],
            }
        )
        return
    _summary(report, False)
    click.echo(f"\nThe book as of {as_of} (store {redact(db_url)})")
    for title, lines in books.items():
        click.echo(f"\n  by {title:<10}{'loans':>7}" + "".join(f"{p:>14}" for p in (*PARTS, "total")))
        for line in lines:
            click.echo(
                f"  {line.key:<13}{line.loans:>7}" + "".join(f"{line.amounts[p]:>14,}" for p in (*PARTS, "total"))
            )
    names = ("funded", "remitted", "compensated", "interest", "owed")
    click.echo("\n  the banks: principal advanced, remitted, compensated (guarantee), their interest, still owed")
    click.echo(f"  {'bank':<13}" + "".join(f"{n:>14}" for n in names))
    for b in banks:
        click.echo(f"  {b.bank:<13}" + "".join(f"{getattr(b, n):>14,}" for n in names))
    click.echo(
        f"\n  vintage  {'loans':>6} {'funded':>14} {'repaid':>7} {'ever 30+':>9} {'written off':>13} "
        f"{'recovered':>11} {'net loss':>9}"
    )
    for v in vintage:
        click.echo(
            f"  {v.month}  {v.loans:>6} {v.funded:>14,} {v.repaid / v.loans:>7.1%} {v.ever_30 / v.loans:>9.1%} "
            f"{v.written_off:>13,} {v.recovered:>11,} {v.net_loss_rate:>9.2%}"
        )
    click.echo("\n  Recent vintages have not matured yet: their loss is what is known so far.")
    click.echo(f"\n  {'model':<13} {'apps':>6} {'approved':>9} {'30+':>7} {'auc':>7} {'ks':>7}  psi of each month")
    for m in monitoring:
        click.echo(
            f"  {m['model_version']:<13} {m['applications']:>6} {m['approval_rate']:>9.1%} "
            + (f"{m['ever30_rate']:>7.1%} {m['auc']:>7.3f} {m['ks']:>7.3f}" if m["auc"] is not None else f"{'-':>23}")
            + "  "
            + " ".join(f"{p:.3f} ({b})" for p, b in m["psi_by_period"])
        )
    # the book ends on as_of: hints at today's date would show every open loan months overdue
    click.echo(f"  Explore: ledger loan show {next(iter(sim.loans))} --as-of {as_of} --db {redact(db_url)}")
    click.echo(f"           ledger balances --as-of {as_of} --by bucket --db {redact(db_url)}")
    click.echo(f"           ledger report partners --as-of {as_of} --by agency --db {redact(db_url)}")
    click.echo(f"           ledger report models --as-of {as_of} --out models.png --db {redact(db_url)}")


def _with_agreements(app: Ledger) -> Ledger:
    """The simulated banks' agreements (two banks with a yield, one with a guarantee) unless the
    deployment configured its own in LEDGER_BANK_TERMS: the daily settlement then has something to do."""
    if not app.settings.bank_terms:
        app.settings = replace(app.settings, bank_terms=parse_bank_terms(AGREEMENTS))
    return app


def _models(app: Ledger, as_of: date) -> list[dict[str, Any]]:
    """Each model version overall, with the PSI of each month: the champion, the challenger, the drift."""
    from datetime import UTC, datetime

    from projections.dataset import rows
    from projections.model_report import model_report

    now = datetime.now(UTC)
    lines = model_report(rows(app, as_of, now), as_of, now)["models"]
    return [
        {
            **{k: m[k] for k in ("model_version", "applications", "approval_rate", "ever30_rate", "auc", "ks")},
            "psi_by_period": [
                (p["psi"], p["psi_band"])
                for p in lines
                if p["model_version"] == m["model_version"] and p["period"] != "all"
            ],  # fmt: skip
        }
        for m in lines
        if m["period"] == "all"
    ]


def _other_loan(app: Ledger, demo_loans: set[str]) -> str | None:
    """A loan id in the store that the demo would not have written, if any."""
    for n in app.notifications(Loan.Applied):
        e = app.mapper.to_domain_event(n)
        if not isinstance(e, Loan.Applied):  # the only topic selected
            raise BrokenInvariant(f"notification {n.id}: {type(e).__name__} where an application was selected")
        if e.loan_id not in demo_loans:
            return e.loan_id
    return None


def _run(app: Ledger, sim: Simulator, until: date | None, show_progress: bool) -> SimulationReport:
    days = list(sim.days())
    last = days[-1][0] if until is None else min(until, days[-1][0])
    length = (last - days[0][0]).days + 1
    with click.progressbar(length=length, label="simulating", file=sys.stderr, hidden=not show_progress) as bar:
        return run_simulation(app, sim, progress=lambda _day: bar.update(1), until=until)


def _summary(report: SimulationReport, as_json: bool) -> None:
    counts = {f"{t}:{s}": n for (t, s), n in sorted(report.commands.items())}
    eod = {f"{t}:{s}": n for (t, s), n in sorted(report.eod.items())}
    if as_json:
        echo_json(
            {
                "first_day": report.first_day,
                "last_day": report.last_day,
                "commands": counts,
                "eod": eod,
                "rejected": [
                    {"idempotency_key": k, "loan_id": loan_id, "error": e} for k, loan_id, e in report.rejected
                ],
            }
        )
        return
    click.echo(f"simulated {report.first_day} to {report.last_day}")
    click.echo("  commands: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    click.echo("  end of day: " + (", ".join(f"{k} {v}" for k, v in eod.items()) or "nothing"))
    planted = len(report.rejected) - len(report.unplanned_rejections)
    click.echo(f"  rejected: {planted} planted bad lines, {len(report.unplanned_rejections)} others")
    for key, loan_id, error in report.unplanned_rejections[:20]:
        click.echo(f"    {loan_id} {key}: {error}")


def _book_row(group: Group) -> dict[str, Any]:
    return {"key": group.key, "loans": group.loans, **group.amounts}
