"""A book built once and handed to each test as a copy of its own.

Building a simulated or bulk-appended book is most of some tests' time; the same book built again for
every store parameter, worker count or test of a module proves nothing more. ``copy_store`` makes an
existing, unused store an exact copy of another: SQLite through its online backup (the file's pages,
WAL included), PostgreSQL as ``CREATE DATABASE ... TEMPLATE`` (the files of the source database).
Both copy every table: events, keys, personal data, views and their positions, so a test on the copy
sees what it would have seen on a book it built itself (recorded times included).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql


def copy_store(source: str, target: str) -> None:
    """Make ``target`` (a store of the same kind, no connection open to it) a copy of ``source``
    (no connection open to it either: PostgreSQL refuses a template that is in use)."""
    if source.startswith("sqlite") != target.startswith("sqlite"):
        raise ValueError(f"cannot copy a store of one kind into another: {source} -> {target}")
    if source.startswith("sqlite"):
        src = sqlite3.connect(source.removeprefix("sqlite:///"))
        dst = sqlite3.connect(target.removeprefix("sqlite:///"))
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()
        return
    server, _, source_db = source.rpartition("/")
    target_server, _, target_db = target.rpartition("/")
    if server != target_server:
        raise ValueError("a PostgreSQL database is copied within its own server")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as con:
        con.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(target_db)))
        con.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(target_db), sql.Identifier(source_db)
            )
        )


class Books:
    """Books built once per test process and store kind, copied into each test's own store."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory  # where the SQLite books live; PostgreSQL's are databases of the test's server
        self._built: dict[tuple[str, str], str] = {}

    def copy(self, name: str, target: str, build: Callable[[str], None]) -> str:
        """Fill ``target`` (an unused store) with the book ``name``, which ``build(url)`` fills the first
        time it is asked for on that kind of store; ``target`` is returned."""
        kind = "sqlite" if target.startswith("sqlite") else "postgres"
        source = self._built.get((name, kind))
        if source is None:
            n = len(self._built)
            if kind == "sqlite":
                source = f"sqlite:///{self._dir}/book{n}.db"
            else:
                server = target.rpartition("/")[0]
                with psycopg.connect(f"{server}/postgres", autocommit=True) as con:
                    db = f"book{os.getpid()}_{n}"
                    con.execute(
                        sql.SQL("CREATE DATABASE {} TEMPLATE template0 STRATEGY FILE_COPY").format(sql.Identifier(db))
                    )
                source = f"{server}/{db}"
            build(source)
            self._built[(name, kind)] = source
        copy_store(source, target)
        return target
