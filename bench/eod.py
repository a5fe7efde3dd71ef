"""End-of-day throughput when every loan of the book is due, beside a raw read of the same loans.

    python bench/eod.py [--loans 20000] [--stores sqlite,postgres] [--workers 1,2]

Fills a ledger with ``--loans`` loans funded on one day (so all fall due together), then runs
the end-of-day job for a day on which every one of them crosses into M1: each is loaded, judged
and marked, the marks appended in batches. Then the book doubles (as many loans again, funded a
day later) and the next day is closed over all of them. For each size it prints loans/s and the
peak memory of the process that ran the job, beside the baseline of bench/measure.py in the same
run: the plain driver selecting the same loans' stored rows and ``json.loads`` of each state (the
floor any end of day pays to read its loans). With ``--workers 1,2``
each count closes its own copy of the same book (``ledger eod --workers N``), beside the same raw
read; "part MB" is the largest part's peak (ru_maxrss of the waited-for parts: an upper bound).

Figures measured with this bench, before and since issue 29, are in docs/scaling.md and the README;
they belong there, not here, so this text stays true as they move.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from measure import (  # noqa: E402
    Stores,
    baseline_read_streams,
    compare,
    in_child,
    load_average,
    new_loan,
    peak_rss_mb,
    stream_ids,
)

FUNDED = date(2026, 1, 1)
TERM_DAYS = 14


def commands(first: int, count: int, funded: date) -> list[dict]:
    return [c for i in range(first, first + count) for c in new_loan(f"E{i:08d}", f"U{i}", funded)]


def fill(url: str, first: int, count: int, funded: date, queue) -> None:
    from ledger.app import Ledger, chunks
    from ledger.commands import command_from_dict
    from ledger.config import Settings
    from projections import runner

    app = Ledger(Settings(db_url=url))
    for batch in chunks(commands(first, count, funded), 500):
        outcomes = app.append([command_from_dict(c) for c in batch])
        assert {o.status for o in outcomes} == {"appended"}, [o for o in outcomes if o.error][:3]
    runner.catch_up(app)  # the end of day reads its candidates from the book: bring it up to date first
    queue.put(app.recorder.max_notification_id())


def end_of_day(url: str, day: date, workers: int, queue) -> None:
    import resource

    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.eod import run_eod
    from ledger.eod_parts import run_eod_in_parts
    from projections import runner
    from projections.balances import open_loan_uuids

    app = Ledger(Settings(db_url=url))
    started = time.perf_counter()
    runner.catch_up(app)
    candidates = open_loan_uuids(runner.views(app), day)
    if workers == 1:
        report = run_eod(app, day, candidates=candidates)
    else:
        report = run_eod_in_parts(app.settings, day, candidates, workers)
    elapsed = time.perf_counter() - started
    marked = report.outcomes[("overdue", "appended")]
    parts = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if workers > 1 else 0.0
    queue.put((report.loans_checked, marked, elapsed, peak_rss_mb(), parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=20_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--workers", default="1", help="comma-separated process counts, each on its own copy")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    print(f"end of day with every loan due; {args.loans} loans, then {2 * args.loans}")
    print("baseline: SELECT of the same loans' stored rows, 500 loans a query, + json.loads of each state, same run")
    with Stores("bench-eod-") as stores:
        for store in args.stores.split(","):
            urls = {w: stores.url(store, f"bench_eod_w{w}") for w in counts}
            for size, (first, funded) in enumerate([(0, FUNDED), (args.loans, FUNDED + timedelta(days=1))], start=1):
                for url in urls.values():
                    in_child(fill, url, first, args.loans, funded)
                # the day every loan funded so far is 5 days past due: each crosses into M1 (or stays there)
                close = funded + timedelta(days=TERM_DAYS + 5)
                load = load_average()
                runs = {w: in_child(end_of_day, url, close, w) for w, url in urls.items()}
                # the loans' streams (each loan's first event is applied; the ledger's few own streams aside)
                loans = stream_ids(urls[counts[0]])
                raw = in_child(baseline_read_streams, urls[counts[0]], loans)
                for workers, (checked, marked, elapsed, eod_mb, part_mb) in runs.items():
                    if checked != size * args.loans:
                        raise SystemExit(f"the end of day checked {checked} loans, not {size * args.loans}")
                    part = f", largest part {part_mb:.0f} MB" if part_mb else ""  # one process has no parts
                    label = f"{store} {checked} loans, --workers {workers}"
                    print(
                        compare(label, "loans/s", (checked, elapsed, eod_mb), raw, load) + f" ({marked} marked){part}"
                    )


if __name__ == "__main__":
    main()
