"""Append throughput: the ledger's append path beside a raw insert of the same rows, same run.

    python bench/append.py [--commands 100000] [--stores sqlite,postgres] [--repeat 1]

For each store it prints commands/s through ``ledger.ingest.append_lines``
(validation, idempotency, rules, events + keys + audit chain in one transaction
per batch), the same without the audit chain (the recorder's ``chain_enabled``
switched off, for this comparison only) and the chain's cost, in wall time (best
run) and in CPU time per command (client plus PostgreSQL backends, median run: on a
shared machine the steadier figure), the rate of a
raw insert of the same number of rows in the same batch size (psycopg
``executemany`` on PostgreSQL, ``sqlite3.executemany`` on SQLite), the ledger's
ratio to it, and each side's peak memory (max RSS of the child process that
ran it). PostgreSQL is a throwaway server started here, as in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import time
import uuid
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
    app.recorder.chain_enabled = chained
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


def run_raw(url: str, n: int, queue) -> None:
    """The floor: the same number of rows, same batch size, no ledger at all."""
    payload = json.dumps(
        {
            "amount": "500.00",
            "value_date": "2026-03-08",
            "bank_ref": "r1-B0000001",
            "idempotency_key": "r1-B0000001",
            "occurred_at": "2026-03-01T10:00:00+08:00",
        }
    ).encode()
    rows = [(uuid.uuid4(), 1, "bench:Event", payload) for _ in range(n)]
    started = time.perf_counter()
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE raw (id TEXT, version INTEGER, topic TEXT, state BLOB, PRIMARY KEY (id, version))")
        for i in range(0, n, BATCH):
            con.execute("BEGIN")
            con.executemany("INSERT INTO raw VALUES (?,?,?,?)", [(r[0].hex, *r[1:]) for r in rows[i : i + BATCH]])
            con.execute("COMMIT")
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as con:
            con.execute(
                "CREATE TABLE raw (id uuid, version bigint, topic text, state bytea, "
                "id_seq bigserial, PRIMARY KEY (id, version))"
            )
            for i in range(0, n, BATCH):
                with con.transaction():
                    con.cursor().executemany(
                        "INSERT INTO raw (id, version, topic, state) VALUES (%s,%s,%s,%s)", rows[i : i + BATCH]
                    )
    elapsed = time.perf_counter() - started
    queue.put((n, elapsed, peak_rss_mb()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side; the best is shown")
    args = parser.parse_args()

    with Stores("bench-append-") as stores:
        path = stores.dir / "commands.jsonl"
        path.write_text("\n".join(command_lines(args.commands)) + "\n")
        print(f"{args.commands} commands, {BATCH} per transaction, file {path.stat().st_size / 1e6:.1f} MB")
        print(
            f"{'store':<9} {'ledger cmd/s':>13} {'no chain':>9} {'chain cost':>11} "
            f"{'CPU us/cmd':>11} {'no chain':>9} {'chain CPU':>10} {'raw rows/s':>11} {'ratio':>6} "
            f"{'ledger peak MB':>15} {'raw peak MB':>12}"
        )
        runs = iter(range(10**6))
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
                        best[side] = (n, t, rss)
            n, t_ledger, rss_ledger = best["chain"]
            t_plain = best["plain"][1]
            cpu_chain, cpu_plain = statistics.median(cpu["chain"]), statistics.median(cpu["plain"])
            _, t_raw, rss_raw = in_child(run_raw, stores.url(store, "bench_raw"), n)
            ledger_rate, plain_rate, raw_rate = n / t_ledger, n / t_plain, n / t_raw
            print(
                f"{store:<9} {ledger_rate:>13,.0f} {plain_rate:>9,.0f} {1 - ledger_rate / plain_rate:>11.1%} "
                f"{cpu_chain:>11,.0f} {cpu_plain:>9,.0f} {cpu_chain / cpu_plain - 1:>10.1%} "
                f"{raw_rate:>11,.0f} {ledger_rate / raw_rate:>6.0%} {rss_ledger:>15.0f} {rss_raw:>12.0f}"
            )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
