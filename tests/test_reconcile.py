"""Reconciliation against bank files made from a simulated portfolio, with planted breaks."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.simulation import simulated_ledger

from cli.main import cli
from ledger.app import Ledger
from ledger.config import Settings
from ledger.reconcile import COLUMNS, ledger_movements

BANK = "CMB-X"


@pytest.fixture
def portfolio(store_url):
    app = Ledger(Settings(db_url=store_url))
    simulated_ledger(app, seed=17, loans=200, days=30)
    rows = sorted(ledger_movements(app, BANK).values(), key=lambda m: (m.value_date, m.bank_ref))
    assert {m.type for m in rows} == {"disbursement", "repayment", "reversal"} or len(rows) > 50
    app.close()
    return store_url, [[m.bank_ref, m.loan_id, m.type, f"{m.amount:.2f}", m.value_date.isoformat()] for m in rows]


def write(path: Path, rows) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_a_clean_file_matches_everything_and_exits_0(portfolio, tmp_path):
    url, rows = portfolio
    result = run("reconcile", write(tmp_path / "clean.csv", rows), "--bank", BANK, "--json", "--db", url)
    report = json.loads(result.output)
    assert result.exit_code == 0
    assert report["matched"] == len(rows) and report["breaks"] == [] and report["net_difference"] == "0.00"


def test_every_planted_break_is_found_and_nothing_else(portfolio, tmp_path):
    url, rows = portfolio
    rows = [list(r) for r in rows]
    dropped = rows.pop(5)  # the bank never sent it
    rows[10][3] = str(Decimal(rows[10][3]) + Decimal("0.01"))  # a fen off
    rows[20][4] = (date.fromisoformat(rows[20][4]) + timedelta(days=3)).isoformat()
    rows.append(["UNKNOWN-REF-1", "LN9999999", "repayment", "100.00", rows[0][4]])
    rows.append(list(rows[30]))  # sent twice
    result = run(
        "reconcile",
        write(tmp_path / "breaks.csv", rows),
        "--bank",
        BANK,
        "--json",
        "--db",
        url,
        "--out",
        tmp_path / "report.csv",
    )
    report = json.loads(result.output)
    assert result.exit_code == 1
    found = sorted((b["kind"], b["bank_ref"]) for b in report["breaks"])
    assert found == sorted(
        [
            ("missing_in_bank", dropped[0]),
            ("amount_mismatch", rows[10][0]),
            ("date_mismatch", rows[20][0]),
            ("missing_in_ledger", "UNKNOWN-REF-1"),
            ("duplicate", rows[30][0]),
        ]
    )
    assert report["matched"] == len(rows) - 4  # every row in the file but the four that break
    with open(tmp_path / "report.csv") as f:
        assert len(list(csv.DictReader(f))) == 5
    # a three-day tolerance accepts the moved date
    tolerant = json.loads(
        run("reconcile", tmp_path / "breaks.csv", "--bank", BANK, "--json", "--db", url, "--tolerance-days", "3").output
    )
    assert "date_mismatch" not in {b["kind"] for b in tolerant["breaks"]}


def test_malformed_rows_are_reported_by_line_and_the_rest_still_reconciled(portfolio, tmp_path):
    url, rows = portfolio
    path = write(tmp_path / "bad.csv", rows)
    lines = path.read_text().splitlines()
    lines.insert(3, "REF,LN1,repayment,12.345,2026-01-05")
    lines.insert(6, "REF2,LN1,refund,1.00,2026-01-05")
    lines.insert(8, "only,three,cells")
    path.write_text("\n".join(lines) + "\n")
    report = json.loads(run("reconcile", path, "--bank", BANK, "--json", "--db", url).output)
    assert [m["line"] for m in report["malformed"]] == [4, 7, 9]
    assert "at most 2 decimal places" in report["malformed"][0]["error"]
    assert "'refund' is not one of" in report["malformed"][1]["error"]
    assert report["matched"] == len(rows) and report["breaks"] == []


def test_a_file_without_the_header_is_bad_usage(portfolio, tmp_path):
    url, _ = portfolio
    path = tmp_path / "nohead.csv"
    path.write_text("a,b,c\n")
    result = CliRunner().invoke(cli, ["reconcile", str(path), "--bank", BANK, "--db", url])
    assert result.exit_code == 2 and "header must be bank_ref,loan_id,type,amount,value_date" in result.output


def test_each_run_is_recorded_for_auditors(portfolio, tmp_path):
    url, rows = portfolio
    path = write(tmp_path / "clean.csv", rows)
    run("reconcile", path, "--bank", BANK, "--db", url)
    run("reconcile", path, "--bank", BANK, "--db", url, "--from", rows[0][4], "--to", rows[-1][4])
    runs = json.loads(run("reconcile", "--history", "--bank", BANK, "--json", "--db", url).output)
    assert len(runs) == 2
    assert runs[0]["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert runs[0]["rows"] == len(rows) and runs[0]["breaks"] == {} and runs[1]["date_from"] == rows[0][4]
    # the reconciliation stream is in the same log; the book projection ignores it
    assert run("balances", "--db", url, "--json").exit_code == 0
