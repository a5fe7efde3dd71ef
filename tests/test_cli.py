"""The `ledger` command as an operator uses it: exit codes, JSON shapes, files."""

from __future__ import annotations

import importlib.metadata
import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.commands import applied, approved, domain_example, funded, repaid

from cli.main import cli

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "domain_example.jsonl"


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture
def db(store_url):
    """A store made the way a user makes one: `ledger init`."""
    assert run("init", "--db", store_url).exit_code == 0
    return store_url


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


def test_append_reports_every_line_and_exits_1_when_any_is_rejected(db, tmp_path):
    lines = [json.dumps(c) for c in domain_example()]
    lines += ["not json", json.dumps(funded(idempotency_key="F2", bank_ref="F2")), json.dumps(repaid())]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run("append", path, "--json", "--db", db)
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
    again = run("append", path, "--json", "--db", db)
    assert [json.loads(line)["status"] for line in again.output.splitlines()] == [
        "duplicate",
        "duplicate",
        "duplicate",
        "rejected",
        "rejected",
        "duplicate",
    ]


def test_append_reads_stdin(db):
    result = run("append", "-", "--db", db, input="\n".join(json.dumps(c) for c in domain_example()))
    assert result.exit_code == 0 and "appended 3" in result.output


def test_known_at_shows_what_the_ledger_knew_before_a_late_callback(db):
    run("append", EXAMPLE, "--db", db)
    view = json.loads(run("loan", "show", "L1", "--json", "--db", db).output)
    known_at = view["events"][-1]["recorded_at"]
    run("append", "-", "--db", db, input=json.dumps(repaid()))
    now = json.loads(run("loan", "show", "L1", "--as-of", "2026-03-20", "--json", "--db", db).output)
    then = json.loads(
        run("loan", "show", "L1", "--as-of", "2026-03-20", "--known-at", known_at, "--json", "--db", db).output
    )
    assert now["balances"]["principal"] == "506.90" and len(now["events"]) == 4
    assert then["balances"]["total"] == "1017.00" and len(then["events"]) == 3


def test_eod_marks_overdue_once_and_a_second_run_adds_nothing(db):
    run("append", EXAMPLE, "--db", db)
    first = json.loads(run("eod", "--date", "2026-03-20", "--json", "--db", db).output)
    second = json.loads(run("eod", "--date", "2026-03-20", "--json", "--db", db).output)
    assert first["outcomes"] == {"overdue:appended": 1}
    assert second["outcomes"] == {}
    view = json.loads(run("loan", "show", "L1", "--as-of", "2026-03-20", "--json", "--db", db).output)
    assert [e["type"] for e in view["events"]][-1] == "overdue"
    assert view["events"][-1]["bucket"] == "M1"


def test_eod_writes_off_past_the_write_off_point(db):
    run("append", EXAMPLE, "--db", db)
    run("eod", "--date", "2026-04-01", "--db", db)
    result = json.loads(run("eod", "--date", "2026-06-14", "--json", "--db", db).output)  # DPD 91
    assert result["outcomes"] == {"overdue:appended": 1, "written_off:appended": 1}
    view = json.loads(run("loan", "show", "L1", "--as-of", "2026-06-20", "--json", "--db", db).output)
    assert view["state"] == "written_off"


