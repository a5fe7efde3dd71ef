"""`ledger events export --format parquet`: the event log as a partitioned Parquet copy, for Spark.

One row per stored event, partitioned as ``bucket=BB/month=YYYY-MM/`` (BB: a stable hash of the
borrower, so one borrower's events sit in one bucket whatever day they were recorded; the month the
event was recorded in UTC), each file named by the notification ids it holds. A row carries the
notification id, the loan and borrower ids, the event's version and type, the recorded and occurred
times, the value date and amount (decimal128, exact), and the stored event itself (``data``: the
JSON exactly as stored, decimals as strings). Nothing personal: the events hold none, and the
borrower table is never read.

Incremental by notification id: a run exports the events after the highest id a finished run
already put in the directory (or after ``--after-id``), up to the head found at its start, into new
files only. A run's files are written under ``_staging/`` (which Spark and pyarrow skip: its name
starts with ``_``), listed in a manifest, then moved into place, then the run is recorded in
``_runs/``; a run stopped half way is finished (manifest written) or dropped (not) by the next one,
so no event is ever exported twice or skipped. Memory is flat: pages of the log, a bounded buffer
per partition, a bounded number of open files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.errors import LedgerError
from domain.loan import Loan
from projections.dataset_facts import decode_state  # the stored JSON, decoded as the Ledger decodes it

BUCKETS = 32  # borrower buckets: Spark's readers split by file; 32 keeps a day's files few and a bucket small
PAGE = 5000  # events read from the store at a time
FLUSH_ROWS = 20_000  # buffered rows (all partitions) before they are written as row groups
MAX_OPEN_FILES = 64  # open Parquet writers; the least recently used is closed (a later row starts a new file)
OWNERS_CACHED = 200_000  # loans whose loan and borrower ids are remembered (the rest are read from their Applied event)
STAGING = "_staging"
RUNS = "_runs"


class ExportDirError(LedgerError):
    """The export directory is not one this command wrote, or asks for a range that would duplicate events."""


def bucket_of(borrower_id: str) -> int:
    """A stable bucket for a borrower: the same on every machine and Python (not ``hash()``)."""
    return int.from_bytes(hashlib.sha256(borrower_id.encode()).digest()[:4], "big") % BUCKETS


def schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("notification_id", pa.int64(), nullable=False),
            pa.field("loan_id", pa.string(), nullable=False),
            pa.field("borrower_id", pa.string(), nullable=False),
            pa.field("version", pa.int32(), nullable=False),
            pa.field("type", pa.string(), nullable=False),
            pa.field("topic", pa.string(), nullable=False),
            pa.field("recorded_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("occurred_at", pa.timestamp("us", tz="UTC")),
            pa.field("value_date", pa.date32()),
            pa.field("amount", pa.decimal128(14, 2)),
            pa.field("data", pa.string(), nullable=False),
        ],
        metadata={"produced_by": "ledger events export --format parquet (loan-ledger)"},
    )


@dataclass(frozen=True)
class ExportReport:
    after_id: int
    head: int
    events: int
    files: int


def exported_through(out: Path) -> int:
    """The highest notification id a finished run put in ``out`` (0 for none)."""
    runs = out / RUNS
    if not runs.is_dir():
        return 0
    highest = 0
    for f in runs.glob("*.json"):
        try:
            highest = max(highest, int(json.loads(f.read_text(encoding="utf-8"))["through"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ExportDirError(f"{f} is not a run record written by this export ({e})") from None
    return highest


def recover(out: Path) -> None:
    """Finish a run whose manifest was written (move the rest of its files), or drop one whose was not."""
    staging = out / STAGING
    if not staging.exists():
        return
    manifest = staging / "manifest.json"
    if manifest.exists():
        record = json.loads(manifest.read_text(encoding="utf-8"))
        _publish(out, record)
    shutil.rmtree(staging)


def _publish(out: Path, record: dict[str, Any]) -> None:
    staging = out / STAGING
    for name in record["files"]:
        source, target = staging / name, out / name
        if source.exists():  # a file already moved by a run that stopped half way stays where it is
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    (out / RUNS).mkdir(exist_ok=True)
    run = out / RUNS / f"{record['after']:012d}-{record['through']:012d}.json"
    partial = run.with_name(run.name + ".partial")
    partial.write_text(json.dumps({k: record[k] for k in ("after", "through", "events", "files")}), encoding="utf-8")
    os.replace(partial, run)


def export_parquet(app: Any, out: Path, after_id: int | None = None) -> ExportReport:
    """Append the events after ``after_id`` (default: what ``out`` already holds) to ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    recover(out)
    done = exported_through(out)
    if after_id is None:
        after_id = done
    elif after_id < done:
        raise ExportDirError(
            f"--after-id {after_id} is below {done}, the last notification id already in {out}: "
            "the events between would be exported twice"
        )
    head = app.recorder.max_notification_id() or 0
    owners = _Owners(app.recorder)
    arrow_schema = schema()
    staging = out / STAGING
    staging.mkdir()
    buffers: dict[tuple[int, str], list[dict[str, Any]]] = {}
    writers: dict[tuple[int, str], Any] = {}  # insertion order = least recently used first
    files: list[str] = []
    buffered = events = 0

    def flush() -> None:
        nonlocal buffered
        for key, rows in buffers.items():
            writer = writers.pop(key, None)
            if writer is None:
                bucket, month = key
                name = f"bucket={bucket:02d}/month={month}/part-{rows[0]['notification_id']:012d}.parquet"
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(staging / name, arrow_schema)
                files.append(name)
            writer.write_table(pa.Table.from_pylist(rows, arrow_schema))
            writers[key] = writer  # most recently used last
            while len(writers) > MAX_OPEN_FILES:
                writers.pop(next(iter(writers))).close()
        buffers.clear()
        buffered = 0

    loan_events = get_topic(Loan) + "."  # the log also holds other aggregates' events (reconciliation runs)
    at = after_id
    try:
        while at < head:
            page = app.recorder.select_notifications(at + 1, PAGE, stop=head)
            if not page:
                break
            at = page[-1].id
            page = [note for note in page if note.topic.startswith(loan_events)]
            owners.learn(page)
            for note in page:
                loan_id, borrower_id = owners.of(note.originator_id)
                state = note.state.decode()
                body = decode_state(note)
                recorded = body["timestamp"]
                value_date = body.get("value_date") or body.get("as_of")
                amount = body.get("amount")
                row = {
                    "notification_id": note.id,
                    "loan_id": loan_id,
                    "borrower_id": borrower_id,
                    "version": note.originator_version,
                    "type": note.topic.rpartition(".")[2],
                    "topic": note.topic,
                    "recorded_at": recorded,
                    "occurred_at": body.get("occurred_at"),
                    "value_date": value_date,
                    "amount": amount,
                    "data": state,
                }
                buffers.setdefault((bucket_of(borrower_id), f"{recorded:%Y-%m}"), []).append(row)
                buffered += 1
                events += 1
                if buffered >= FLUSH_ROWS:
                    flush()
        flush()
    finally:
        for writer in writers.values():
            writer.close()
    through = max(head, after_id)
    record = {"after": after_id, "through": through, "events": events, "files": files}
    if head > after_id:  # recorded even with no loan event in the range, so the next run starts after it
        manifest = staging / "manifest.json"
        manifest.with_name("manifest.partial").write_text(json.dumps(record), encoding="utf-8")
        os.replace(staging / "manifest.partial", manifest)  # from here the run counts: recover() finishes it
        _publish(out, record)
    shutil.rmtree(staging)
    return ExportReport(after_id=after_id, head=through, events=events, files=len(files))


