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
from support.commands import domain_example, repaid
from support.simulation import simulated_ledger

from cli.main import cli
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from projections.reconciliation import COLUMNS, ledger_movements

BANK = "CMB-X"


def _build_portfolio(url: str) -> None:
    app = Ledger(Settings(db_url=url))
    try:
        simulated_ledger(app, seed=30, loans=200, days=30)
    finally:
        app.close()


@pytest.fixture
def portfolio(store_url, books):
    """The same simulated book for every test of the file (built once per store kind, each test gets a copy:
    a test records runs on it, and what one test writes must not be seen by the next)."""
    books.copy("reconcile-portfolio", store_url, _build_portfolio)
    app = Ledger(Settings(db_url=store_url))
    rows = sorted(ledger_movements(app, BANK).all(), key=lambda m: (m.value_date, m.bank_ref))
    if "reversal" not in {m.type for m in rows}:  # the simulated stream may not bounce a CMB-X payment: bounce one
        for m in (m for m in rows if m.type == "repayment"):
            bounce = {"type": "reversed", "loan_id": m.loan_id, "idempotency_key": f"rev-{m.bank_ref}",
                      "occurred_at": "2026-02-15T10:00:00+08:00", "reverses": m.bank_ref,
                      "reason": "returned"}  # fmt: skip
            if app.append([command_from_dict(bounce)])[0].status == "appended":
                break
        rows = sorted(ledger_movements(app, BANK).all(), key=lambda m: (m.value_date, m.bank_ref))
    assert {m.type for m in rows} == {"disbursement", "repayment", "reversal"}  # the cases below need all three
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


# ---- files built per case, on hand-built ledgers: each movement type present or absent ---------------
REVERSAL = {
    "type": "reversed",
    "loan_id": "L1",
    "idempotency_key": "X1",
    "occurred_at": "2026-03-09T10:00:00+08:00",
    "reverses": "R1",
    "reason": "bounced",
}
DISBURSEMENT_ROW = ["BANKA-D-L1", "L1", "disbursement", "1000.00", "2026-03-01"]
REPAYMENT_ROW = ["R1", "L1", "repayment", "500.00", "2026-03-08"]
REVERSAL_ROW = ["X1", "L1", "reversal", "500.00", "2026-03-09"]
LEDGERS = {
    "disbursement": domain_example(),
    "disbursement+repayment": [*domain_example(), repaid()],
    "all three": [*domain_example(), repaid(), REVERSAL],
}


def hand_built(url: str, commands: list[dict]) -> None:
    app = Ledger(Settings(db_url=url))
    assert {o.status for o in app.append([command_from_dict(c) for c in commands])} == {"appended"}
    app.close()


def runs_on_record(url: str) -> int:
    return len(json.loads(run("reconcile", "--history", "--bank", "BANKA", "--json", "--db", url).output))


@pytest.mark.parametrize(
    "ledger_holds,rows,extra",
    [
        pytest.param("disbursement", [DISBURSEMENT_ROW], [], id="one type only"),
        pytest.param(
            "all three", [REPAYMENT_ROW], ["--from", "2026-03-08", "--to", "2026-03-08"], id="a day of one type"
        ),
        pytest.param("disbursement+repayment", [DISBURSEMENT_ROW, REPAYMENT_ROW], [], id="two types"),
        pytest.param("all three", [DISBURSEMENT_ROW, REPAYMENT_ROW, REVERSAL_ROW], [], id="all three"),
        pytest.param("all three", [], [], id="empty"),
    ],
)
def test_a_file_with_any_subset_of_movement_types_reconciles_clean(store_url, tmp_path, ledger_holds, rows, extra):
    hand_built(store_url, LEDGERS[ledger_holds])
    path = write(tmp_path / "bank.csv", rows)
    result = run("reconcile", path, "--bank", "BANKA", "--json", "--db", store_url, *extra)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    present = {r[2] for r in rows}
    assert report["matched"] == len(rows) and report["breaks"] == [] and report["net_difference"] == "0.00"
    for t in ("disbursement", "repayment", "reversal"):
        expected = next((r[3] for r in rows if r[2] == t), "0.00")
        assert report["totals"][t] == {"bank": expected, "ledger": expected}, (t, present)
    human = run("reconcile", path, "--bank", "BANKA", "--db", store_url, *extra)
    assert human.exit_code == 0 and "reversal" in human.output and "Decimal(" not in human.output
    if not rows:
        assert "no dated rows" in human.output and "None" not in human.output
    assert runs_on_record(store_url) == 2


