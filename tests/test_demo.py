"""`ledger demo` and `ledger simulate` end to end: exit codes, and a book that agrees with `ledger balances`."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli.main import cli
from ledger.config import redact

AMOUNTS = ("principal", "interest", "fee", "penalty", "total")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_the_demo_book_is_the_book_ledger_balances_shows(store_url):
    shown = run("demo", "--loans", 120, "--seed", 11, "--db", store_url, "--json")
    assert shown.exit_code == 0, shown.output
    demo = json.loads(shown.output.splitlines()[-1])
    as_of = demo["as_of"]
    assert demo["book_by_bank"] and sum(line["loans"] for line in demo["book_by_bank"]) > 0
    assert {line["key"] for line in demo["book_by_agency"]} > {"inhouse"}  # agencies hold part of the book
    assert [m["model_version"] for m in demo["models"]] == ["risk-2026.1", "risk-2026.2"]  # champion, challenger
    assert all(m["psi_by_period"][0] == [0.0, "stable"] for m in demo["models"])  # each against its first month
    for by in ("bank", "bucket", "channel", "agency", "model"):
        printed = demo[f"book_by_{by}"]
        balances = run("balances", "--as-of", as_of, "--by", by, "--db", store_url, "--json")
        assert balances.exit_code == 0, balances.output  # and so the trial balance is zero
        book = {g["key"]: g for g in json.loads(balances.output)["groups"] if g["loans"]}
        assert {line["key"] for line in printed} == set(book), by
        for line in printed:
            assert line["loans"] == book[line["key"]]["loans"], (by, line["key"])
            for amount in AMOUNTS:
                assert f"{float(line[amount]):.2f}" == book[line["key"]][amount], (by, line["key"], amount)


def test_simulate_appends_a_portfolio_whose_book_balances(store_url, tmp_path):
    shown = run("simulate", "--loans", 80, "--seed", 5, "--days", 20, "--bad-lines", "--db", store_url, "--json")
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.output.splitlines()[-1])
    assert report["commands"]["applied:appended"] == 80
    planted = [r for r in report["rejected"] if r["idempotency_key"].startswith("bad-")]
    assert planted and len(planted) == len(report["rejected"])  # only the planted lines are refused
    balances = run("balances", "--as-of", "2026-03-31", "--db", store_url, "--json")
    assert balances.exit_code == 0 and json.loads(balances.output)["trial_balance"] == "0.00"
    again = run("simulate", "--loans", 80, "--seed", 5, "--days", 20, "--bad-lines", "--db", store_url)
    assert again.exit_code == 0, again.output  # the same stream again: all duplicates, the planted lines refused
    assert "applied:duplicate 80" in again.output and "end of day: nothing" in again.output
    assert f"rejected: {len(planted)} planted bad lines, 0 others" in again.output
    out = tmp_path / "stream.jsonl"
    written = run("simulate", "--loans", 30, "--seed", 5, "--days", 10, "--out", out)
    assert written.exit_code == 0 and f"wrote {len(out.read_text().splitlines())} commands" in written.output


def test_the_demo_refuses_a_store_holding_other_loans_and_hints_at_its_own_dates(store_url):
    from support.commands import domain_example

    from ledger.app import Ledger
    from ledger.commands import command_from_dict
    from ledger.config import Settings

    shown = run("demo", "--loans", 100, "--seed", 3, "--db", store_url)
    assert shown.exit_code == 0, shown.output
    assert f"ledger loan show LN0000000 --as-of 2026-05-30 --db {redact(store_url)}" in shown.output
    assert run("demo", "--loans", 100, "--seed", 3, "--db", store_url).exit_code == 0  # its own loans: a re-run
    app = Ledger(Settings(db_url=store_url))
    app.append([command_from_dict(c) for c in domain_example("REAL-1")])
    head = app.recorder.max_notification_id()
    refused = CliRunner().invoke(cli, ["demo", "--loans", "100", "--seed", "3", "--db", store_url])
    assert refused.exit_code == 2 and "not this demo's (e.g. REAL-1)" in refused.output, refused.output
    assert app.recorder.max_notification_id() == head
    app.close()
