"""What every command shares: the store option, --json, and one place that renders errors.

Exit codes (docs/contract.md): 0 success, 1 the command ran and found a problem,
2 bad usage or configuration. With --json, every error is ``{"error": ...}`` on stdout.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlsplit

import click

from domain.errors import LedgerError
from eventstore.urls import sqlite_path
from projections.jsonable import to_jsonable

# The store, the ledger and the commands' models are imported when a command runs, not when `ledger`
# starts: `ledger --help` and a mistyped option answer without loading them (docs/decisions.md).
if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.config import Settings

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
DB_HELP = (
    "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DBNAME "
    "(env LEDGER_DB; default sqlite:///ledger.db). Given after the subcommand, it wins."
)


class Problem(click.ClickException):
    """The command ran and found a problem the user must hear about: exit 1."""

    exit_code = EXIT_PROBLEM


class Unavailable(click.ClickException):
    """The store stopped answering for longer than LEDGER_RETRY_SECONDS: exit 2, as for configuration."""

    exit_code = EXIT_USAGE


class Lazy(NamedTuple):
    """A subcommand whose module is imported only when it runs (or its own --help is asked for)."""

    module: str
    attribute: str
    short_help: str  # what `ledger --help` lists without importing it; a test holds it to the command's own


class LedgerGroup(click.Group):
    """The root command: with --json anywhere on the line, any error is JSON on stdout.

    Usage errors are raised while click parses, before a command's own code runs,
    so they are caught here rather than in each command.

    ``lazy`` names the subcommands defined in their own modules: each is imported when it is run, so
    one command does not pay for every other's libraries (numpy, pyarrow, the web server).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, Lazy] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            spec = self.lazy[cmd_name]
            command = getattr(importlib.import_module(spec.module), spec.attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{spec.module}.{spec.attribute} is not a click command")
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Every command listed, the ones not yet imported by their short help (not imported for it)."""
        rows = []
        limit = formatter.width - 6 - max((len(name) for name in self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                # shortened as click shortens a loaded command's help, so the listing reads the same
                rows.append((name, click.Command(name, help=self.lazy[name].short_help).get_short_help_str(limit)))
            elif not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    # click types main() as never returning in standalone mode; this override keeps that promise.
    def main(  # type: ignore[override]
        self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None, **extra: Any
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv or not extra.get("standalone_mode", True):
            return super().main(argv, prog_name, complete_var, **extra)
        extra["standalone_mode"] = False
        try:
            result = super().main(argv, prog_name, complete_var, **extra)
        except click.ClickException as e:
            echo_json({"error": e.format_message()})
            sys.exit(e.exit_code)
        except click.Abort:
            echo_json({"error": "aborted"})
            sys.exit(EXIT_PROBLEM)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


def workers_option(doing: str, same: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--workers N``: processes sharing the loans out by a stable hash (projections/partitions.py,
    ledger/eod_parts.py); for --help, ``doing`` says what each does and ``same`` what stays as in one."""
    return click.option(
        "--workers",
        type=click.IntRange(1, 64),
        default=1,
        show_default=True,
        help=f"Processes {doing}, a share of the loans each ({same}).",
    )


def store_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --db and --json to a command; configuration errors exit 2, a broken rule exits 1."""

    @click.option("--db", "db_url", default=None, metavar="URL", help=DB_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output (errors too).")
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from eventstore.retry import StoreUnavailable
        from ledger.config import ConfigError

        root = click.get_current_context().find_root()
        if kwargs.get("db_url") is None:  # then `ledger --db URL CMD`, then LEDGER_DB
            kwargs["db_url"] = root.params.get("db_url") or os.environ.get("LEDGER_DB") or None
        kwargs["as_json"] = bool(kwargs.get("as_json") or root.params.get("as_json"))  # `ledger --json CMD`
        try:
            return fn(*args, **kwargs)
        except ConfigError as e:
            raise click.UsageError(str(e)) from None
        except LedgerError as e:
            raise Problem(str(e)) from None
        except StoreUnavailable as e:
            raise Unavailable(f"{e}; what was committed before stays, and running the command again is safe") from None
        except Exception as e:
            denied = permission_denied(e)
            if denied is None:
                raise
            raise NotAllowed(
                f"{denied}: this needs the store's owner (the role that ran `ledger init`), not the application's "
                "role (docs/audit.md)"
            ) from None

    return wrapper


class NotAllowed(click.ClickException):
    """The store refused this role the command (permission denied): a configuration matter, exit 2."""

    exit_code = EXIT_USAGE


def permission_denied(error: BaseException) -> str | None:
    """The store's words if ``error`` (or what caused it, through the library's wrappers) is a refused
    privilege, else None."""
    import sqlite3

    import psycopg

    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, psycopg.errors.InsufficientPrivilege) or (
            isinstance(e, sqlite3.OperationalError) and "readonly database" in str(e)
        ):
            return str(e).strip().splitlines()[0]
        e = e.__cause__ or e.__context__
    return None


def open_ledger(db_url: str | None, *, create: bool = False) -> Ledger:
    """The ledger at ``db_url`` (else LEDGER_DB, else ./ledger.db).

    Only ``create=True`` (init, demo, simulate) may bring a new SQLite file into being:
    anywhere else a mistyped path would read as an empty ledger and report an empty book.
    """
    from eventstore.retry import retrying
    from ledger.config import redact, settings_from_env

    settings = settings_from_env(db_url)
    path = sqlite_path(settings.db_url)
    if not create and path is not None and path != ":memory:" and not Path(path).exists():
        raise click.UsageError(
            f"no ledger at {settings.db_url} ({Path(path).resolve()} does not exist); "
            f"create it with `ledger init --db {settings.db_url}`, or check --db / LEDGER_DB"
        )
    # Retry a connection that was lost, not one that was never made: a store that does not answer
    # now (refused, unknown host, no route) is reported within the probe's 3 s, not after
    # LEDGER_RETRY_SECONDS; one that answers but is starting up or full is waited for.
    reason = _unreachable_reason(settings.db_url)
    if reason is not None and not any(word in reason for word in _STARTING):
        raise click.UsageError(f"cannot open the store {redact(settings.db_url)}: {_scrub(reason, settings.db_url)}")
    try:
        return retrying(settings.retry_seconds, "opening the store", lambda: _open(settings))
    except Exception as e:  # the library and psycopg raise several kinds for an unreachable store
        reason = _unreachable_reason(settings.db_url) or str(e)
        raise click.UsageError(
            f"cannot open the store {redact(settings.db_url)}: {_scrub(reason, settings.db_url)}"
        ) from None


def _unreachable_reason(url: str) -> str | None:
    """Why PostgreSQL refused, in the server's words (the pool only reports a timeout)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return None
    import psycopg

    try:
        psycopg.connect(
            host=parts.hostname,
            port=parts.port or 5432,
            dbname=unquote(parts.path.lstrip("/")),
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            connect_timeout=3,
        ).close()
    except psycopg.Error as e:
        return " ".join(str(e).split())
    except ValueError:
        return None
    return None


