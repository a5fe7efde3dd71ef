"""Append throughput: the ledger's append path beside the plain driver writing the same lines, same run.

    python bench/append.py [--commands 20000,100000] [--stores sqlite,postgres] [--repeat 1]

For each size and store it prints commands/s through ``ledger.ingest.append_lines``
(validation, idempotency, rules, events + keys + audit chain in one transaction
per batch) beside the baseline of bench/measure.py in the same run: the same command
lines written by the plain driver into a plain table, in transactions of the same batch
size (PostgreSQL ``COPY ... FROM STDIN`` into a jsonb column, SQLite ``executemany`` into a
text column): no idempotency keys, no loan reads, no rules, no events. Then the ratio,
each side's peak memory (the ledger's stays flat as the file grows) and the load average
at the start and the end. A second line gives the same append without the audit chain
(its reads and hashing replaced by nothing inside the bench's own child process: the
ledger has no switch for it), the chain's cost, and CPU time per command (client plus
PostgreSQL backends, median run: on a shared machine the steadier figure).
PostgreSQL is a throwaway server started here, as in the tests.

Before issue 29 the baseline was the ledger run's own stored event rows re-written by
INSERT and binary COPY into a table shaped like the event store (docs/scaling.md keeps those
figures under that yardstick).

The aim (issues 15 and 29) is a ledger ratio of at least 0.15x COPY. Figures measured with this bench, and
where the client's time per command goes, are in docs/scaling.md ("Append: against raw COPY") and
the README's benchmark table; they belong there, not here, so this text stays true as they move.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from measure import Stores, baseline_write, compare, in_child, load_average, new_loan, peak_rss_mb  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", default="20000,100000", help="sizes, comma-separated (peak memory per size)")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side; the best is shown")
    args = parser.parse_args()

    with Stores("bench-append-") as stores:
        print(
            f"{BATCH} commands per transaction; baseline: the same lines written by the plain driver into a plain "
            "table (PostgreSQL COPY into jsonb, SQLite executemany into text), same batch size, same run"
        )
        runs = iter(range(10**6))
        for size in (int(s) for s in args.commands.split(",")):
            path = stores.dir / f"commands-{size}.jsonl"
            path.write_text("\n".join(command_lines(size)) + "\n")
            for store in args.stores.split(","):
                load = load_average()
                best: dict[str, tuple] = {}
                cpu: dict[str, list[float]] = {"plain": [], "chain": []}
                base: tuple = ()
                for _ in range(args.repeat):
                    # alternate the sides so drift on a shared machine hits all alike
                    for side in ("plain", "chain"):
                        url = stores.url(store, f"bench_{side}_{next(runs)}")
                        n, t, rss, used = in_child(run_ledger, url, str(path), side == "chain")
                        cpu[side].append(used / n * 1e6)
                        if side not in best or t < best[side][1]:
                            best[side] = (n, t, rss)
                    got = in_child(baseline_write, stores.url(store, f"raw_{next(runs)}"), str(path), BATCH)
                    if not base or got[1] < base[1]:
                        base = got
                n, t_ledger, rss_ledger = best["chain"]
                cpu_chain, cpu_plain = statistics.median(cpu["chain"]), statistics.median(cpu["plain"])
                print(compare(f"{store} {n} commands", "cmd/s", best["chain"], base, load), flush=True)
                print(
                    f"    without the audit chain {n / best['plain'][1]:,.0f} cmd/s (chain cost "
                    f"{1 - best['plain'][1] / t_ledger:.1%} wall); CPU {cpu_chain:,.0f} us/cmd, without the chain "
                    f"{cpu_plain:,.0f} ({cpu_chain / cpu_plain - 1:+.1%})",
                    flush=True,
                )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
