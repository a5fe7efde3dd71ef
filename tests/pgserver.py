"""A throwaway PostgreSQL server for the test run and the benchmarks.

Real PostgreSQL, no mocks: ``initdb`` into a temporary directory, ``pg_ctl
start`` on a free loopback port, ``pg_ctl stop`` and remove it at the end.
PostgreSQL refuses to run as root, so as root the binaries run as the
``postgres`` user. Any failure raises with the command and its output: a test
run that cannot start PostgreSQL fails, it never skips.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

# Throwaway data: durability settings only cost time here.
_FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"


def find_pg_bin(name: str) -> str:
    """A PostgreSQL binary from PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's {name} was not found on PATH or in /usr/lib/postgresql/*/bin; "
            "install PostgreSQL (apt-get install postgresql)"
        )
    return candidates[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_root else []) + list(args)
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(
                f"PostgreSQL command failed ({done.returncode}): {' '.join(cmd)}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}\nserver log: {tail}"
            )

    def __enter__(self) -> ThrowawayPostgres:
        if self.as_root:
            shutil.chown(self.dir, "postgres")
        self._run(find_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        # -l always: without a log file the server would hold our captured stdout open forever
        self._run(
            find_pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 {_FAST}",
            *extra,
            action,
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        """As an operator's fast shutdown does: every session is cut off at once."""
        self._pg_ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(find_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            # A test run leaves a database per test (hundreds of thousands of files): removing 600 of them
            # took 91 s on the loaded 2-core machine (stopping the server 0.14 s), at the end of each worker.
            # The server is stopped, nothing reads them: a process of their own removes them, unawaited.
            try:
                subprocess.Popen(
                    ["rm", "-rf", "--", str(self.dir)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError:
                shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, dbname: str) -> str:
        return f"postgresql://postgres:postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """A new empty database; each test gets its own, so tests never see each other's data.

        ``STRATEGY FILE_COPY`` from template0 copies files instead of WAL-logging
        every block: tens of milliseconds rather than hundreds.
        """
        with psycopg.connect(self.url("postgres"), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY')
        return self.url(name)
