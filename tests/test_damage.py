"""Issue 11: a loan's stream with a missing middle event gives one line naming the loan, not a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from support.commands import domain_example, repaid
from support.tamper import EVENTS, kind, raw, triggers_off

from cli.main import cli
from domain.loan import loan_uuid
from ledger.commands import command_from_dict


def remove_event(url: str, loan_id: str, version: int) -> None:
    """What a bad manual fix or a partial restore does to a stream (past the append-only triggers)."""
    table = EVENTS[kind(url)]
    with raw(url) as con, triggers_off(url, con, table):
        placeholder = "?" if kind(url) == "sqlite" else "%s"
        con.execute(
            f"DELETE FROM {table} WHERE originator_id = {placeholder} AND originator_version = {placeholder}",
            (loan_uuid(loan_id).hex if kind(url) == "sqlite" else loan_uuid(loan_id), version),
        )


@pytest.mark.parametrize(
    "args",
    [["loan", "show", "L1"], ["balances", "--as-of", "2026-03-10"], ["projections", "rebuild"]],
    ids=["loan show", "balances", "rebuild"],
)
def test_a_missing_middle_event_names_the_loan_and_points_to_verify(ledger, args):
    """Reproduction: loan show, balances and rebuild crashed with OriginatorVersionError."""
    ledger.append([command_from_dict(c) for c in [*domain_example(), repaid(), domain_example("L2")[0]]])
    remove_event(ledger.settings.db_url, "L1", 2)
    result = CliRunner().invoke(cli, [*args, "--db", ledger.settings.db_url])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    [line] = [x for x in result.output.splitlines() if x.lower().startswith("error:")]
    assert "loan L1:" in line and "version 3 follows version 1" in line and "`ledger verify`" in line


def test_appending_to_a_damaged_loan_names_it(ledger):
    ledger.append([command_from_dict(c) for c in domain_example()])
    remove_event(ledger.settings.db_url, "L1", 2)
    args = ["append", "-", "--db", ledger.settings.db_url]
    result = CliRunner().invoke(cli, args, input=repaid_line())
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    [line] = [x for x in result.output.splitlines() if x.startswith("Error:")]
    assert "loan L1:" in line and "version 3 follows version 1" in line and "ledger verify" in line


def repaid_line() -> str:
    import json

    return json.dumps(repaid()) + "\n"


@pytest.mark.parametrize(
    "change, why",
    [
        ("state = {not_json}", "its state is not JSON"),
        ("topic = 'domain.loan:Loan.Bogus'", "its topic 'domain.loan:Loan.Bogus' names no event type"),
    ],
    ids=["state not JSON", "bogus topic"],
)
@pytest.mark.parametrize("args", [["loan", "show", "L1"], ["loan", "show", "L1", "--known-at", "2099-01-01T00:00:00Z"]])
def test_an_event_that_cannot_be_decoded_names_the_loan_and_version_not_a_traceback(ledger, change, why, args):
    """Reproduction: `loan show` printed a raw traceback for a state that is not JSON or a bogus topic."""
    ledger.append([command_from_dict(c) for c in domain_example()])
    url = ledger.settings.db_url
    table = EVENTS[kind(url)]
    not_json = "CAST('not json' AS BLOB)" if kind(url) == "sqlite" else "convert_to('not json', 'UTF8')"
    with raw(url) as con, triggers_off(url, con, table):
        placeholder = "?" if kind(url) == "sqlite" else "%s"
        con.execute(
            f"UPDATE {table} SET {change.format(not_json=not_json)} WHERE originator_id = {placeholder} "
            "AND originator_version = 2",
            (loan_uuid("L1").hex if kind(url) == "sqlite" else loan_uuid("L1"),),
        )
    result = CliRunner().invoke(cli, [*args, "--db", url])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output == (
        f"Error: loan L1: its stored event at version 2 cannot be read ({why}): run `ledger verify`, "
        "and restore the loan's events from a backup\n"
    )
