"""Dataset export throughput and memory as the book grows, beside a raw scan of the same log.

    python bench/dataset.py [--loans 100000] [--store sqlite|postgres] [--replay]

Fills a ledger with half the loans (five per borrower, each applied after the
previous one was repaid, so every row has history to compute), exports, then
fills the other half and exports again: rows/s and events/s and each export's
own peak memory, beside the baseline of bench/measure.py in the same run (a SELECT
of the stored rows and ``json.loads`` of each state, by the plain driver); "ratio"
is export events/s over baseline rows/s, the figure to compare across runs on a
shared, noisy machine. The
export's time includes writing the Parquet file. Each fill catches the
projection up (and, on PostgreSQL, vacuums) before anything is measured.

Importing pyarrow (and, where the Spark extra installed pandas, pyarrow's first array
importing pandas: about 0.5 s on its own) is paid once per run whatever the book's size, as
the baseline's driver import and connection are, so both sides leave it out of their figure;
it is printed beside it ("import").  ``--profile`` prints where the export's time goes
(cProfile, the whole export including that import, by own time and by cumulative time).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from measure import Stores, baseline_read, compare, in_child, load_average, new_loan, peak_rss_mb  # noqa: E402

LOANS_PER_BORROWER = 5


def lines(first: int, count: int):
    for i in range(first, first + count):
        loan, borrower, nth = f"X{i:08d}", f"U{i // LOANS_PER_BORROWER:07d}", i % LOANS_PER_BORROWER
        day = date(2026, 1, 1) + timedelta(days=20 * nth)
        at = f"{day}T10:00:00+08:00"
        yield from (json.dumps(c) for c in new_loan(loan, borrower, day))
        yield json.dumps(
            {
                "type": "repaid",
                "loan_id": loan,
                "idempotency_key": f"r-{loan}",
                "occurred_at": at,
                "amount": "1012.00",
                "bank_ref": f"r-{loan}",
                "value_date": str(day + timedelta(days=14)),
            }
        )


def fill(url: str, first: int, count: int, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.ingest import append_lines
    from projections import runner

    app = Ledger(Settings(db_url=url))
    assert {o.outcome.status for o in append_lines(app, lines(first, count))} == {"appended"}
    runner.catch_up(app)  # not part of any figure: in production the projection is kept current
    if url.startswith("postgres"):
        import psycopg

        # Let PostgreSQL finish what the fill left (dead rows of the views, statistics) now, rather
        # than in autovacuum workers that would take a core from whichever measurement comes next.
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    queue.put(None)


def export(url: str, out: str, replay: bool, profile: bool, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from projections import runner
    from projections.dataset import rows
    from projections.dataset_writers import write

    if replay:
        from support.dataset_replay import rows  # type: ignore[no-redef]
    app = Ledger(Settings(db_url=url))
    runner.catch_up(app)  # nothing to do: the fill caught up
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    imported = time.perf_counter()
    import pyarrow as pa

    pa.array([0])  # the first array imports pandas when it is installed (pyarrow's own check)
    started = time.perf_counter()
    n = write(rows(app, date(2026, 12, 31), datetime.now(UTC)), out, "parquet", date(2026, 12, 31), datetime.now(UTC))
    elapsed = time.perf_counter() - started
    report = ""
    if profiler is not None:
        import io
        import pstats

        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)
        report = text.getvalue()
    queue.put((n, elapsed, peak_rss_mb(), started - imported, report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--replay",
        action="store_true",
        help="export through the old per-loan replay (tests/support/dataset_replay.py): the figure before issue 15",
    )
    parser.add_argument("--profile", action="store_true", help="print where each export's time goes (cProfile)")
    args = parser.parse_args()
    with Stores("bench-dataset-") as stores:
        url = stores.url(args.store, "bench_dataset")
        half = args.loans // 2
        print(
            f"dataset export ({args.store}{', old replay' if args.replay else ''}) beside the baseline: "
            "SELECT of the stored rows + json.loads of each state, same run"
        )
        for first in (0, half):
            in_child(fill, url, first, half)
            load = load_average()
            scan = in_child(baseline_read, url)
            out = str(stores.dir / f"rows{first}.parquet")
            n, t_export, rss, t_import, report = in_child(export, url, out, args.replay, args.profile)
            events = scan[0]
            label = f"{first + half} loans, {n} rows, {events} events"
            print(
                compare(label, "events/s", (events, t_export, rss), scan, load)
                + f"  ({n / t_export:,.0f} rows/s; import {t_import:.2f} s once)"
            )
            if report:
                print(report)


if __name__ == "__main__":
    main()
