"""What the benchmarks share: run a measurement in a fresh process and read its own peak memory."""

from __future__ import annotations

import multiprocessing
from datetime import date


def peak_rss_mb() -> float:
    """This process's peak resident memory.

    Not ``ru_maxrss``: on Linux it survives exec, so a spawned child would report
    at least its parent's size at fork time. ``VmHWM`` belongs to the process's
    own address space, which exec replaced.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def in_child(target, *args):
    """Run ``target(*args, queue)`` in a fresh process; return what it put on the queue."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"{target.__name__} failed with exit code {proc.exitcode}")
    return result


class Stores:
    """Empty stores for a benchmark: SQLite files, or databases on a throwaway PostgreSQL server
    started on first need and stopped when the benchmark ends."""

    def __init__(self, prefix: str):
        import tempfile
        from pathlib import Path

        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.server = None

    def url(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.dir}/{name}.db"
        if self.server is None:
            from pgserver import ThrowawayPostgres

            self.server = ThrowawayPostgres().__enter__()
        return self.server.create_database(name)

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.__exit__(None, None, None)


def new_loan(loan: str, borrower: str, day: date, *, bank: str = "BANKA", funding_ref: str | None = None) -> list[dict]:
    """One loan applied, approved and funded on ``day`` (1,000.00 for 14 days at 0.0005 a day, fee
    5.00: 1,012.00 repays it on the due date): the opening three commands of every bench's book."""
    at = f"{day}T10:00:00+08:00"
    common = {"loan_id": loan, "occurred_at": at}
    terms = {"principal": "1000.00", "term_days": 14}
    ref = funding_ref or f"d-{loan}"
    return [
        {**common, "type": "applied", "idempotency_key": f"a-{loan}", "borrower_id": borrower, **terms,
         "product": "payday", "channel": "app"},
        {**common, "type": "scored", "idempotency_key": f"s-{loan}", "score": "0.71", "model_version": "m1",
         "decision": "approved", **terms, "daily_rate": "0.0005", "fee": "5.00", "penalty_daily_rate": "0.001"},
        {**common, "type": "funded", "idempotency_key": ref, "bank": bank, "bank_ref": ref, "amount": "1000.00",
         "value_date": day.isoformat()},
    ]  # fmt: skip
