"""Issue 23, operators: settings, an unreachable store, --json anywhere, files that cannot be read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.commands import domain_example

from cli.main import cli
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def ledger_process(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("value", ["-5", "0", "90.5", "ninety", "1000000"])
def test_a_write_off_point_of_zero_or_below_or_absurd_is_refused_naming_it(store_url, value):
    """Reproduction: LEDGER_WRITE_OFF_DPD=-5 (or 0) was accepted and `eod` wrote loans off 1 day late, for good."""
    app = Ledger(Settings(db_url=store_url))
    app.append([command_from_dict(c) for c in domain_example()])
    head = app.recorder.max_notification_id()
    result = CliRunner(env={"LEDGER_WRITE_OFF_DPD": value}).invoke(
        cli, ["eod", "--date", "2026-03-20", "--db", store_url]
    )
    assert result.exit_code == 2, result.output
    assert f"LEDGER_WRITE_OFF_DPD={value!r} must be a whole number of days past due from 1 to 3650" in result.output
    assert app.recorder.max_notification_id() == head  # nothing written
    app.close()


@pytest.mark.parametrize(
    "url",
    ["postgresql://clerk:s3cret@127.0.0.1:1/ledger", "postgresql://clerk:s3cret@no-such-host.invalid:5432/ledger"],
    ids=["wrong port", "unknown host"],
)
def test_an_unreachable_postgresql_is_reported_at_once_not_retried(url):
    """Reproduction: 32 s to report, and `Exception ignored in Application.__del__` for the unknown host.
    A connection that was never made is not retried: with LEDGER_RETRY_SECONDS at a day, an answer at
    all (within the subprocess's bound) shows it was not."""
    done = ledger_process("balances", "--db", url, env={"LEDGER_RETRY_SECONDS": "86400"}, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "retrying" not in done.stderr and "Exception ignored" not in done.stderr and "Traceback" not in done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert error.startswith(f"Error: cannot open the store {url.replace('s3cret', '***')}: ")
    assert "s3cret" not in done.stderr + done.stdout


def test_json_before_the_subcommand_works_as_after_it(store_url):
    """Reproduction: `ledger --json loan show X` was refused (`No such option '--json'`)."""
    app = Ledger(Settings(db_url=store_url))
    app.append([command_from_dict(c) for c in domain_example()])
    app.close()
    before = CliRunner().invoke(cli, ["--json", "loan", "show", "L1", "--as-of", "2026-03-20", "--db", store_url])
    after = CliRunner().invoke(cli, ["loan", "show", "L1", "--as-of", "2026-03-20", "--json", "--db", store_url])
    assert before.exit_code == 0, before.output
    assert json.loads(before.output) == json.loads(after.output)
    assert json.loads(before.output)["balances"]["total"] == "1017.00"
    missing = CliRunner().invoke(cli, ["--db", store_url, "--json", "loan", "show", "NOPE"])
    assert missing.exit_code == 1 and json.loads(missing.output) == {"error": "no loan NOPE"}
