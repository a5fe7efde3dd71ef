"""The lender's reports: vintage curves and roll rates from a simulated book."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from click.testing import CliRunner
from support.commands import applied, approved, domain_example, repaid
from support.simulation import simulated_ledger

from cli.main import cli
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from projections.dataset import rows
from projections.reports import ever30_curves, vintages

LATER = datetime(2100, 1, 1, tzinfo=UTC)


def test_vintage_report_draws_curves_and_roll_rates(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    app = Ledger(Settings(db_url=url))
    simulated_ledger(app, seed=5, loans=400, days=60)
    out = tmp_path / "vintage.png"
    result = CliRunner().invoke(
        cli, ["report", "vintage", "--out", str(out), "--as-of", "2026-06-30", "--db", url, "--json"]
    )
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(report["ever30"]) >= {"2026-01", "2026-02"}
    for points in report["ever30"].values():
        assert points == sorted(points) and all(0 <= p <= 1 for p in points)  # cumulative: never falls
    assert report["ever30"]["2026-01"][-1] > 0
    rolls = report["roll_rates"]
    assert rolls["M3"].keys() <= {"M3+", "written_off", "repaid"}  # from M3 a loan is written off, cured or worse
    assert rolls["current"].get("M1", 0) > 0
    app.close()


def test_the_data_dictionary_describes_every_column():
    from pathlib import Path

    from projections.dataset import COLUMNS, ROLES

    doc = (Path(__file__).parent.parent / "docs" / "datasets.md").read_text()
    for c in COLUMNS:
        assert c.role in ROLES, c.name
        assert f"| `{c.name}` | {c.kind} | {c.role} | {c.description} |" in doc, c.name
    for role, meaning in ROLES.items():
        assert f"| `{role}` | {meaning} |" in doc, role
    documented = re.findall(r"^\| `([a-z_0-9]+)` \| [a-z]+ \| [a-z]+ \| ", doc, re.MULTILINE)
    assert documented == [c.name for c in COLUMNS]  # nothing documented that the file lacks, in file order


# ---- one definition of each figure, wherever it is shown ----------------------------------------------
def _written_off(loan_id: str, day: str) -> dict:
    return {
        "type": "written_off",
        "loan_id": loan_id,
        "idempotency_key": f"{loan_id}-W",
        "occurred_at": f"{day}T23:59:59+08:00",
        "value_date": day,
    }


def _collected(loan_id: str, amount: str, day: str) -> dict:
    return {
        "type": "collected",
        "loan_id": loan_id,
        "idempotency_key": f"{loan_id}-C",
        "occurred_at": f"{day}T10:00:00+08:00",
        "amount": amount,
        "agency": "AG",
        "value_date": day,
    }


def _book(ledger, *commands) -> None:
    outcomes = ledger.append([command_from_dict(c) for c in commands])
    assert {o.status for o in outcomes} == {"appended"}, outcomes


def test_ever_30_is_dpd_of_30_or_more_in_the_table_the_curve_and_the_dataset(ledger):
    # due 2026-03-15: A is still unpaid at the end of 04-14 (DPD 30), B pays the day before (DPD 29)
    _book(ledger, *domain_example("A"), repaid("A", ref="RA", amount="2000.00", value_date="2026-04-15"))
    _book(ledger, *domain_example("B"), repaid("B", ref="RB", amount="2000.00", value_date="2026-04-13"))
    as_of = date(2026, 6, 30)
    loans = list(ledger.get_loans(["A", "B"]).values())
    [line] = vintages(loans, as_of)
    assert (line.loans, line.ever_30) == (2, 1)
    assert ever30_curves(loans, as_of)["2026-03"][-1] == 0.5
    labels = {r["loan_id"]: r["ever_30dpd_60d"] for r in rows(ledger, as_of, LATER)}
    assert labels == {"A": True, "B": False}


def test_recovered_and_loss_are_the_same_in_the_vintage_table_and_the_dataset(ledger):
    # P recovers 100.00 of its debt; O pays far more than it owed (the rest is owed back, not a recovery)
    for loan_id, amount in (("P", "100.00"), ("O", "5000.00")):
        _book(ledger, *domain_example(loan_id), _written_off(loan_id, "2026-06-14"))
        _book(ledger, _collected(loan_id, amount, "2026-07-01"))
    as_of = date(2026, 8, 1)
    [line] = vintages(list(ledger.get_loans(["P", "O"]).values()), as_of)
    losses = {r["loan_id"]: r["loss_amount"] for r in rows(ledger, as_of, LATER)}
    assert losses == {"P": D("900.00"), "O": D("0.00")}
    assert (line.written_off, line.recovered) == (D("2000.00"), D("1100.00"))
    assert line.written_off - line.recovered == sum(losses.values())
    assert line.net_loss_rate == D("0.45")


def test_balances_count_as_loans_only_those_owing(store_url):
    ledger = Ledger(Settings(db_url=store_url))
    _book(ledger, *domain_example("OPEN"), *domain_example("PAID"))
    _book(ledger, repaid("PAID", ref="RP", amount="1012.00", value_date="2026-03-15"))
    ledger.close()
    run = lambda *a: CliRunner().invoke(cli, ["balances", "--as-of", "2026-03-20", "--db", store_url, *a])  # noqa: E731
    [group] = json.loads(run("--json").output)["groups"]
    assert (group["key"], group["loans"], group["total"]) == ("BANKA", 1, "1017.00")
    human = run().output.splitlines()
    assert human[1].split()[:3] == ["bank", "owing", "funded"] and human[2].split()[:3] == ["BANKA", "1", "2"]
    by_state = {g["key"]: g["loans"] for g in json.loads(run("--json", "--by", "state").output)["groups"]}
    assert by_state == {"overdue": 1, "repaid": 0}


def test_an_error_in_the_cost_cap_check_is_a_bug_not_a_rejection(ledger, monkeypatch):
    import domain.loan

    def broken(*_):
        raise ZeroDivisionError("a bug")

    _book(ledger, applied("CAP"))
    monkeypatch.setattr(domain.loan, "check_cost_cap", broken)
    with pytest.raises(ZeroDivisionError):
        ledger.append([command_from_dict(approved("CAP"))])


def test_the_vintage_png_shows_the_figures_of_the_table(ledger, store_url, tmp_path):
    from collections import Counter
    from datetime import timedelta

    from PIL import Image

    from ledger.eod import funded_loan_ids

    simulated_ledger(ledger, seed=9, loans=150, days=45)
    out = tmp_path / "vintage.png"
    args = ["report", "vintage", "--out", str(out), "--as-of", "2026-12-31", "--db", store_url]
    shown = CliRunner().invoke(cli, [*args, "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    drawn = json.loads(Image.open(out).text["Description"])  # what the PNG was drawn from
    assert drawn == {k: report[k] for k in ("until", "ever30", "cohorts")} | {"roll_rates": report["roll_rate_percent"]}
    # the data ends well before the as-of date: no month-end after it is drawn
    until = date.fromisoformat(report["until"])
    loans = [ledger.repository.get(i) for i in funded_loan_ids(ledger)]
    assert until < date(2026, 12, 31) and until == max(
        max(
            [
                loan.funded_on,
                *filter(None, [loan.written_off_on]),
                *(m.value_date for m in loan.money_in),
                *(d for d, _, _ in loan.overdue_marks),
            ]
        )
        for loan in loans
    )
    assert report["cohorts"] == dict(sorted(Counter(loan.funded_on.strftime("%Y-%m") for loan in loans).items()))
    for month, points in report["ever30"].items():
        last_month_end = date.fromisoformat(f"{month}-01")
        for _ in range(len(points)):
            last_month_end = (last_month_end.replace(day=28) + timedelta(days=4)).replace(day=1)
        last_month_end -= timedelta(days=1)
        assert last_month_end <= until < last_month_end + timedelta(days=32)  # stops at the last month-end with data
        [line] = [v for v in vintages(loans, last_month_end) if v.month == month]
        assert points[-1] == line.ever_30 / line.loans  # the curve ends where the vintage table stands
    # and the text table prints the same roll rates the chart shows
    human = CliRunner().invoke(cli, args).output.splitlines()
    for row, cells in report["roll_rate_percent"].items():
        [printed] = [line.split() for line in human if line.split()[:1] == [row]]
        assert [float(p.rstrip("%")) for p in printed[1:]] == list(cells.values())
