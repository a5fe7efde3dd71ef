"""What every command shares: the store option, --json, and one place that renders errors.

Exit codes (CONTRACT.md): 0 success, 1 the command ran and found a problem,
2 bad usage or configuration.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import click

from domain.errors import LedgerError
from ledger.app import Ledger
from ledger.config import ConfigError, settings_from_env
from ledger.retry import StoreUnavailable, retrying

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def store_options(fn: Callable) -> Callable:
    """Adds --db and --json to a command, and turns configuration errors into exit 2."""

    @click.option(
        "--db",
        "db_url",
        envvar="LEDGER_DB",
        default=None,
        metavar="URL",
        help="sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DBNAME "
        "(env LEDGER_DB; default sqlite:///ledger.db)",
    )
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as e:
            raise click.UsageError(str(e)) from None
        except LedgerError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_PROBLEM)
        except StoreUnavailable as e:
            click.echo(f"error: {e}; what was committed before stays, and running the command again is safe", err=True)
            sys.exit(EXIT_USAGE)

    return wrapper


def open_ledger(db_url: str | None) -> Ledger:
    settings = settings_from_env(db_url)
    try:
        return retrying(settings.retry_seconds, "opening the store", lambda: Ledger(settings))
    except StoreUnavailable:
        raise
    except Exception as e:  # the library raises several kinds for an unreachable store
        raise click.UsageError(f"cannot open the store {settings.db_url}: {e}") from None


def parse_day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=name) from None


def parse_moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 timestamp with offset", param_hint=name)
    return moment


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(to_jsonable(obj), ensure_ascii=False))
