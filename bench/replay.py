"""Projection rebuild throughput beside a raw scan of the same events, same run, and its memory.

    python bench/replay.py [--events 100000] [--stores sqlite,postgres] [--workers 1,2] [--phases]

The log is a portfolio as a lender sees it: ``--loans-per-day`` loans applied,
scored and funded each day, repaid days or weeks later (in two parts, on the
due date, or late with penalty), so a loan's events are spread over many pages
and the runner's bounded loan cache is exercised as in production. Events are
made by building commands directly and appending them through ``Ledger.append``
500 at a time. The log is filled to ``--events``, then to twice that; at each
size it prints, for each store:
- the baseline of bench/measure.py: a SELECT of the stored rows, page by page,
  and ``json.loads`` of each state, by the plain driver (the floor any
  projection pays; never the library's objects);
- ``ledger projections rebuild --workers N`` for each N of ``--workers``: new
  tables filled from empty (decode, bring each touched loan up to date,
  re-derive its journal after each money event, write the rows and the
  tracking position per page), then swapped in;
- each one's peak memory (VmHWM of the fresh process that ran it), to show
  that it stays flat as the log doubles; with N > 1 also the largest part's
  (ru_maxrss of the parts: an upper bound).
``--phases`` also splits the rebuild's time by phase (one more rebuild, timed
per call; the timers cost a little).

Figures measured with this bench, before and since issue 29, are in docs/scaling.md and the README;
they belong there, not here, so this text stays true as they move.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from measure import Stores, baseline_read, compare, in_child, load_average, peak_rss_mb  # noqa: E402

PAGE = 1000
BATCH = 500
START = date(2026, 1, 1)


def portfolio_days(loans_per_day: int, seed: int = 7):
    """(day, [command dicts]) in the order a ledger would receive them."""
    rng = random.Random(seed)
    due: dict[date, list[dict]] = {}
    day, n = START, 0
    while True:
        at = f"{day.isoformat()}T10:00:00+08:00"
        commands = due.pop(day, [])
        for _ in range(loans_per_day):
            loan, n = f"P{n:08d}", n + 1
            principal = rng.randrange(500, 5001, 100)
            term = rng.choice((7, 14, 21, 30))
            fee_fen = principal * term // 40  # about half the room the 36% cost cap leaves beside the interest
            common = {"loan_id": loan, "occurred_at": at}
            commands += [
                {
                    **common,
                    "type": "applied",
                    "idempotency_key": f"a-{loan}",
                    "borrower_id": f"U{rng.randrange(50_000)}",
                    "principal": f"{principal}.00",
                    "term_days": term,
                    "product": "payday",
                    "channel": "app",
                },
                {
                    **common,
                    "type": "scored",
                    "idempotency_key": f"s-{loan}",
                    "score": "0.71",
                    "model_version": "m1",
                    "decision": "approved",
                    "principal": f"{principal}.00",
                    "term_days": term,
                    "daily_rate": "0.0005",
                    "fee": f"{fee_fen // 100}.{fee_fen % 100:02d}",
                    "penalty_daily_rate": "0.001",
                },
                {
                    **common,
                    "type": "funded",
                    "idempotency_key": f"d-{loan}",
                    "bank": rng.choice(("BANKA", "BANKB")),
                    "bank_ref": f"d-{loan}",
                    "amount": f"{principal}.00",
                    "value_date": day.isoformat(),
                },
            ]
            payoff = (
                principal * (1 + 0.0005 * term) + fee_fen / 100
            )  # near enough: any shortfall stays owed, any excess is held
            plan = rng.random()
            if plan < 0.4:  # part now, the rest at maturity
                parts = [
                    (day + timedelta(days=term // 2), principal / 2),
                    (day + timedelta(days=term), payoff - principal / 2),
                ]
            elif plan < 0.85:
                parts = [(day + timedelta(days=term), payoff)]
            else:  # late, with penalty
                parts = [(day + timedelta(days=term + rng.randrange(3, 40)), payoff * 1.05)]
            for i, (value_day, amount) in enumerate(parts):
                due.setdefault(value_day, []).append(
                    {
                        "loan_id": loan,
                        "occurred_at": f"{value_day.isoformat()}T12:00:00+08:00",
                        "type": "repaid",
                        "idempotency_key": f"r{i}-{loan}",
                        "bank_ref": f"r{i}-{loan}",
                        "amount": f"{amount:.2f}",
                        "value_date": value_day.isoformat(),
                    }
                )
        yield day, commands
        day += timedelta(days=1)


def fill(url: str, loans_per_day: int, events: int, queue) -> None:
    """Append the portfolio's stream until the log holds ``events`` events (resuming where it stopped)."""
    from ledger.app import Ledger, chunks
    from ledger.commands import command_from_dict
    from ledger.config import Settings

    app = Ledger(Settings(db_url=url))
    have = app.recorder.max_notification_id() or 0
    seen = 0
    for _, commands in portfolio_days(loans_per_day):
        for batch in chunks(commands, BATCH):
            if seen >= events:
                queue.put(app.recorder.max_notification_id())
                return
            seen += len(batch)
            if seen > have:
                outcomes = app.append([command_from_dict(c) for c in batch[max(0, have - seen + len(batch)) :]])
                assert {o.status for o in outcomes} == {"appended"}, [o for o in outcomes if o.error][:3]