def _scrub(message: str, url: str) -> str:
    """No password in a message, whatever a library chose to echo back."""
    from ledger.config import redact

    message = message.replace(url, redact(url))
    password = urlsplit(url).password
    if password:
        for secret in {password, unquote(password)}:
            message = message.replace(secret, "***")
    return message


class _RefusedForGood(Exception):
    """The server answered and said no (password, role, database): waiting will not change that."""


def _open(settings: Settings) -> Ledger:
    from eventstore.retry import CONNECTION_ERRORS
    from ledger.app import Ledger

    try:
        return Ledger(settings)
    except CONNECTION_ERRORS as e:
        reason = _unreachable_reason(settings.db_url)
        if reason and any(word in reason for word in _REFUSALS):
            raise _RefusedForGood(reason) from e  # not a connection error: retrying() lets it through
        raise


_REFUSALS = ("authentication failed", "does not exist", "no pg_hba.conf entry", "permission denied")
# the server answered, but cannot take a connection yet: a restart or failover under way
_STARTING = ("starting up", "shutting down", "in recovery", "too many clients", "not yet accepting connections")


def closable_day(value: str | None, today: date) -> date:
    """The ``--date`` of a job that closes a day (eod, settle): the day before ``today`` unless given;
    a day after today is refused here, before the store is even opened, so nothing is written."""
    from datetime import timedelta

    from ledger.eod import FutureDay, check_closable

    day = parse_day(value, "--date") or today - timedelta(days=1)
    try:
        check_closable(day, today)
    except FutureDay as e:
        raise click.BadParameter(str(e), param_hint="--date") from None
    return day


def parse_day(value: str | None, name: str) -> date | None:
    """A date option, read as every input of the ledger reads a date (``ledger.commands.parse_date``)."""
    if value is None:
        return None
    from ledger.commands import parse_date

    try:
        return parse_date(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=name) from None


def parse_moment(value: str | None, name: str) -> datetime | None:
    """A timestamp option, read as every input of the ledger reads one (``ledger.commands.parse_timestamp``)."""
    if value is None:
        return None
    from ledger.commands import parse_timestamp

    try:
        return parse_timestamp(value)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint=name) from None


def printable(text: str) -> str:
    """Text for a terminal line: controls escaped, so no stored or echoed input can forge a line."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(to_jsonable(obj), ensure_ascii=False))
