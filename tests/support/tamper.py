"""Editing a store behind the ledger's back, as someone with the database owner's rights would:
a raw connection, the append-only triggers switched off first."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

EVENTS = {"sqlite": "stored_events", "postgres": "ledger_events"}


def kind(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgres"


@contextmanager
def raw(url: str) -> Iterator[Any]:
    """A connection with the database owner's rights, committing each statement."""
    if kind(url) == "sqlite":
        con = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        try:
            yield con
        finally:
            con.close()
    else:
        with psycopg.connect(url, autocommit=True) as con:
            yield con


@contextmanager
def triggers_off(url: str, con: Any, table: str) -> Iterator[None]:
    if kind(url) == "sqlite":
        con.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        con.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        yield  # the next Ledger to open the store puts them back
    else:
        con.execute(f"ALTER TABLE {table} DISABLE TRIGGER ledger_append_only")
        yield
        con.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER ledger_append_only")
