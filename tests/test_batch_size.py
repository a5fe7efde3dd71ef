"""LEDGER_BATCH_SIZE: commands per transaction, an operator's setting with a bound."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from support.commands import domain_example, repaid

from cli.main import cli
from ledger.config import BATCH_SIZE_MAX, DEFAULT_BATCH_SIZE, ConfigError, settings_from_env


def test_the_batch_size_is_read_from_the_environment_with_its_default():
    assert settings_from_env("sqlite:///x.db", {}).batch_size == DEFAULT_BATCH_SIZE == 500
    assert settings_from_env("sqlite:///x.db", {"LEDGER_BATCH_SIZE": "20"}).batch_size == 20
    assert settings_from_env("sqlite:///x.db", {"LEDGER_BATCH_SIZE": "10000"}).batch_size == BATCH_SIZE_MAX


@pytest.mark.parametrize("value", ["0", "-5", "10001", "20.5", "twenty", "", " 20", "１２", "9" * 40])
def test_a_batch_size_out_of_bounds_or_not_a_number_is_refused_naming_it(value):
    with pytest.raises(ConfigError, match=r"LEDGER_BATCH_SIZE=.* must be a whole number of commands per transaction"):
        settings_from_env("sqlite:///x.db", {"LEDGER_BATCH_SIZE": value})


def _lines(*commands: dict) -> str:
    return "".join(json.dumps(c) + "\n" for c in commands)


def test_append_cuts_the_file_into_transactions_of_the_batch_size(tmp_path):
    """The one answer that depends on where a batch ends: a key repeated after a rejected command is
    'used earlier in this batch' only when both lines are in one batch. With LEDGER_BATCH_SIZE=1 the
    repeat is a batch of its own, so it is judged on its own (and rejected for its own reason)."""
    early = repaid(value_date="2026-02-27")  # before funding: rejected
    source = tmp_path / "in.jsonl"
    source.write_text(_lines(*domain_example(), early, early))
    answers = {}
    for size in ("500", "1"):
        url = f"sqlite:///{tmp_path}/b{size}.db"
        runner = CliRunner(env={"LEDGER_BATCH_SIZE": size})
        assert runner.invoke(cli, ["init", "--db", url]).exit_code == 0
        result = runner.invoke(cli, ["append", str(source), "--db", url, "--json"])
        assert result.exit_code == 1, result.output
        answers[size] = [json.loads(line) for line in result.output.splitlines()]
    assert [a["status"] for a in answers["500"]] == [a["status"] for a in answers["1"]]
    assert "used earlier in this batch" in answers["500"][-1]["error"]
    assert "used earlier in this batch" not in answers["1"][-1]["error"]


def test_append_with_a_bad_batch_size_exits_2_naming_it_and_writes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    assert CliRunner().invoke(cli, ["init", "--db", url]).exit_code == 0
    source = tmp_path / "in.jsonl"
    source.write_text(_lines(*domain_example()))
    result = CliRunner(env={"LEDGER_BATCH_SIZE": "0"}).invoke(cli, ["append", str(source), "--db", url])
    assert result.exit_code == 2
    assert "LEDGER_BATCH_SIZE='0' must be a whole number of commands per transaction from 1 to 10000" in result.output
    shown = CliRunner().invoke(cli, ["loan", "show", "L1", "--db", url])
    assert shown.exit_code == 1 and "no loan L1" in shown.output