def test_a_bank_ref_booked_on_two_loans_is_a_break(store_url, tmp_path):
    hand_built(
        store_url,
        [*domain_example("L1"), *domain_example("L2"), repaid("L1"), repaid("L2", ref="R1-again", bank_ref="R1")],
    )
    bank_file = [
        ["BANKA-D-L1", "L1", "disbursement", "1000.00", "2026-03-01"],
        ["BANKA-D-L2", "L2", "disbursement", "1000.00", "2026-03-01"],
        REPAYMENT_ROW,  # the bank moved R1 once, for L1
    ]
    result = run("reconcile", write(tmp_path / "bank.csv", bank_file), "--bank", "BANKA", "--json", "--db", store_url)
    report = json.loads(result.output)
    assert result.exit_code == 1
    assert [(b["kind"], b["bank_ref"], b["loan_id"]) for b in report["breaks"]] == [("duplicate_in_ledger", "R1", "L2")]
    assert report["matched"] == 3 and report["net_difference"] == "-500.00"  # the ledger booked 500.00 twice
    # and without R1 in the file, both ledger movements holding it are reported
    result = run(
        "reconcile", write(tmp_path / "bank2.csv", bank_file[:2]), "--bank", "BANKA", "--json", "--db", store_url,
        "--to", "2026-03-31",
    )  # fmt: skip
    found = sorted((b["kind"], b["loan_id"]) for b in json.loads(result.output)["breaks"])
    assert found == [("duplicate_in_ledger", "L2"), ("missing_in_bank", "L1")]


def test_malformed_rows_are_in_the_out_file_and_the_human_output_has_no_reprs(store_url, tmp_path):
    hand_built(store_url, LEDGERS["all three"])
    rows = [DISBURSEMENT_ROW, ["R1", "L1", "repayment", "500.01", "2026-03-08"], ["Z", "L1", "refund", "1", "x"]]
    out = tmp_path / "breaks.csv"
    path = write(tmp_path / "bank.csv", rows)
    result = run("reconcile", path, "--bank", "BANKA", "--db", store_url, "--out", out, "--to", "2026-03-31")
    assert result.exit_code == 1
    with open(out) as f:
        written = list(csv.DictReader(f))
    assert [(r["kind"], r["line"]) for r in written] == [
        ("amount_mismatch", "3"),
        ("missing_in_bank", ""),
        ("malformed", "4"),
    ]
    assert "'refund' is not one of" in written[2]["error"]
    assert "amount_mismatch     R1 loan L1  ledger repayment 500.00 2026-03-08  bank repayment 500.01 2026-03-08" in (
        result.output
    )
    assert "missing_in_bank     X1 loan L1  ledger reversal 500.00 2026-03-09  bank -" in result.output
    for repr_text in ("Decimal(", "None", "{'", "datetime."):
        assert repr_text not in result.output
    history = run("reconcile", "--history", "--bank", "BANKA", "--db", store_url).output
    assert "breaks amount_mismatch 1, missing_in_bank 1 malformed 1" in history and "{" not in history


def test_a_run_that_fails_is_not_recorded(store_url, tmp_path):
    hand_built(store_url, LEDGERS["disbursement"])
    path = write(tmp_path / "bank.csv", [DISBURSEMENT_ROW])
    result = CliRunner().invoke(
        cli, ["reconcile", str(path), "--bank", "BANKA", "--db", store_url, "--out", str(tmp_path / "no" / "x.csv")]
    )
    assert result.exit_code == 2 and "cannot write --out" in result.output, result.output
    assert runs_on_record(store_url) == 0


def test_a_fault_reading_the_run_stream_is_not_taken_for_a_first_run(store_url, tmp_path, monkeypatch):
    from ledger.reconciliation_runs import record_run
    from projections.reconciliation import reconcile

    hand_built(store_url, LEDGERS["disbursement"])
    app = Ledger(Settings(db_url=store_url))
    report = reconcile(app, write(tmp_path / "bank.csv", [DISBURSEMENT_ROW]), "BANKA")
    record_run(app, "BANKA", report.run_record())

    def unreadable(*_, **__):
        raise OSError("the store went away")

    monkeypatch.setattr(app.repository, "get", unreadable)
    with pytest.raises(OSError, match="the store went away"):
        record_run(app, "BANKA", report.run_record())
    app.close()


def test_a_reference_from_the_file_cannot_forge_a_line_of_output(store_url, tmp_path):
    hand_built(store_url, LEDGERS["disbursement"])
    forged = ["X\nBANKA all clear: 0 breaks", "L9", "repayment", "1.00", "2026-03-01"]
    result = run(
        "reconcile", write(tmp_path / "bank.csv", [DISBURSEMENT_ROW, forged]), "--bank", "BANKA", "--db", store_url
    )
    assert result.exit_code == 1
    assert not any(line.startswith("BANKA all clear") for line in result.output.splitlines())
    assert '"X\\nBANKA all clear: 0 breaks"' in result.output
