"""The `ledger` command as an operator uses it: exit codes, JSON shapes, files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.commands import domain_example, funded, repaid

from cli.main import cli

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "domain_example.jsonl"


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def test_the_readme_walkthrough_shows_1017_penalty_5_dpd_5_m1(store_url):
    assert run("init", "--db", store_url).exit_code == 0
    appended = run("append", EXAMPLE, "--db", store_url)
    assert appended.exit_code == 0 and "appended 3" in appended.output
    shown = run("loan", "show", "L1", "--as-of", "2026-03-20", "--json", "--db", store_url)
    view = json.loads(shown.output)
    assert view["balances"] == {
        "principal": "1000.00",
        "interest": "7.00",
        "fee": "5.00",
        "penalty": "5.00",
        "overpayment": "0.00",
        "total": "1017.00",
    }
    assert (view["dpd"], view["bucket"], view["state"], view["bank"], view["due_date"]) == (
        5,
        "M1",
        "overdue",
        "BANKA",
        "2026-03-15",
    )
    assert [e["type"] for e in view["events"]] == ["applied", "scored", "funded"]
    assert view["terms"]["daily_rate"] == "0.0005"


def test_append_reports_every_line_and_exits_1_when_any_is_rejected(store_url, tmp_path):
    lines = [json.dumps(c) for c in domain_example()]
    lines += ["not json", json.dumps(funded(idempotency_key="F2", bank_ref="F2")), json.dumps(repaid())]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run("append", path, "--json", "--db", store_url)
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert result.exit_code == 1
    assert [(r["line"], r["status"]) for r in rows] == [
        (1, "appended"),
        (2, "appended"),
        (3, "appended"),
        (4, "rejected"),
        (5, "rejected"),
        (6, "appended"),
    ]
    assert rows[3]["error"].startswith("not valid JSON")
    assert "loan L1 is funded; cannot apply 'funded'" in rows[4]["error"]
    assert "error" not in rows[0]
    again = run("append", path, "--json", "--db", store_url)
    assert [json.loads(line)["status"] for line in again.output.splitlines()] == [
        "duplicate",
        "duplicate",
        "duplicate",
        "rejected",
        "rejected",
        "duplicate",
    ]


def test_append_reads_stdin(store_url):
    result = run("append", "-", "--db", store_url, input="\n".join(json.dumps(c) for c in domain_example()))
    assert result.exit_code == 0 and "appended 3" in result.output


def test_known_at_shows_what_the_ledger_knew_before_a_late_callback(store_url):
    run("append", EXAMPLE, "--db", store_url)
    view = json.loads(run("loan", "show", "L1", "--json", "--db", store_url).output)
    known_at = view["events"][-1]["recorded_at"]
    run("append", "-", "--db", store_url, input=json.dumps(repaid()))
    now = json.loads(run("loan", "show", "L1", "--as-of", "2026-03-20", "--json", "--db", store_url).output)
    then = json.loads(
        run("loan", "show", "L1", "--as-of", "2026-03-20", "--known-at", known_at, "--json", "--db", store_url).output
    )
    assert now["balances"]["principal"] == "508.50" and len(now["events"]) == 4
    assert then["balances"]["total"] == "1017.00" and len(then["events"]) == 3


def test_eod_marks_overdue_once_and_a_second_run_adds_nothing(store_url):
    run("append", EXAMPLE, "--db", store_url)
    first = json.loads(run("eod", "--date", "2026-03-20", "--json", "--db", store_url).output)
    second = json.loads(run("eod", "--date", "2026-03-20", "--json", "--db", store_url).output)
    assert first["outcomes"] == {"overdue:appended": 1}
    assert second["outcomes"] == {}
    view = json.loads(run("loan", "show", "L1", "--as-of", "2026-03-20", "--json", "--db", store_url).output)
    assert [e["type"] for e in view["events"]][-1] == "overdue"
    assert view["events"][-1]["bucket"] == "M1"


def test_eod_writes_off_past_the_write_off_point(store_url):
    run("append", EXAMPLE, "--db", store_url)
    run("eod", "--date", "2026-04-01", "--db", store_url)
    result = json.loads(run("eod", "--date", "2026-06-14", "--json", "--db", store_url).output)  # DPD 91
    assert result["outcomes"] == {"overdue:appended": 1, "written_off:appended": 1}
    view = json.loads(run("loan", "show", "L1", "--as-of", "2026-06-20", "--json", "--db", store_url).output)
    assert view["state"] == "written_off"


@pytest.mark.parametrize(
    "args,message",
    [
        (["loan", "show", "L1", "--db", "mysql://x"], "unsupported store URL"),
        (["loan", "show", "L1", "--as-of", "2026-13-01"], "is not a date"),
        (["loan", "show", "L1", "--known-at", "2026-03-01T10:00:00"], "with offset"),
    ],
)
def test_bad_usage_exits_2_with_the_reason(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and message in result.output


def test_an_unknown_loan_exits_1(store_url):
    result = CliRunner().invoke(cli, ["loan", "show", "NOPE", "--db", store_url])
    assert result.exit_code == 1 and "no loan NOPE" in result.output


def test_the_default_store_is_ledger_db_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEDGER_DB", raising=False)
    assert run("append", EXAMPLE).exit_code == 0
    assert (tmp_path / "ledger.db").exists()
    monkeypatch.setenv("LEDGER_DB", f"sqlite:///{tmp_path}/other.db")
    assert run("loan", "show", "L1").exit_code == 1  # LEDGER_DB points elsewhere
