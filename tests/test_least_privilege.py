"""The least-privilege role of docs/audit.md, on a real PostgreSQL: the documented GRANTs are enough to
run the ledger, and not enough to change history.

The GRANT block is read from docs/audit.md itself, so the document cannot drift from what works.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from support.commands import assigned

from cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
ROLE_ENV = {"LEDGER_SETUP_STORE": "no"}
_numbers = itertools.count()


def documented_grants() -> list[str]:
    text = (ROOT / "docs" / "audit.md").read_text()
    block = next(b for b in text.split("```sql")[1:] if "GRANT" in b).split("```")[0]
    lines = [line for line in block.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


@pytest.fixture
def stores(pg_server):
    """(owner URL, application role URL) of a store the owner set up with `ledger init`."""
    owner = pg_server.create_database(f"lp{os.getpid()}_{next(_numbers)}")
    assert run("init", "--db", owner).exit_code == 0
    assert run("projections", "rebuild", "--db", owner).exit_code == 0
    with psycopg.connect(owner, autocommit=True) as con:
        for statement in documented_grants():
            con.execute(statement.replace("PASSWORD '...'", "PASSWORD 'app-secret'"))
    yield owner, re.sub(r"//[^@/]*@", "//ledger_app:app-secret@", owner)
    with psycopg.connect(owner, autocommit=True) as con:
        con.execute("DROP OWNED BY ledger_app")
        con.execute("DROP ROLE ledger_app")


def test_the_documented_role_runs_the_ledger(stores, tmp_path):
    _, app = stores
    example = str(ROOT / "docs" / "examples" / "domain_example.jsonl")
    appended = run("append", example, "--db", app, env=ROLE_ENV)
    assert appended.exit_code == 0, appended.output
    assert "appended 3" in appended.output
    again = run("append", example, "--db", app, env=ROLE_ENV)
    assert "duplicate 3" in again.output
    # an agency's hand-over: the projection writes the custody tables, which the role must be granted too
    handed_over = tmp_path / "assigned.jsonl"
    handed_over.write_text(json.dumps(assigned("AG-A", "2026-03-20")) + "\n")
    assert run("append", str(handed_over), "--db", app, env=ROLE_ENV).exit_code == 0
    assert run("eod", "--date", "2026-04-01", "--db", app, env=ROLE_ENV).exit_code == 0
    assert run("projections", "catch-up", "--db", app, env=ROLE_ENV).exit_code == 0
    balances = run("balances", "--as-of", "2026-04-01", "--json", "--db", app, env=ROLE_ENV)
    assert balances.exit_code == 0, balances.output
    assert json.loads(balances.output)["trial_balance"] == "0.00"
    checked = run("verify", "--json", "--db", app, env=ROLE_ENV)
    assert checked.exit_code == 0 and json.loads(checked.output)["ok"] is True


def test_without_the_setting_the_role_is_told_why_it_cannot_open_the_store(stores):
    _, app = stores
    refused = run("balances", "--db", app)
    assert refused.exit_code == 2
    assert "permission denied" in refused.output and "app-secret" not in refused.output
    wrong = run("balances", "--db", app, env={"LEDGER_SETUP_STORE": "maybe"})
    assert wrong.exit_code == 2 and "LEDGER_SETUP_STORE='maybe' must be yes or no" in wrong.output


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_events SET topic = topic",
        "DELETE FROM ledger_events",
        "TRUNCATE ledger_events",
        "UPDATE ledger_idempotency SET content_hash = 'x'",
        "DELETE FROM ledger_idempotency",
        "ALTER TABLE ledger_events DISABLE TRIGGER ledger_append_only",
        "DROP TABLE ledger_events",
        "UPDATE ledger_clock SET last_us = last_us - 1",
        "DELETE FROM ledger_clock",
        "ALTER TABLE ledger_clock DISABLE TRIGGER ledger_clock_forward",
    ],
)
def test_the_documented_role_cannot_change_history(stores, statement):
    _, app = stores
    assert run("append", str(ROOT / "docs/examples/domain_example.jsonl"), "--db", app, env=ROLE_ENV).exit_code == 0
    with psycopg.connect(app, autocommit=True) as con:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute(statement)
        assert con.execute("SELECT count(*) FROM ledger_events").fetchone() == (3,)


def test_forget_by_the_role_says_what_the_owner_must_run_and_the_owners_run_finishes(stores):
    """Reproduction: the role's `forget` printed `erased` and exited 0 while the name, phone and id number
    stayed in the table's file (it may not run VACUUM FULL); the owner's run then said `no personal data
    held` and skipped the clean-up, so the bytes stayed for good."""
    from support.commands import applied
    from test_audit import _store_bytes

    owner, app = stores
    personal = {"name": "Zhang San", "phone": "13812345678", "id_number": "110101199003070011"}
    lines = [applied("L1", borrower={**personal, "phone": "13900000001"}), applied("L2", borrower=personal)]
    sent = run("append", "-", "--db", app, env=ROLE_ENV, input="".join(json.dumps(c) + "\n" for c in lines))
    assert "appended 2" in sent.output
    secrets = [v.encode() for v in (*personal.values(), "13900000001")]

    by_role = run("borrower", "forget", "B1", "--db", app, env=ROLE_ENV)
    assert by_role.exit_code == 1, by_role.output
    [line] = by_role.output.splitlines()
    assert line.startswith("Error: borrower B1 is not erased yet: its row is deleted, but the bytes stay")
    assert "only the table's owner may do" in line and "VACUUM FULL ledger_borrowers` as the owner" in line
    assert "run `ledger borrower forget B1` again as the owner" in line
    assert [s for s in secrets if s in _store_bytes(owner)] != []  # what the message says is true

    by_owner = run("borrower", "forget", "B1", "--json", "--db", owner)
    assert by_owner.exit_code == 0, by_owner.output
    assert json.loads(by_owner.output) == {"borrower_id": "B1", "erased": True}
    assert [s for s in secrets if s in _store_bytes(owner)] == []


@pytest.mark.parametrize(
    "args",
    [["projections", "rebuild"], ["token", "create", "svc2", "--scope", "read"], ["token", "revoke", "svc"]],
    ids=["rebuild", "token create", "token revoke"],
)
def test_what_only_the_owner_may_do_is_one_error_line_for_the_role(stores, args):
    """Reproduction: `projections rebuild` and `token create` run by the role printed a raw traceback
    (permission denied)."""
    owner, app = stores
    assert run("token", "create", "svc", "--scope", "append", "--db", owner).exit_code == 0
    for json_flag in ([], ["--json"]):
        result = CliRunner().invoke(cli, [*args, *json_flag, "--db", app], env=ROLE_ENV)
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        error = json.loads(result.output)["error"] if json_flag else result.output.splitlines()[-1]
        assert "permission denied for " in error and "needs the store's owner" in error, error
        assert "app-secret" not in result.output
