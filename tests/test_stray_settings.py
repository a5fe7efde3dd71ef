"""Issue 11: only the ledger's own settings choose the store (the library reads the environment)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from support.commands import applied, approved, funded

from cli.main import cli
from ledger.app import Ledger
from ledger.config import Settings


def lines(*commands: dict) -> str:
    return "".join(json.dumps(c) + "\n" for c in commands)


def collected(loan_id="L1"):
    return {
        "type": "collected",
        "loan_id": loan_id,
        "idempotency_key": f"COLL-{loan_id}",
        "occurred_at": "2026-03-20T09:00:00+08:00",
        "amount": "100.00",
        "agency": "inhouse",
        "value_date": "2026-03-20",
    }


BOOK = lines(applied(borrower={"name": "Zhang San"}), approved(), funded(), collected())


@pytest.mark.parametrize(
    "name, value",
    [
        ("LEDGER_SQLITE_DBNAME", ":memory:"),
        ("LEDGER_SQLITE_DBNAME", "/tmp/other-ledger.db"),
        ("LEDGER_POSTGRES_DBNAME", "x"),
        ("LEDGER_PERSISTENCE_MODULE", "eventsourcing.popo"),
        ("LEDGER_POSTGRES_ENABLE_DB_FUNCTIONS", "y"),
    ],
)
def test_a_ledger_prefixed_library_setting_is_refused_with_exit_2_and_nothing_written(store_url, name, value):
    """Reproduction: LEDGER_SQLITE_DBNAME=:memory: printed "appended 4", exit 0, and saved nothing."""
    result = CliRunner().invoke(cli, ["append", "-", "--db", store_url], input=BOOK, env={name: value})
    assert result.exit_code == 2, result.output
    assert name in result.output and "LEDGER_DB" in result.output
    assert "appended" not in result.output
    app = Ledger(Settings(db_url=store_url))
    assert app.get_loan("L1") is None
    app.close()


@pytest.mark.parametrize(
    "name, value",
    [
        ("SQLITE_DBNAME", ":memory:"),
        ("POSTGRES_DBNAME", "x"),
        ("PERSISTENCE_MODULE", "eventsourcing.popo"),
        ("POSTGRES_ENABLE_DB_FUNCTIONS", "y"),
        ("CREATE_TABLE", "n"),
    ],
)
def test_bare_library_settings_in_the_environment_are_ignored(store_url, name, value):
    """Reproduction: POSTGRES_ENABLE_DB_FUNCTIONS=y skipped the idempotency and borrower tables, after
    which a `collected` line was appended again on every run and personal data was dropped."""
    runs = [CliRunner().invoke(cli, ["append", "-", "--db", store_url], input=BOOK, env={name: value}) for _ in "12"]
    assert [r.exit_code for r in runs] == [0, 0], [r.output for r in runs]
    assert runs[0].output.strip() == "appended 4, duplicate 0, rejected 0"
    assert runs[1].output.strip() == "appended 0, duplicate 4, rejected 0"
    app = Ledger(Settings(db_url=store_url))
    assert [type(e).__name__ for e in app.loan_events("L1")][-1] == "Collected"
    assert len(app.loan_events("L1")) == 4
    assert app.recorder.borrower_data("B1") == {"name": "Zhang San"}
    app.close()


def test_the_application_ignores_the_process_environment_whatever_calls_it(store_url, monkeypatch):
    for name, value in [("LEDGER_SQLITE_DBNAME", ":memory:"), ("LEDGER_POSTGRES_DBNAME", "x")]:
        monkeypatch.setenv(name, value)
    app = Ledger(Settings(db_url=store_url))  # the library API, not the CLI: no refusal, no redirection
    app.append([])
    from ledger.commands import command_from_dict

    app.append([command_from_dict(applied())])
    app.close()
    monkeypatch.delenv("LEDGER_SQLITE_DBNAME")
    monkeypatch.delenv("LEDGER_POSTGRES_DBNAME")
    again = Ledger(Settings(db_url=store_url))
    assert again.get_loan("L1") is not None
    again.close()


def test_the_refused_names_cover_every_setting_the_installed_library_defines():
    from eventsourcing.application import Application
    from eventsourcing.persistence import InfrastructureFactory
    from eventsourcing.postgres import PostgresFactory
    from eventsourcing.sqlite import SQLiteFactory

    from ledger.config import LIBRARY_SETTINGS

    defined = {
        value
        for cls in (Application, InfrastructureFactory, PostgresFactory, SQLiteFactory)
        for attr, value in vars(cls).items()
        if attr.isupper() and isinstance(value, str) and value.isupper()
    }
    assert defined - LIBRARY_SETTINGS == set()
