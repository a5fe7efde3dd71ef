"""The scale run: a big book on PostgreSQL appended, rebuilt, exported and closed for a day.

    python bench/scale.py [--loans 1000000] [--days 60] [--workers 1]

Loans are applied, approved and funded over ``--days`` days (500-5,000 CNY, 7-30 days); about
70% are repaid on their due date, 10% late, the rest never. Every step runs the ledger's own
code path (what the CLI runs) in a fresh process, and reports its time, its rate and its peak
memory: the append of the whole stream through ``append_lines``, a rebuild of the book
projection, a dataset export (Parquet), and the end of day for the last day; ``--workers N``
runs the rebuild and the end of day in N processes each (peak memory is then the main
process's; each part's is about the one-process figure or less). The append and the rebuild
are each followed by bench/measure.py's baseline (the same lines by COPY / executemany into a
plain table; the log by SELECT + ``json.loads``), with the ratio and the load average; the end of day
by two: the plain read of every loan of the book (the job is run over the book, and reads only
the loans the book shows open and past due) and of the loans it read. Not part of CI:
at 1M loans it takes the better part of an hour on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from measure import (  # noqa: E402
    Stores,
    baseline_read,
    baseline_read_streams,
    baseline_write,
    compare,
    in_child,
    load_average,
    peak_rss_mb,
    stream_ids,
)

START = date(2026, 1, 1)
CENT = Decimal("0.01")  # amounts in the stream are whole fen, worked out exactly (never through float)


def stream(loans: int, days: int, seed: int = 7):
    """Commands in arrival order, as JSON lines: a day's applications, then that day's repayments."""
    rng = random.Random(seed)
    per_day = loans // days + 1
    due: dict[date, list[str]] = {}
    n = 0
    for d in range(days + 40):
        day = START + timedelta(days=d)
        at = f"{day}T10:00:00+08:00"
        for _ in range(per_day if d < days else 0):
            if n >= loans:
                break
            loan, n = f"S{n:08d}", n + 1
            principal, term = rng.randrange(5, 51) * 100, rng.randrange(7, 31)
            fee = (principal * Decimal("0.003")).quantize(CENT)
            common = {"loan_id": loan, "occurred_at": at}
            yield json.dumps(
                {
                    **common,
                    "type": "applied",
                    "idempotency_key": f"a-{loan}",
                    "borrower_id": f"U{rng.randrange(loans // 3 + 1)}",
                    "principal": f"{principal}.00",
                    "term_days": term,
                    "product": "payday",
                    "channel": "app",
                }
            )  # noqa: E501
            yield json.dumps(
                {
                    **common,
                    "type": "scored",
                    "idempotency_key": f"s-{loan}",
                    "score": f"{rng.random():.4f}",
                    "model_version": "m1",
                    "decision": "approved",
                    "principal": f"{principal}.00",
                    "term_days": term,
                    "daily_rate": "0.0005",
                    "fee": str(fee),
                    "penalty_daily_rate": "0.001",
                }
            )  # noqa: E501
            yield json.dumps(
                {
                    **common,
                    "type": "funded",
                    "idempotency_key": f"d-{loan}",
                    "bank": rng.choice(["BANKA", "BANKB", "BANKC"]),
                    "bank_ref": f"d-{loan}",
                    "amount": f"{principal}.00",
                    "value_date": day.isoformat(),
                }
            )  # noqa: E501
            fate = rng.random()
            if fate < 0.8:
                late = 0 if fate < 0.7 else rng.randrange(3, 30)
                payday = day + timedelta(days=term + late)
                owed = principal * (1 + Decimal("0.0005") * term) + fee + principal * Decimal("0.001") * late
                due.setdefault(payday, []).append(
                    json.dumps(
                        {
                            "loan_id": loan,
                            "occurred_at": f"{payday}T12:00:00+08:00",
                            "type": "repaid",
                            "idempotency_key": f"r-{loan}",
                            "bank_ref": f"r-{loan}",
                            "amount": str(owed.quantize(CENT, ROUND_HALF_UP)),
                            "value_date": payday.isoformat(),
                        }
                    )
                )  # noqa: E501
        yield from due.pop(day, [])


def append(url: str, path: str, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.ingest import append_lines, read_lines

    app = Ledger(Settings(db_url=url))
    started, counts = time.perf_counter(), {"appended": 0, "duplicate": 0, "rejected": 0}
    with open(path, "rb") as f:
        for item in append_lines(app, read_lines(f)):
            counts[item.outcome.status] += 1
    queue.put((sum(counts.values()), time.perf_counter() - started, peak_rss_mb(), counts))


def rebuild(url: str, workers: int, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from projections import runner

    app = Ledger(Settings(db_url=url))
    started = time.perf_counter()
    n = runner.rebuild(app, workers=workers)
    queue.put((n, time.perf_counter() - started, peak_rss_mb(), None))


def export(url: str, out: str, as_of: date, queue) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    started = time.perf_counter()
    result = CliRunner().invoke(cli, ["dataset", "export", "--as-of", str(as_of), "--out", out, "--json", "--db", url])
    rows = json.loads(result.output.splitlines()[-1])["rows"]
    queue.put((rows, time.perf_counter() - started, peak_rss_mb(), None))


def end_of_day(url: str, day: date, workers: int, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.eod import run_eod
    from ledger.eod_parts import run_eod_in_parts
    from projections import runner
    from projections.balances import open_loan_uuids

    app = Ledger(Settings(db_url=url))
    started = time.perf_counter()
    runner.catch_up(app)  # as `ledger eod` does
    candidates = open_loan_uuids(runner.views(app), day)
    if workers == 1:
        report = run_eod(app, day, candidates=candidates)
    else:
        report = run_eod_in_parts(app.settings, day, candidates, workers)
    queue.put((report.loans_checked, time.perf_counter() - started, peak_rss_mb(), dict(report.outcomes)))


def baseline_read_due(url: str, day: date, queue) -> None:
    """The plain read of the loans the end of day reads (those the book shows open and past due)."""
    from uuid import UUID

    from ledger.app import Ledger
    from ledger.config import Settings
    from projections import runner
    from projections.balances import open_loan_uuids

    app = Ledger(Settings(db_url=url))  # held: its pool closes with it
    due = set(open_loan_uuids(runner.views(app), day))
    baseline_read_streams(url, [i for i in stream_ids(url) if UUID(str(i)) in due], queue)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--store", default="postgres")
    parser.add_argument("--workers", type=int, default=1, help="processes for the rebuild and the end of day")
    args = parser.parse_args()
    with Stores("bench-scale-") as stores:
        url = stores.url(args.store, "scale")
        path = stores.dir / "stream.jsonl"
        with open(path, "w") as f:
            lines = sum(f.write(line + "\n") > 0 for line in stream(args.loans, args.days))
        print(
            f"{args.loans} loans, {lines} commands ({path.stat().st_size / 1e6:.0f} MB), store {args.store}, "
            f"{args.workers} worker(s) for the rebuild and the end of day"
        )
        last_day = START + timedelta(days=args.days + 39)
        steps = [
            ("append", append, (url, str(path)), "commands"),
            ("projections rebuild", rebuild, (url, args.workers), "events"),
            ("dataset export", export, (url, str(stores.dir / "rows.parquet"), last_day), "rows"),
            (f"eod {last_day}", end_of_day, (url, last_day, args.workers), "loans checked"),
        ]
        for name, fn, fn_args, unit in steps:
            load = load_average()
            n, seconds, peak_mb, detail = in_child(fn, *fn_args)
            print(f"{name:<22} {n:>10,} {unit:<14} {seconds:>8.0f} s {n / seconds:>10,.0f}/s  peak {peak_mb:,.0f} MB"
                  + (f"  {detail}" if detail else ""), flush=True)  # fmt: skip
            if name == "append":  # the baselines of bench/measure.py, in the same run
                base = in_child(baseline_write, stores.url(args.store, "scale_plain"), str(path), 500)
                print("    " + compare("append", "cmd/s", (n, seconds, peak_mb), base, load), flush=True)
            elif name == "projections rebuild":
                base = in_child(baseline_read, url)
                print("    " + compare("rebuild", "events/s", (n, seconds, peak_mb), base, load), flush=True)
            elif name.startswith("eod"):
                # Two yardsticks: the whole book (what the job is run over: it picks the loans that have
                # something due from the book, and reads only those), and the loans it read.
                book = in_child(baseline_read_streams, url, stream_ids(url))
                whole = (args.loans, seconds, peak_mb)
                print("    " + compare("eod over the book", "loans/s", whole, book, load), flush=True)
                due = in_child(baseline_read_due, url, last_day)
                print("    " + compare("eod, the loans it read", "loans/s", (n, seconds, peak_mb), due, load))


if __name__ == "__main__":
    main()
