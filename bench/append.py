"""Append throughput: the ledger's append path beside raw writes of the same rows, same run.

    python bench/append.py [--commands 20000,100000] [--stores sqlite,postgres] [--repeat 1]

For each size and store it prints commands/s through ``ledger.ingest.append_lines``
(validation, idempotency, rules, events + keys + audit chain in one transaction
per batch), the same without the audit chain (its reads and hashing replaced by nothing
inside the bench's own child process: the ledger has no switch for it) and the chain's
cost, in wall time (best run) and in CPU time per command (client plus PostgreSQL backends, median run: on a
shared machine the steadier figure), and the ledger's peak memory (max RSS of the
child process that ran it), at each size: it stays flat as the file grows.

Beside it, the floor: the event rows that ledger run stored, read back and written again
in transactions of the same batch size into a table shaped like the event store (the
library's columns, primary key and notification index, plus the chain column), by a
batched INSERT (psycopg ``executemany``; ``sqlite3.executemany`` on SQLite) and, on
PostgreSQL, by psycopg ``COPY ... FROM STDIN`` in binary. For each: rows/s, the ledger's
ratio to it in wall time (ledger cmd/s over raw rows/s), the same ratio in CPU (raw CPU per
row over the ledger's CPU per command), and its peak memory (it holds all the rows at once,
so it grows with the size; the ledger's does not). No idempotency keys, no loan reads, no
rules on the raw side. PostgreSQL is a throwaway server started here, as in the tests.

The aim (issue 15) is a ledger ratio of at least 0.15x COPY. Figures measured with this bench, and
where the client's time per command goes, are in docs/scaling.md ("Append: against raw COPY") and
the README's benchmark table; they belong there, not here, so this text stays true as they move.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from measure import Stores, in_child, new_loan, peak_rss_mb  # noqa: E402

DAY = date(2026, 3, 1)

BATCH = int(os.environ.get("BENCH_BATCH", "500"))


def command_lines(n: int) -> list[str]:
    """n commands: loans applied, approved, funded, then repaid in two parts (5 per loan)."""
    lines: list[str] = []
    at = "2026-03-01T10:00:00+08:00"
    for i in range(n // 5 + 1):
        loan = f"B{i:07d}"
        lines += [json.dumps(c) for c in new_loan(loan, f"U{i % 7919}", DAY)]
        lines += [
            json.dumps(
                {
                    "type": "repaid",
                    "loan_id": loan,
                    "idempotency_key": f"r1-{loan}",
                    "occurred_at": at,
                    "amount": "500.00",
                    "bank_ref": f"r1-{loan}",
                    "value_date": "2026-03-08",
                }
            ),
            json.dumps(
                {
                    "type": "repaid",
                    "loan_id": loan,
                    "idempotency_key": f"r2-{loan}",
                    "occurred_at": at,
                    "amount": "512.00",
                    "bank_ref": f"r2-{loan}",
                    "value_date": "2026-03-15",
                }
            ),
        ]
    return lines[:n]


def run_ledger(url: str, path: str, chained: bool, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.ingest import append_lines

    app = Ledger(Settings(db_url=url, batch_size=BATCH))
    if not chained:
        # the baseline without the audit chain, in this child only: no previous-hash reads, no hashes
        from eventstore import audit_store

        audit_store._hashes_in_order = lambda events, previous: [None] * len(events)
        app.recorder._previous_hashes = lambda cursor, events: None
    started, cpu_started = time.perf_counter(), time.process_time() + server_cpu(url)
    with open(path) as f:
        statuses = [o.outcome.status for o in append_lines(app, f)]
    elapsed, cpu = time.perf_counter() - started, time.process_time() + server_cpu(url) - cpu_started
    assert statuses.count("appended") == len(statuses), "benchmark stream must be all valid"
    queue.put((len(statuses), elapsed, peak_rss_mb(), cpu))


def server_cpu(url: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving this database (0 for SQLite).

    With the client's own CPU time this is the work a run did, which other processes on a
    shared machine slow down far less than they slow down wall-clock time.
    """
    if url.startswith("sqlite"):
        return 0.0
    import psycopg

    with psycopg.connect(url) as con:
        pids = [r[0] for r in con.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")]
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # not on this machine, or gone
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def stored_rows(url: str) -> list[tuple]:
    """The event rows the ledger run stored, in notification order: what the raw baselines write."""
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        rows = con.execute(
            "SELECT originator_id, originator_version, topic, state, chain_hash FROM stored_events ORDER BY rowid"
        ).fetchall()
        con.close()
        return rows
    import psycopg

    with psycopg.connect(url) as con:
        return con.execute(
            "SELECT originator_id, originator_version, topic, state, chain_hash FROM ledger_events "
            "ORDER BY notification_id"
        ).fetchall()


# Shaped like the ledger's event table on PostgreSQL: the library's columns, keys and
# notification index, plus the chain column; no triggers and no idempotency rows.
PG_EVENT_TABLE = (
    "CREATE TABLE raw (originator_id uuid NOT NULL, originator_version bigint NOT NULL, topic text, "
    "state bytea, notification_id bigserial, chain_hash text, PRIMARY KEY (originator_id, originator_version))",
    "CREATE UNIQUE INDEX raw_notification_id ON raw (notification_id)",
)


def run_raw(url: str, source_url: str, method: str, queue) -> None:
    """The floor: the ledger run's own event rows, same batch size per transaction, no ledger at all.

    ``method`` is ``insert`` (``executemany``, both stores) or ``copy`` (psycopg ``COPY ... FROM
    STDIN`` in binary, PostgreSQL only).
    """
    rows = stored_rows(source_url)
    n = len(rows)
    started, cpu_started = time.perf_counter(), time.process_time() + server_cpu(url)
    if url.startswith("sqlite"):
        assert method == "insert", "COPY is PostgreSQL's"
        con = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(
            "CREATE TABLE raw (originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
            "chain_hash TEXT, PRIMARY KEY (originator_id, originator_version))"
        )
        for i in range(0, n, BATCH):
            con.execute("BEGIN")
            con.executemany("INSERT INTO raw VALUES (?,?,?,?,?)", rows[i : i + BATCH])
            con.execute("COMMIT")
    else:
        import psycopg

        columns = "originator_id, originator_version, topic, state, chain_hash"
        with psycopg.connect(url, autocommit=True) as con:
            for statement in PG_EVENT_TABLE:
                con.execute(statement)
            for i in range(0, n, BATCH):
                with con.transaction(), con.cursor() as cur:
                    if method == "copy":
                        with cur.copy(f"COPY raw ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                            copy.set_types(["uuid", "int8", "text", "bytea", "text"])
                            for row in rows[i : i + BATCH]:
                                copy.write_row(row)
                    else:
                        cur.executemany(f"INSERT INTO raw ({columns}) VALUES (%s,%s,%s,%s,%s)", rows[i : i + BATCH])
    elapsed, cpu = time.perf_counter() - started, time.process_time() + server_cpu(url) - cpu_started
    queue.put((n, elapsed, peak_rss_mb(), cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", default="20000,100000", help="sizes, comma-separated (peak memory per size)")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side; the best is shown")
    args = parser.parse_args()

    with Stores("bench-append-") as stores:
        print(f"{BATCH} commands per transaction; raw = the ledger run's own event rows, same batch size")
        print(
            f"{'commands':>9} {'store':<9} {'ledger cmd/s':>13} {'no chain':>9} {'chain cost':>11} "
            f"{'CPU us/cmd':>11} {'no chain':>9} {'chain CPU':>10} {'peak MB':>8} "
            f"{'INSERT/s':>9} {'ratio':>6} {'CPU':>6} {'MB':>7} {'COPY/s':>9} {'ratio':>6} {'CPU':>6} {'MB':>7}"
        )
        runs = iter(range(10**6))
        for size in (int(s) for s in args.commands.split(",")):
            path = stores.dir / f"commands-{size}.jsonl"
            path.write_text("\n".join(command_lines(size)) + "\n")
            for store in args.stores.split(","):
                best: dict[str, tuple] = {}
                cpu: dict[str, list[float]] = {"plain": [], "chain": []}
                for _ in range(args.repeat):
                    # alternate the two sides so drift on a shared machine hits both alike
                    for side in ("plain", "chain"):
                        url = stores.url(store, f"bench_{side}_{next(runs)}")
                        n, t, rss, used = in_child(run_ledger, url, str(path), side == "chain")
                        cpu[side].append(used / n * 1e6)
                        if side not in best or t < best[side][1]:
                            best[side] = (n, t, rss, url)
                n, t_ledger, rss_ledger, chained_url = best["chain"]
                t_plain = best["plain"][1]
                cpu_chain, cpu_plain = statistics.median(cpu["chain"]), statistics.median(cpu["plain"])
                ledger_rate, plain_rate = n / t_ledger, n / t_plain
                cells = []
                for method in ("insert", "copy"):
                    if method == "copy" and store != "postgres":
                        cells.append(f"{'-':>9} {'-':>6} {'-':>6} {'-':>7}")
                        continue
                    rate, cpu_row, rss = raw_side(stores, store, chained_url, method, args.repeat, runs)
                    cells.append(f"{rate:>9,.0f} {ledger_rate / rate:>6.3f} {cpu_row / cpu_chain:>6.3f} {rss:>7.0f}")
                print(
                    f"{n:>9} {store:<9} {ledger_rate:>13,.0f} {plain_rate:>9,.0f} "
                    f"{1 - ledger_rate / plain_rate:>11.1%} "
                    f"{cpu_chain:>11,.0f} {cpu_plain:>9,.0f} {cpu_chain / cpu_plain - 1:>10.1%} "
                    f"{rss_ledger:>8.0f} {cells[0]} {cells[1]}",
                    flush=True,
                )


def raw_side(stores: Stores, store: str, source_url: str, method: str, repeat: int, runs) -> tuple[float, float, float]:
    """A raw baseline run ``repeat`` times: best rows/s, median CPU us per row, peak MB."""
    best, cpus, rss = 0.0, [], 0.0
    for _ in range(repeat):
        rows, t, rss, used = in_child(run_raw, stores.url(store, f"raw_{next(runs)}"), source_url, method)
        best = max(best, rows / t)
        cpus.append(used / rows * 1e6)
    return best, statistics.median(cpus), rss


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
