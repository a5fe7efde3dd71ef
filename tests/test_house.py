"""The house rules the suite and the code keep: checked, so they stay kept."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from domain.errors import BrokenInvariant

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
def test_probe(new_store):
    assert new_store().startswith("sqlite:")
"""


def test_a_sqlite_only_run_never_starts_postgresql(tmp_path):
    """The store fixtures ask for the PostgreSQL server only in their PostgreSQL case: a run of
    SQLite cases alone sets up no server (each server costs an initdb and a start)."""
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "test_probe.py").write_text(PROBE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--setup-show", "-p", "no:cacheprovider", "-p", "no:xdist"]
        + ["-p", "conftest", "-k", "sqlite", "--rootdir", str(tmp_path / "probe"), "--basetemp", str(tmp_path / "bt")]
        + [str(tmp_path / "probe" / "test_probe.py")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "new_store" in done.stdout, done.stdout
    assert "pg_server" not in done.stdout, done.stdout


PACKAGES = ("domain", "eventstore", "ledger", "projections", "api", "cli", "simulator")


def test_no_code_outside_the_tests_asserts():
    """``python -O`` drops every ``assert``: an invariant checked by one would silently stop holding."""
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Assert)
    ]
    assert found == []


def test_broken_invariants_raise_under_python_O(tmp_path):
    """The domain's tests, a small append and replay, and the invariants below, run under ``python -O``:
    a broken invariant still raises there (a negative principal was accepted when Terms asserted)."""
    done = subprocess.run(
        [sys.executable, "-O", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
        + ["--basetemp", str(tmp_path / "bt"), "-k", "not postgres"]
        + ["tests/test_domain_examples.py", "tests/test_money.py", "tests/test_ceiling.py"]
        + ["tests/test_append.py::test_the_domain_example_as_a_user_appends_it"]
        + ["tests/test_append.py::test_a_reversal_takes_the_repayment_out_and_rederives"]
        + ["tests/test_house.py::test_invariants_that_protect_money_raise"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) >= 28 and "failed" not in done.stdout, done.stdout[-3000:]


def test_invariants_that_protect_money_raise():
    from domain.allocation import allocate_fen
    from domain.terms import Terms
    from projections.journal_view import to_fen

    with pytest.raises(BrokenInvariant, match="principal -1000.00"):
        Terms(principal=D("-1000.00"), term_days=14, daily_rate=D("0.0005"), fee=D("5"), penalty_daily_rate=D("0"))
    with pytest.raises(BrokenInvariant, match="allocation order"):
        Terms(D("1000"), 14, D("0.0005"), D("5"), D("0"), allocation_order=("fee", "fee", "interest", "principal"))
    with pytest.raises(BrokenInvariant, match="negative amount"):
        allocate_fen(-1, {"principal": 100}, ("principal",))
    with pytest.raises(BrokenInvariant, match="whole number of fen"):
        to_fen(D("0.005"))


def test_append_runs_in_one_process_and_refuses_workers(tmp_path):
    """``ledger append --workers N`` was removed (docs/decisions.md, "One process appends a file")."""
    from click.testing import CliRunner

    from cli.main import cli

    result = CliRunner().invoke(cli, ["append", "-", "--workers", "2", "--db", f"sqlite:///{tmp_path}/l.db"], input="")
    assert result.exit_code == 2 and "No such option '--workers'" in result.output, result.output


# Which top-level folders each may import (README, "Where things live"). The event store sits below
# both sides; projections/ reads through its port (projections/source.py), never through ledger/.
MAY_IMPORT = {
    "domain": set(),
    "eventstore": {"domain"},
    "ledger": {"domain", "eventstore"},
    "projections": {"domain", "eventstore"},
    "simulator": {"domain", "eventstore", "ledger"},
    "api": {"domain", "eventstore", "ledger", "projections"},
    "cli": {"domain", "eventstore", "ledger", "projections", "api", "simulator"},
}


def test_each_folder_imports_only_the_layers_below_it():
    wrong = []
    for package, allowed in MAY_IMPORT.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top in MAY_IMPORT and top != package and top not in allowed:
                        wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert wrong == []


def test_the_read_sides_port_offers_no_way_to_write():
    """A projection gets the log through projections.source.EventLog: reads only. The write side's
    recorder (insert events, erase a borrower) and the ledger's save are not on it."""
    from projections.source import EventLog, LogReader, ReadSettings, StreamReader

    def members(protocol: type) -> set[str]:
        return {name for name in vars(protocol) if not name.startswith("_")}

    assert members(LogReader) == {
        "datastore",
        "max_notification_id",
        "select_notifications",
        "select_events_of",
        "notifications_of",
        "audit_export_page",
    }
    assert members(StreamReader) == {"get"}
    assert members(ReadSettings) == {"db_url", "retry_seconds", "max_retries"}
    assert members(EventLog) == {
        "recorder",
        "mapper",
        "settings",
        "repository",
        "notifications",
        "loan_with_events",
        "close",
    }


# The API's wire shapes (api/schemas.py) are named after what they describe, like the rows they carry.
SHAPES = ROOT / "api" / "schemas.py"


def test_no_two_classes_share_a_name():
    """One name, one meaning: a reader meeting ``Movement`` or ``Report`` must not have to ask which one."""
    where: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == SHAPES:
                continue
            for node in ast.parse(path.read_text(), str(path)).body:
                if isinstance(node, ast.ClassDef):
                    where.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}
