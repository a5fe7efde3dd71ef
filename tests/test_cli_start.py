"""`ledger`'s start: a command imports what it runs, not every other command's libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from support.commands import domain_example

from cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "pyarrow", "fastapi", "uvicorn", "starlette", "matplotlib", "pandas", "pyspark", "simulator")


def _heavy_imported_by(args: list[str]) -> tuple[set[str], int]:
    """The heavy libraries `ledger ARGS` had imported when it exited (a fresh interpreter), and its exit code."""
    probe = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: print('HEAVY=' + json.dumps([m for m in {HEAVY!r} if m in sys.modules])))\n"
        "from cli.main import cli\n"
        f"cli({args!r}, prog_name='ledger')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    line = next((x for x in done.stdout.splitlines() if x.startswith("HEAVY=")), None)
    assert line is not None, done.stdout + done.stderr
    return set(json.loads(line.removeprefix("HEAVY="))), done.returncode


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A SQLite book of the worked example: what is proven is what a command imports, not the store."""
    path = tmp_path_factory.mktemp("start")
    source = path / "in.jsonl"
    source.write_text("".join(json.dumps(c) + "\n" for c in domain_example()))
    url = f"sqlite:///{path}/l.db"
    assert CliRunner().invoke(cli, ["init", "--db", url]).exit_code == 0
    assert CliRunner().invoke(cli, ["append", str(source), "--db", url]).exit_code == 0
    return url, str(source)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["balances", "--as-of", "2026-03-10"],
        ["loan", "show", "L1"],
        ["append"],
        ["eod", "--date", "2026-03-10"],
    ],
    ids=["help", "balances", "loan show", "append", "eod"],
)
def test_the_light_commands_do_not_import_numpy_pyarrow_or_the_web_server(book, args):
    """Reproduction: every `ledger` call imported numpy, pyarrow's dataset modules and the HTTP
    server (~0.85 s of its start), whatever it ran. Each command here really runs (exit 0)."""
    url, source = book
    if args == ["append"]:
        args = ["append", source]  # every line a duplicate: the whole append path, nothing new
    heavy, code = _heavy_imported_by(args if args == ["--help"] else [*args, "--db", url])
    assert code == 0
    assert heavy == set()


def test_help_lists_every_command_as_the_command_itself_says_it():
    """`ledger --help` lists the commands it has not imported by the line kept beside each in
    cli/main.py: that line must be the command's own, and each must be the command of its name."""
    ctx = click.Context(cli)
    for name, spec in cli.lazy.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
        assert spec.short_help == command.get_short_help_str(limit=1000), name
    assert set(cli.list_commands(ctx)) == {*cli.lazy, "init", "append"}


def test_report_keeps_its_partners_subcommand():
    ctx = click.Context(cli)
    report = cli.get_command(ctx, "report")
    assert isinstance(report, click.Group) and {"vintage", "models", "partners"} <= set(report.commands)