@pytest.mark.parametrize(
    "args,message",
    [
        (["loan", "show", "L1", "--db", "mysql://x"], "unsupported store URL"),
        (["loan", "show", "L1", "--as-of", "2026-13-01"], "is not a real date"),
        (["loan", "show", "L1", "--as-of", "20260301"], "is not a date in YYYY-MM-DD form"),
        (["loan", "show", "L1", "--known-at", "2026-03-01T10:00:00"], "has no UTC offset"),
    ],
)
def test_bad_usage_exits_2_with_the_reason(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and message in result.output


def test_an_unknown_loan_exits_1(db):
    result = CliRunner().invoke(cli, ["loan", "show", "NOPE", "--db", db])
    assert result.exit_code == 1 and "no loan NOPE" in result.output


def test_the_default_store_is_ledger_db_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEDGER_DB", raising=False)
    assert run("init").exit_code == 0
    assert run("append", EXAMPLE).exit_code == 0
    assert (tmp_path / "ledger.db").exists()
    monkeypatch.setenv("LEDGER_DB", f"sqlite:///{tmp_path}/other.db")
    run("init")
    assert run("loan", "show", "L1").exit_code == 1  # LEDGER_DB points elsewhere


# ---- issue 12: a CLI that is safe and clear for a newcomer ----------------------------------


def test_db_is_accepted_before_or_after_the_subcommand_and_the_subcommand_wins(store_url, tmp_path, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # so the default ./ledger.db cannot stand in for the store asked for
    monkeypatch.delenv("LEDGER_DB", raising=False)
    assert run("--db", store_url, "init").exit_code == 0
    assert run("--db", store_url, "append", EXAMPLE).exit_code == 0
    assert json.loads(run("loan", "show", "L1", "--json", "--db", store_url).output)["loan_id"] == "L1"
    assert not (tmp_path / "cwd" / "ledger.db").exists()
    other = f"sqlite:///{tmp_path}/other.db"
    assert run("init", "--db", other).exit_code == 0
    before = run("--db", store_url, "loan", "show", "L1", "--json")
    assert before.exit_code == 0 and json.loads(before.output)["loan_id"] == "L1"
    after = run("--db", store_url, "loan", "show", "L1", "--db", other, "--json")
    assert after.exit_code == 1 and json.loads(after.output) == {"error": "no loan L1"}


def test_ledger_db_is_used_when_no_db_option_is_given(store_url, monkeypatch, tmp_path):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("LEDGER_DB", store_url)
    assert run("init").exit_code == 0 and run("append", EXAMPLE).exit_code == 0
    assert run("loan", "show", "L1").exit_code == 0
    assert not (tmp_path / "cwd" / "ledger.db").exists()


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and importlib.metadata.version("loan-ledger") in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["append", str(EXAMPLE)],
        ["loan", "show", "L1"],
        ["loan", "list"],
        ["balances"],
        ["eod", "--date", "2026-03-20"],
        ["projections", "status"],
        ["projections", "rebuild"],
        ["borrower", "forget", "B1"],
        ["reconcile", "--history"],
        ["dataset", "export", "--as-of", "2026-03-20", "--out", "x.csv", "--format", "csv"],
        ["report", "vintage", "--out", "x.png"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_mistyped_sqlite_path_is_refused_not_created(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    typo = f"sqlite:///{tmp_path}/ledgr.db"
    result = CliRunner().invoke(cli, [*args, "--db", typo])
    assert result.exit_code == 2, result.output
    assert "ledger init" in result.output and "ledgr.db" in result.output
    assert not (tmp_path / "ledgr.db").exists()
    as_json = CliRunner().invoke(cli, [*args, "--db", typo, "--json"])
    assert as_json.exit_code == 2 and "ledger init" in json.loads(as_json.stdout)["error"]


def test_init_creates_the_sqlite_store_it_is_pointed_at(tmp_path):
    assert run("init", "--db", f"sqlite:///{tmp_path}/new.db").exit_code == 0
    assert (tmp_path / "new.db").exists()
    assert run("loan", "list", "--db", f"sqlite:///{tmp_path}/new.db").exit_code == 0


def test_no_message_shows_the_password(store_url):
    ready = run("init", "--db", store_url)
    shown = run("init", "--db", store_url, "--json")
    assert ready.exit_code == 0 and shown.exit_code == 0
    if store_url.startswith("postgresql://"):  # the test server's URL carries a password
        assert ":postgres@" not in ready.output + shown.output
        assert ":***@" in ready.output and json.loads(shown.output)["store"].count("***") == 1


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_an_unreachable_postgresql_fails_within_seconds_without_its_password(json_flag):
    """Nothing answers on the port: it may be a server restarting, so opening is retried for
    LEDGER_RETRY_SECONDS (here 1 s), then refused with exit 2 and no password in sight."""
    started = time.monotonic()
    runner = CliRunner(env={"LEDGER_RETRY_SECONDS": "1"})
    result = runner.invoke(cli, ["init", "--db", "postgresql://clerk:s3cret-pw@127.0.0.1:1/ledger", *json_flag])
    assert time.monotonic() - started < 15
    assert result.exit_code == 2 and "s3cret" not in result.output
    assert "cannot open the store postgresql://clerk:***@127.0.0.1:1/ledger" in result.output


def test_a_missing_postgresql_database_is_named_in_the_servers_words(pg_server):
    url = pg_server.url("no_such_database")
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["loan", "list", "--db", url, "--json"])
    assert time.monotonic() - started < 15
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert 'database "no_such_database" does not exist' in error and ":postgres@" not in error


def test_with_json_errors_are_json_on_stdout(db, tmp_path):
    unknown = CliRunner().invoke(cli, ["loan", "show", "NOPE", "--json", "--db", db])
    assert unknown.exit_code == 1 and json.loads(unknown.stdout) == {"error": "no loan NOPE"}
    bad_date = CliRunner().invoke(cli, ["loan", "show", "L1", "--as-of", "2026-13-01", "--json", "--db", db])
    assert bad_date.exit_code == 2 and "is not a real date" in json.loads(bad_date.stdout)["error"]
    bad_option = CliRunner().invoke(cli, ["loan", "list", "--bucket", "M9", "--json", "--db", db])
    assert bad_option.exit_code == 2 and "M9" in json.loads(bad_option.stdout)["error"]
    bad_url = CliRunner().invoke(cli, ["balances", "--json", "--db", "mysql://x"])
    assert bad_url.exit_code == 2 and "unsupported store URL" in json.loads(bad_url.stdout)["error"]


def test_loan_show_reads_as_plain_figures_with_zoned_occurred_and_recorded_times(db):
    run("append", EXAMPLE, "--db", db)
    shown = run("loan", "show", "L1", "--as-of", "2026-03-20", "--db", db)
    assert shown.exit_code == 0
    text = shown.output
    assert "Decimal(" not in text and "None" not in text and "{" not in text
    assert "total 1017.00" in text and "DPD 5" in text and "bucket M1" in text
    funded_line = next(line for line in text.splitlines() if " funded " in line)
    assert "occurred 2026-03-01 09:00:00 +08:00" in funded_line
    assert re.search(r"recorded \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", funded_line)
    assert "daily rate 0.0005" in text


def _example_book(db):
    """L1 of the worked example (BANKA, unpaid) and L2 (BANKB, paid off on its due date)."""
    assert run("append", EXAMPLE, "--db", db).exit_code == 0
    l2 = [
        applied("L2", borrower_id="B2"),
        approved("L2"),
        funded("L2", bank="BANKB"),
        repaid("L2", ref="R2", amount="1012.00", value_date="2026-03-15"),
    ]
    assert run("append", "-", "--db", db, input="\n".join(json.dumps(c) for c in l2)).exit_code == 0


def test_loan_list_filters_by_state_bucket_and_bank_as_of_a_date(db):
    _example_book(db)

    def listed(*args):
        result = run("loan", "list", "--as-of", "2026-03-20", "--json", "--db", db, *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["loans"]

    everything = listed()
    assert [(x["loan_id"], x["state"], x["bucket"], x["dpd"], x["bank"], x["total"]) for x in everything] == [
        ("L1", "overdue", "M1", 5, "BANKA", "1017.00"),
        ("L2", "repaid", "current", 0, "BANKB", "0.00"),
    ]
    assert [x["loan_id"] for x in listed("--state", "overdue")] == ["L1"]
    assert [x["loan_id"] for x in listed("--bucket", "current")] == ["L2"]
    assert [x["loan_id"] for x in listed("--bank", "BANKB")] == ["L2"]
    assert listed("--bank", "BANKB", "--state", "overdue") == []
    early = json.loads(run("loan", "list", "--as-of", "2026-03-10", "--json", "--db", db).output)["loans"]
    # 9 nights: interest 4.50 and fee 5.00 held to the ceiling, round_down(0.36 x 9,000.00 / 365) = 8.87
    assert [(x["state"], x["total"]) for x in early] == [("funded", "1008.87"), ("funded", "1008.87")]
    first = json.loads(run("loan", "list", "--limit", "1", "--as-of", "2026-03-20", "--json", "--db", db).output)
    assert [x["loan_id"] for x in first["loans"]] == ["L1"] and first["more"] is True
    human = run("loan", "list", "--as-of", "2026-03-20", "--db", db).output
    assert "L1" in human and "1017.00" in human and "overdue" in human
