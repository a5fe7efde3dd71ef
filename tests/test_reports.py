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
from projections.reports import cohort_table, vintages

LATER = datetime(2100, 1, 1, tzinfo=UTC)


def test_vintage_report_draws_weekly_cohort_curves_and_roll_rates(tmp_path):
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
    assert report["cohort"] == "week" and report["curve_days"] == [1, 4, 7, 10, 15, 20, 30, 45, 60]
    cohorts = {c["cohort"]: c for c in report["cohorts"]}
    assert {"2026-W01", "2026-W05", "2026-W09"} <= set(cohorts)
    for c in cohorts.values():
        for curve in (c["curve"], c["curve_amount"]):
            points = [p for p in curve if p is not None]
            assert points == sorted(points, reverse=True) and all(
                0 <= p <= 1 for p in points
            )  # loans cure, never un-cure
            assert curve == points + [None] * (len(curve) - len(points))  # a cohort's points stop where its data does
        assert (c["fpd_rate"], c["ever30_rate"]) == (c["curve"][2], c["curve"][6])  # FPD is +7, ever 30+ is +30
        assert c["small"] == (c["loans"] < report["small_cohort"])
    assert (
        cohorts["2026-W02"]["ever30_rate"] > 0 and cohorts["2026-W02"]["fpd_rate"] >= cohorts["2026-W02"]["ever30_rate"]
    )
    rolls = report["roll_rates"]
    assert rolls["M3"].keys() <= {"M3+", "written_off", "repaid"}  # from M3 a loan is written off, cured or worse
    assert rolls["current"].get("M1", 0) > 0
    # by month and by channel: the same loans, split
    by_args = ["--cohort", "month", "--by", "channel", "--db", url, "--json"]
    by = json.loads(
        CliRunner().invoke(cli, ["report", "vintage", "--out", str(out), "--as-of", "2026-06-30", *by_args]).output
    )
    assert {c["group"] for c in by["cohorts"]} == {"app", "partner"}
    assert sum(c["loans"] for c in by["cohorts"]) == sum(c["loans"] for c in report["cohorts"])
    assert {c["cohort"] for c in by["cohorts"]} == {"2026-01", "2026-02", "2026-03"}
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
        "agency": "inhouse",
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
    [cohort] = cohort_table(loans, as_of, "month")
    assert cohort.as_dict(as_of)["ever30_rate"] == 0.5
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


def test_the_vintage_png_and_text_show_the_figures_of_the_json(ledger, store_url, tmp_path):
    from collections import Counter

    from PIL import Image

    from ledger.eod import funded_loan_ids

    simulated_ledger(ledger, seed=9, loans=150, days=45)
    out = tmp_path / "vintage.png"
    args = ["report", "vintage", "--out", str(out), "--as-of", "2026-12-31", "--db", store_url]
    shown = CliRunner().invoke(cli, [*args, "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output)
    drawn = json.loads(Image.open(out).text["Description"])  # what the PNG was drawn from
    assert drawn == {k: report[k] for k in ("until", "cohort", "by", "cohorts")} | {
        "roll_rates": report["roll_rate_percent"]
    }
    # the data ends well before the as-of date: no day after it is counted
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
    weeks = Counter("{}-W{:02d}".format(*loan.funded_on.isocalendar()[:2]) for loan in loans)
    assert {c["cohort"]: c["loans"] for c in report["cohorts"]} == dict(sorted(weeks.items()))
    assert any(c["small"] for c in report["cohorts"])  # 150 loans over 45 days: every week is under 100
    # one definition of ever 30+ and FPD: the cohorts count what the dataset's labels say
    labels = {r["loan_id"]: r for r in rows(ledger, until, LATER) if r["label_matured"]}
    week_of = {loan.loan_id: "{}-W{:02d}".format(*loan.funded_on.isocalendar()[:2]) for loan in loans}
    complete = [c for c in report["cohorts"] if c["curve"][-1] is not None]  # every loan has reached due + 60
    assert complete
    for c in complete:
        mine = [labels[loan_id] for loan_id, week in week_of.items() if week == c["cohort"]]
        assert c["ever30_rate"] == round(sum(r["ever_30dpd_60d"] for r in mine) / len(mine), 4)
        assert c["fpd_rate"] == round(sum(r["first_payment_default"] for r in mine) / len(mine), 4)
    # the text has headed columns, marks small cohorts, and prints the roll rates the chart shows
    human = CliRunner().invoke(cli, args).output.splitlines()
    header = human[3].split()
    assert header[:3] == ["cohort", "loans", "funded"] and header[-9:] == [f"+{k}" for k in report["curve_days"]]
    first = next(line for line in human if line.startswith(report["cohorts"][0]["cohort"]))
    assert first.split()[1] == f"{report['cohorts'][0]['loans']}*"
    for row, cells in report["roll_rate_percent"].items():
        [printed] = [line.split() for line in human if line.split()[:1] == [row]]
        assert [float(p.rstrip("%")) for p in printed[1:]] == list(cells.values())