def rebuild(url: str, workers: int, queue) -> None:
    """What ``ledger projections rebuild --workers N`` does: new tables filled, then swapped in."""
    from ledger.app import Ledger
    from ledger.config import Settings
    from projections import runner

    app = Ledger(Settings(db_url=url))
    runner.views(app)
    started = time.perf_counter()
    n = runner.rebuild(app, page_size=PAGE, workers=workers)
    elapsed = time.perf_counter() - started
    # the largest part's peak (ru_maxrss of waited-for children: an upper bound, it can carry
    # this process's size at the fork before the spawn's exec)
    parts = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if workers > 1 else 0.0
    queue.put((n, elapsed, peak_rss_mb(), parts))


def rebuild_phases(url: str, queue) -> None:
    """Where a rebuild's time goes: each phase's calls wrapped in a timer."""
    from domain.loan import Loan
    from ledger.app import Ledger
    from ledger.config import Settings
    from projections import book, journal_view, loans_view, runner

    app = Ledger(Settings(db_url=url))
    spent: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t

        return wrapper

    app.recorder.select_notifications = timed("read a page (select_notifications)", app.recorder.select_notifications)
    app.mapper.to_domain_event = timed("decode events (mapper)", app.mapper.to_domain_event)
    book._load = timed("load uncached loans (events + open lines)", book._load)
    Loan.position = timed("position as of FAR_FUTURE (domain)", Loan.position)
    book.journal_lines = timed("journal_lines (domain)", book.journal_lines)
    journal_view.JournalChanges.record = timed("diff journals, build rows", journal_view.JournalChanges.record)
    journal_view.JournalChanges.write = timed("write proj_journal", journal_view.JournalChanges.write)
    loans_view.write = timed("write proj_loans", loans_view.write)
    collecting: list[float] = []

    def collector(phase, info):  # the cyclic GC's passes, wherever they fall
        if phase == "start":
            collecting.append(time.perf_counter())
        else:
            spent["cyclic GC passes"] = spent.get("cyclic GC passes", 0.0) + time.perf_counter() - collecting.pop()

    runner.reset(app)
    gc.callbacks.append(collector)
    started = time.perf_counter()
    n = runner.catch_up(app, page_size=PAGE)
    elapsed = time.perf_counter() - started
    gc.callbacks.remove(collector)
    # (a phase called inside another, as load's decoding or a GC pass, is counted in both)
    spent["the rest (aggregate mutate, commit, loop)"] = elapsed - sum(
        v for k, v in spent.items() if not k.startswith(("load", "cyclic"))
    )
    queue.put((n, elapsed, spent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="the first size; the second is twice this")
    parser.add_argument("--loans-per-day", type=int, default=800)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--phases", action="store_true")
    parser.add_argument("--workers", default="1,2", help="rebuilds to time, by processes (--workers N)")
    args = parser.parse_args()
    print("rebuild beside the baseline: SELECT of the stored rows + json.loads of each state, same run")
    with Stores("bench-replay-") as stores:
        for store in args.stores.split(","):
            url = stores.url(store, "bench_replay")
            for size in (args.events, 2 * args.events):
                head = in_child(fill, url, args.loans_per_day, size)
                load = load_average()
                scan = in_child(baseline_read, url)
                for workers in map(int, args.workers.split(",")):
                    m, t_rebuild, rss_rebuild, rss_part = in_child(rebuild, url, workers)
                    if scan[0] != m:
                        raise SystemExit(f"the rebuild read {m} events, the baseline {scan[0]} (head {head})")
                    part = f", largest part {rss_part:.0f} MB" if rss_part else ""  # one process has no parts
                    label = f"{store} {m} events, --workers {workers}"
                    print(compare(label, "events/s", (m, t_rebuild, rss_rebuild), scan, load) + part, flush=True)
            if args.phases:
                n, elapsed, spent = in_child(rebuild_phases, url)
                print(f"  {store}: rebuild of {n} events with timers, {n / elapsed:,.0f} ev/s; microseconds per event:")
                for name, seconds in spent.items():
                    print(f"    {seconds / n * 1e6:>6.1f}  {name}")


if __name__ == "__main__":
    main()
