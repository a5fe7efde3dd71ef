"""What the benchmarks share: run a measurement in a fresh process and read its own peak memory."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from contextlib import closing
from datetime import date
from queue import Empty


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    Not ``ru_maxrss``: on Linux it survives exec, so a spawned child would report
    at least its parent's size at fork time. ``VmHWM`` belongs to the process's
    own address space, which exec replaced.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def in_child(target, *args):
    """Run ``target(*args, queue)`` in a fresh process; return what it put on the queue."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    while True:  # a child that died before answering must not leave the bench waiting for ever
        try:
            result = queue.get(timeout=1)
            break
        except Empty:
            if not proc.is_alive():
                raise RuntimeError(f"{target.__name__} died with exit code {proc.exitcode}") from None
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"{target.__name__} failed with exit code {proc.exitcode}")
    return result


class Stores:
    """Empty stores for a benchmark: SQLite files, or databases on a throwaway PostgreSQL server
    started on first need and stopped when the benchmark ends."""

    def __init__(self, prefix: str):
        import tempfile
        from pathlib import Path

        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.server = None

    def url(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.dir}/{name}.db"
        if self.server is None:
            from pgserver import ThrowawayPostgres

            self.server = ThrowawayPostgres().__enter__()
        return self.server.create_database(name)

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.__exit__(None, None, None)