class _Owners:
    """Each stream's loan id and borrower id, from its Applied event (the log itself, no projection).

    An Applied event comes before the rest of its loan's events, so a page usually names its own
    owners or a recent page did; the others are read in one query a page. The cache is bounded
    (least recently used out), so memory stays flat however long the log.
    """

    def __init__(self, recorder: Any):
        self.recorder = recorder
        self.known: OrderedDict[UUID, tuple[str, str]] = OrderedDict()

    def _remember(self, stream: UUID, state: bytes) -> None:
        body = json.loads(state.decode())
        self.known[stream] = (body["loan_id"], body["borrower_id"])
        self.known.move_to_end(stream)
        while len(self.known) > OWNERS_CACHED:
            self.known.popitem(last=False)

    def learn(self, page: Any) -> None:
        for note in page:
            if note.originator_version == 1:
                self._remember(note.originator_id, note.state)
        missing = [s for s in {note.originator_id for note in page} if s not in self.known]
        if missing:
            for note in self.recorder.notifications_of(missing):
                if note.originator_version == 1:
                    self._remember(note.originator_id, note.state)

    def of(self, stream: UUID) -> tuple[str, str]:
        owner = self.known.get(stream)
        if owner is None:
            raise LedgerError(f"stream {stream} has events but no Applied event: the log is not one loan per stream")
        self.known.move_to_end(stream)
        return owner
