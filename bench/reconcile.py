"""Reconciliation throughput on a large settlement file, beside a bare CSV read of it, same run.

    python bench/reconcile.py [--rows 1000000] [--store sqlite|postgres]

Fills a ledger with rows/2 loans funded by one bank and repaid once (rows
money movements), writes the bank's matching settlement file, then prints
rows/s and peak memory of ``ledger reconcile``'s engine beside the floor, in the
same run: a bare ``csv.reader`` pass over the same file plus the baseline of
bench/measure.py over the ledger's log (SELECT of the stored rows and
``json.loads`` of each state), their times added. Before issue 29 the floor was the
CSV read alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from measure import Stores, baseline_read, compare, in_child, load_average, new_loan, peak_rss_mb  # noqa: E402

DAY = date(2026, 3, 1)

BANK = "BANKA"


def fill(url: str, loans: int, csv_path: str, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.ingest import append_lines

    at = "2026-03-01T10:00:00+08:00"

    def lines():
        for i in range(loans):
            loan = f"C{i:08d}"
            yield from (json.dumps(c) for c in new_loan(loan, f"U{i}", DAY, bank=BANK, funding_ref=f"D-{loan}"))
            yield json.dumps(
                {
                    "type": "repaid",
                    "loan_id": loan,
                    "idempotency_key": f"R-{loan}",
                    "occurred_at": at,
                    "amount": "1012.00",
                    "bank_ref": f"R-{loan}",
                    "value_date": "2026-03-15",
                }
            )

    app = Ledger(Settings(db_url=url))
    assert {o.outcome.status for o in append_lines(app, lines())} == {"appended"}
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bank_ref", "loan_id", "type", "amount", "value_date"])
        for i in range(loans):
            w.writerow([f"D-C{i:08d}", f"C{i:08d}", "disbursement", "1000.00", "2026-03-01"])
            w.writerow([f"R-C{i:08d}", f"C{i:08d}", "repayment", "1012.00", "2026-03-15"])
    queue.put(None)


def run_reconcile(url: str, csv_path: str, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from projections.reconciliation import reconcile

    app = Ledger(Settings(db_url=url))
    started = time.perf_counter()
    report = reconcile(app, Path(csv_path), BANK)
    elapsed = time.perf_counter() - started
    assert report.clean and report.matched == report.rows, (report.matched, report.rows, report.breaks[:3])
    queue.put((report.rows, elapsed, peak_rss_mb()))


def run_csv(csv_path: str, queue) -> None:
    started = time.perf_counter()
    with open(csv_path, newline="") as f:
        n = sum(1 for _ in csv.reader(f)) - 1
    queue.put((n, time.perf_counter() - started, peak_rss_mb()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    with Stores("bench-reconcile-") as stores:
        csv_path = str(stores.dir / "settlement.csv")
        url = stores.url(args.store, "bench_reconcile")
        started = time.perf_counter()
        in_child(fill, url, args.rows // 2, csv_path)
        print(f"ledger filled with {args.rows} movements in {time.perf_counter() - started:.0f} s ({args.store})")
        load = load_average()
        n, t_rec, rss_rec = in_child(run_reconcile, url, csv_path)
        _, t_csv, rss_csv = in_child(run_csv, csv_path)
        _, t_log, rss_log = in_child(baseline_read, url)
        # the floor: the file read once by csv.reader and the ledger's stored rows read once by the plain driver
        floor = (n, t_csv + t_log, max(rss_csv, rss_log))
        print(compare(f"{n} settlement rows", "rows/s", (n, t_rec, rss_rec), floor, load))
        print(f"    of the baseline: csv.reader {n / t_csv:,.0f} rows/s, the log's SELECT + json.loads {t_log:.1f} s")


if __name__ == "__main__":
    main()