def new_loan(loan: str, borrower: str, day: date, *, bank: str = "BANKA", funding_ref: str | None = None) -> list[dict]:
    """One loan applied, approved and funded on ``day`` (1,000.00 for 14 days at 0.0005 a day, fee
    5.00: 1,012.00 repays it on the due date): the opening three commands of every bench's book."""
    at = f"{day}T10:00:00+08:00"
    common = {"loan_id": loan, "occurred_at": at}
    terms = {"principal": "1000.00", "term_days": 14}
    ref = funding_ref or f"d-{loan}"
    return [
        {**common, "type": "applied", "idempotency_key": f"a-{loan}", "borrower_id": borrower, **terms,
         "product": "payday", "channel": "app"},
        {**common, "type": "scored", "idempotency_key": f"s-{loan}", "score": "0.71", "model_version": "m1",
         "decision": "approved", **terms, "daily_rate": "0.0005", "fee": "5.00", "penalty_daily_rate": "0.001"},
        {**common, "type": "funded", "idempotency_key": ref, "bank": bank, "bank_ref": ref, "amount": "1000.00",
         "value_date": day.isoformat()},
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# The baseline every bench prints beside its figure: the plain database driver on the same rows, in the
# same run. Never the event-store library's objects, never this repository's code: to read, a SELECT of the
# stored rows and ``json.loads`` of each row's ``state`` (the library stores it as JSON bytes; the ledger sets
# no compressor or cipher, and ``_state`` refuses a row that is not JSON rather than flatter the figure); to
# write, the same command lines into a plain table (jsonb on PostgreSQL by COPY, text on SQLite by
# executemany), in transactions of the ledger's batch size.

SQLITE_EVENTS = "stored_events"  # the library's fixed table name on SQLite
POSTGRES_EVENTS = "ledger_events"  # "<application name>_events" on PostgreSQL
READ_PAGE = 1000


def load_average() -> float:
    """The machine's one-minute load average: the machine is shared, so every figure carries it."""
    return os.getloadavg()[0]


def _state(raw: bytes | memoryview | str):
    if isinstance(raw, memoryview):
        raw = bytes(raw)
    if raw[:1] not in (b"{", "{"):
        raise RuntimeError("stored state is not plain JSON (compressed or enciphered?): the baseline must decode it")
    return json.loads(raw)


def _connect(url: str):
    if url.startswith("sqlite"):
        import sqlite3

        return sqlite3.connect(url.removeprefix("sqlite:///"))
    import psycopg

    return psycopg.connect(url)


def stream_ids(url: str) -> list:
    """Every stream's id as the driver returns it (one per loan, plus the ledger's own few streams)."""
    table = SQLITE_EVENTS if url.startswith("sqlite") else POSTGRES_EVENTS
    with closing(_connect(url)) as con:
        return [r[0] for r in con.execute(f"SELECT originator_id FROM {table} WHERE originator_version = 1")]


def baseline_read(url: str, queue) -> None:
    """The read floor: (rows, seconds, peak MB) of selecting the whole log in notification order,
    ``READ_PAGE`` rows a page by keyset (as any reader of the log pages it), and ``json.loads`` of each state."""
    queue.put(_read(url, None))


def baseline_read_streams(url: str, ids: list, queue) -> None:
    """The read floor of a job by loan: (streams, seconds, peak MB) of selecting the events of the streams
    ``ids``, 500 streams a query (as an end of day reads its loans), and ``json.loads`` of each state."""
    queue.put(_read(url, ids))


def _read(url: str, ids: list | None) -> tuple[int, float, float]:
    sqlite = url.startswith("sqlite")
    table, position = (SQLITE_EVENTS, "rowid") if sqlite else (POSTGRES_EVENTS, "notification_id")
    mark = "?" if sqlite else "%s"
    with closing(_connect(url)) as con:
        started, n = time.perf_counter(), 0
        if ids is None:
            last = 0
            query = f"SELECT {position}, state FROM {table} WHERE {position} > {mark} ORDER BY {position} LIMIT "
            query += str(READ_PAGE)
            while rows := con.execute(query, (last,)).fetchall():
                for _, state in rows:
                    _state(state)
                n += len(rows)
                last = rows[-1][0]
        else:
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                if sqlite:
                    where = f"originator_id IN ({','.join('?' * len(part))})"
                else:
                    where, part = "originator_id = ANY(%s)", [part]
                for _, _, state in con.execute(
                    f"SELECT originator_id, originator_version, state FROM {table} WHERE {where} "
                    "ORDER BY originator_id, originator_version",
                    part,
                ):
                    _state(state)
            n = len(ids)
        elapsed = time.perf_counter() - started
    return n, elapsed, peak_rss_mb()


def baseline_write(url: str, path: str, batch: int, queue) -> None:
    """The write floor: (lines, seconds, peak MB) of writing the file's lines into a plain table, ``batch`` a
    transaction: PostgreSQL ``COPY ... FROM STDIN`` into a jsonb column (the server parses each line as JSON,
    as the ledger must), SQLite ``executemany`` into a text column. Reads the file as it goes (flat memory)."""
    from itertools import islice

    with open(path) as f:
        n = 0
        if url.startswith("sqlite"):
            import sqlite3

            con = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("CREATE TABLE IF NOT EXISTS plain_lines (line TEXT NOT NULL)")
            started = time.perf_counter()  # as the ledger's side, timed once connected
            while lines := [(line.rstrip("\n"),) for line in islice(f, batch)]:
                con.execute("BEGIN")
                con.executemany("INSERT INTO plain_lines VALUES (?)", lines)
                con.execute("COMMIT")
                n += len(lines)
            con.close()
        else:
            import psycopg

            with psycopg.connect(url, autocommit=True) as con:
                con.execute("CREATE TABLE IF NOT EXISTS plain_lines (line jsonb NOT NULL)")
                started = time.perf_counter()
                while text := "".join(islice(f, batch)):
                    with con.transaction(), con.cursor() as cur, cur.copy("COPY plain_lines (line) FROM STDIN") as copy:
                        # COPY's text format reads a backslash as an escape: double it, so each line arrives as is
                        copy.write(text.replace("\\", "\\\\") + ("" if text.endswith("\n") else "\n"))
                    n += text.count("\n") + (not text.endswith("\n"))
        elapsed = time.perf_counter() - started
    queue.put((n, elapsed, peak_rss_mb()))


def compare(label: str, unit: str, ledger: tuple, baseline: tuple, load_at_start: float) -> str:
    """One line, the same in every bench: the ledger's rate, the baseline's in the same run, their ratio,
    each side's peak memory, and the load average when the measurement started and now.

    ``ledger`` and ``baseline`` are (count, seconds, peak MB), as the measuring children return them."""
    n, seconds, mb = ledger[:3]
    base_n, base_seconds, base_mb = baseline[:3]
    rate, base_rate = n / seconds, base_n / base_seconds
    return (
        f"{label:<34} {rate:>10,.0f} {unit:<9} baseline {base_rate:>10,.0f}  ratio {rate / base_rate:>6.3f}x  "
        f"peak {mb:>5.0f} MB (baseline {base_mb:>4.0f})  load {load_at_start:.1f} -> {load_average():.1f}"
    )


# The API's baseline: the transport's limit on this machine. The smallest ASGI application uvicorn can serve
# (read the whole body, answer 201 with a body of the ledger's answer's size), on the same HTTP protocol
# implementation (httptools), no access log: what any endpoint pays before the ledger does anything.
PLAIN_BODY_ENV = "BENCH_PLAIN_BODY_BYTES"


async def plain_app(scope, receive, send) -> None:
    if scope["type"] != "http":  # served with --lifespan off: nothing else arrives
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    body = b"x" * int(os.environ.get(PLAIN_BODY_ENV, "64"))
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def peak_tree_mb(pid: int) -> float:
    """The largest peak resident memory (VmHWM) among a server process and its live children."""
    from pathlib import Path

    best = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            best = int(line.split()[1]) / 1024
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        best = max(best, peak_tree_mb(int(child)))
    return best
