"""The dataset on Spark beside the single-machine export, on one book built once and reused.

    python bench/spark.py [--loans 100000] [--book /tmp/bench-spark/book.db] [--masters local[1] local[2]]

Builds a SQLite book with bench/dataset.py's fill (five loans per borrower, each with history) the
first time, and reuses it after (``--book``). Then, each in its own process: the single-machine
export (``rows`` + ``write``), the Parquet event export (``ledger events export --format parquet``),
and the Spark engine in each master given. Prints rows/s and peak memory: for the single-machine
export and the event export the process's own peak; for Spark the peak of the whole process tree
(the driver's Python, the JVM and its Python workers), sampled every 0.2 s, and the JVM's own peak.
Checks that Spark's rows are the single-machine rows (same count, same loan ids). The machine is
shared: the load average is printed before and after each figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from measure import in_child, peak_rss_mb  # noqa: E402

AS_OF = date(2026, 12, 31)
KNOWN_AT = datetime(2100, 1, 1, tzinfo=UTC)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and every process below it, now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def _jvm_peak_mb(root: int) -> float:
    best = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
                if "\nName:\tjava" not in "\n" + status:
                    continue
                ppid = int(next(x for x in status.splitlines() if x.startswith("PPid:")).split()[1])
                if ppid == root:
                    hwm = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
                    best = max(best, int(hwm.split()[1]) / 1024)
            except (OSError, StopIteration, ValueError):
                continue
    return best


def fill_book(url: str, loans: int, queue) -> None:
    from dataset import fill

    fill(url, 0, loans, queue)


def single(url: str, out: str, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from projections import runner
    from projections.dataset import rows
    from projections.dataset_writers import write

    app = Ledger(Settings(db_url=url))
    runner.catch_up(app)
    started = time.perf_counter()
    n = write(rows(app, AS_OF, KNOWN_AT), out, "parquet", AS_OF, KNOWN_AT)
    queue.put((n, time.perf_counter() - started, peak_rss_mb()))


def events(url: str, out: str, queue) -> None:
    from ledger.app import Ledger
    from ledger.config import Settings
    from projections.event_export import export_parquet

    app = Ledger(Settings(db_url=url))
    started = time.perf_counter()
    report = export_parquet(app, Path(out))
    queue.put((report.events, time.perf_counter() - started, peak_rss_mb()))


def spark(events_dir: str, out: str, master: str, partitions: int, queue) -> None:
    from projections import spark_dataset

    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss_mb(os.getpid()))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started_session = time.perf_counter()
    session = spark_dataset.session(master, partitions)
    session.range(1).count()  # the JVM and a first task up: start-up is reported apart
    started = time.perf_counter()
    n = spark_dataset.export(events_dir, out, AS_OF, KNOWN_AT, master, partitions)
    elapsed = time.perf_counter() - started
    jvm = _jvm_peak_mb(os.getpid())
    stop.set()
    sampler.join()
    session.stop()
    queue.put((n, elapsed, started - started_session, peak[0], jvm))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument("--book", default="/tmp/bench-spark/book.db", help="a SQLite book, built once and reused")
    parser.add_argument("--masters", nargs="+", default=["local[1]", "local[2]"])
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    book = Path(args.book)
    url = f"sqlite:///{book}"
    if not book.exists():
        book.parent.mkdir(parents=True, exist_ok=True)
        print(f"building the book: {args.loans} loans in {book} (once; reused after) ... load {load()}", flush=True)
        in_child(fill_book, url, args.loans)
    work = book.parent / "out"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    print(f"load before: {load()}", flush=True)
    n, t, rss = in_child(single, url, str(work / "single.parquet"))
    print(f"single-machine export: {n} rows in {t:.1f} s, {n / t:,.0f} rows/s, peak {rss:.0f} MB (load {load()})")
    e, t, rss = in_child(events, url, str(work / "events"))
    print(f"events export (parquet): {e} events in {t:.1f} s, {e / t:,.0f} events/s, peak {rss:.0f} MB (load {load()})")
    import pyarrow.parquet as pq

    expected = sorted(pq.read_table(work / "single.parquet", columns=["loan_id"])["loan_id"].to_pylist())
    for master in args.masters:
        out = work / f"spark-{master.replace('[', '').replace(']', '')}"
        rows, t, startup, tree, jvm = in_child(spark, str(work / "events"), str(out), master, args.partitions)
        got = sorted(pq.read_table(out, columns=["loan_id"])["loan_id"].to_pylist())
        same = "same loans" if got == expected else "DIFFERENT loans"
        print(
            f"spark {master}: {rows} rows in {t:.1f} s ({startup:.1f} s to start), {rows / t:,.0f} rows/s, "
            f"peak {tree:.0f} MB for the process tree (JVM {jvm:.0f} MB), {same} (load {load()})",
            flush=True,
        )


if __name__ == "__main__":
    main()
