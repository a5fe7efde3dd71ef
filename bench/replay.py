"""Projection rebuild throughput beside a raw scan of the same events, same run.

    python bench/replay.py [--events 100000] [--stores sqlite,postgres]

For each store the log is filled to half the size, then to the full size; at
each size it prints events/s of
- a raw scan: ``select_notifications`` page by page and decode every event,
  nothing else (the floor any projection pays), and
- a rebuild of the book projection from empty (decode, re-derive each touched
  loan's journal, write view rows and tracking per page),
with the peak memory (max RSS) of the child process that ran each, so that
memory staying flat as the log grows is visible.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from append import command_lines  # noqa: E402
from measure import Stores, in_child, peak_rss_mb  # noqa: E402

PAGE = 1000


def fill(url: str, lines: list[str], queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.ingest import append_lines

    app = Ledger(Settings(db_url=url))
    statuses = {o.outcome.status for o in append_lines(app, lines)}
    queue.put((statuses, app.recorder.max_notification_id()))


def raw_scan(url: str, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings

    app = Ledger(Settings(db_url=url))
    started, n, start = time.perf_counter(), 0, 1
    while notes := app.recorder.select_notifications(start, PAGE):
        for note in notes:
            app.mapper.to_domain_event(note)
        n += len(notes)
        start = notes[-1].id + 1
    queue.put((n, time.perf_counter() - started, peak_rss_mb()))


def rebuild(url: str, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from projections import runner

    app = Ledger(Settings(db_url=url))
    runner.reset(app)
    started = time.perf_counter()
    n = runner.catch_up(app, page_size=PAGE)
    queue.put((n, time.perf_counter() - started, peak_rss_mb()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    lines = command_lines(args.events)  # one event per command
    half = len(lines) // 2
    print(f"{'store':<9} {'events':>8} {'raw scan ev/s':>14} {'rebuild ev/s':>13} {'ratio':>6} "
          f"{'scan peak MB':>13} {'rebuild peak MB':>16}")
    with Stores("bench-replay-") as stores:
        for store in args.stores.split(","):
            url = stores.url(store, "bench_replay")
            for chunk in (lines[:half], lines[half:]):
                statuses, head = in_child(fill, url, chunk)
                assert statuses == {"appended"}, statuses
                n, t_scan, rss_scan = in_child(raw_scan, url)
                m, t_rebuild, rss_rebuild = in_child(rebuild, url)
                assert n == m == head
                scan_rate, rebuild_rate = n / t_scan, m / t_rebuild
                print(f"{store:<9} {n:>8} {scan_rate:>14,.0f} {rebuild_rate:>13,.0f} {rebuild_rate / scan_rate:>6.0%} "
                      f"{rss_scan:>13.0f} {rss_rebuild:>16.0f}")

if __name__ == "__main__":
    main()
