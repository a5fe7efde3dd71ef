"""``ledger verify`` and ``ledger checkpoint``: read the store in pages and apply ledger/audit.py.

verify walks the events in (stream, version) order, one stream at a time, so
memory stays flat however long the log. With a checkpoint it
also compares each stream's head then with the stream now (a removed tail shows
there), and recomputes the log digest up to the checkpoint's head.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.loan import loan_uuid
from ledger.audit import EDITED, REMOVED, LogDigest, StoredRow, check_stream, loan_id_of

if TYPE_CHECKING:
    from ledger.store import LedgerRecorder

PAGE = 5000
CHECKPOINT_FORMAT = "loan-ledger checkpoint v1"


@dataclass
class Report:
    events: int = 0
    streams: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "events": self.events, "streams": self.streams}
        return {"ok": False, "events": self.events, "streams": self.streams, "problems": self.problems}


def _streams(recorder: LedgerRecorder, page: int) -> Iterator[tuple[UUID, list[StoredRow]]]:
    """Each stream's rows in version order, streams in id order, read a page at a time."""
    current: UUID | None = None
    rows: list[StoredRow] = []
    after = None
    while events := recorder.audit_events_page(after, page):
        for oid, version, topic, state, nid, hash_hex in events:
            if oid != current:
                if current is not None:
                    yield current, rows
                current, rows = oid, []
            rows.append(StoredRow(version, topic, state, nid, hash_hex))
        after = (events[-1][0], events[-1][1])
    if current is not None:
        yield current, rows


def verify(
    recorder: LedgerRecorder,
    checkpoint: dict[str, Any] | None = None,
    *,
    page: int = PAGE,
    progress: Callable[[int], None] | None = None,
) -> Report:
    report = Report()
    heads = iter(checkpoint["heads"] if checkpoint else ())
    head = next(heads, None)
    unnamed: list[dict[str, Any]] = []  # problems of streams whose created event is gone

    def add(oid: UUID, loan_id: str | None, version: int | None, problem: str) -> None:
        item = {"loan_id": loan_id, "version": version, "problem": problem}
        report.problems.append(item)
        if loan_id is None:
            item["stream"] = str(oid)
            unnamed.append(item)

    def removed_streams_before(oid: UUID | None) -> None:
        nonlocal head
        while head is not None and (oid is None or UUID(head[0]) < oid):
            for v in range(1, head[2] + 1):
                add(UUID(head[0]), head[1], v, REMOVED)
            head = next(heads, None)

    for oid, rows in _streams(recorder, page):
        report.streams += 1
        report.events += sum(r.has_event for r in rows)
        first = rows[0]
        loan_id = loan_id_of(first.state) if first.version == 1 and first.state is not None else None
        found = check_stream(oid, rows)
        removed_streams_before(oid)
        if head is not None and UUID(head[0]) == oid:
            loan_id = loan_id or head[1]
            found += _against_head(rows, head[2], head[3], {v for v, _ in found})
            head = next(heads, None)
        for version, problem in sorted(found):
            add(oid, loan_id, version, problem)
        if progress:
            progress(len(rows))
    removed_streams_before(None)
    if unnamed:
        _name_loans(recorder, unnamed)
    if checkpoint and not report.problems:
        digest = log_digest(recorder, checkpoint["head"], page=page)[0]
        if digest.hexdigest() != checkpoint["digest"]:
            report.problems.append(
                {"loan_id": None, "version": None, "problem": "log differs from the checkpoint's digest"}
            )
    return report


def _against_head(rows: list[StoredRow], version: int, hash_hex: str, known: set[int]) -> list[tuple[int, str]]:
    """The stream now against its head at the checkpoint."""
    by_version = {r.version: r for r in rows}
    problems = [(v, REMOVED) for v in range(1, version + 1) if v not in by_version and v not in known]
    at = by_version.get(version)
    if at is not None and at.hash is not None and at.hash != hash_hex and version not in known:
        # the stream's chain was rewritten consistently: only the checkpoint can tell
        problems.append((version, EDITED))
    return problems


def _name_loans(recorder: LedgerRecorder, items: list[dict[str, Any]]) -> None:
    """Loan ids for streams that lost their created event, from the idempotency records."""
    wanted = {UUID(i["stream"]) for i in items}
    names: dict[UUID, str] = {}
    for loan_id in recorder.audit_loan_ids():
        oid = loan_uuid(loan_id)
        if oid in wanted:
            names[oid] = loan_id
    for item in items:
        item["loan_id"] = names.get(UUID(item["stream"]))


def log_digest(
    recorder: LedgerRecorder, head: int, *, page: int = PAGE, progress: Callable[[int], None] | None = None
) -> tuple[LogDigest, dict[UUID, list[Any]]]:
    """The digest over the log up to ``head``, and each stream's head as [id, loan, version, hash]."""
    digest = LogDigest()
    heads: dict[UUID, list[Any]] = {}
    after = 0
    while rows := recorder.audit_log_page(after, head, page):
        for _nid, oid, version, hash_hex, created_state in rows:
            digest.add(hash_hex or "00" * 32)
            entry = heads.setdefault(oid, [oid.hex, None, 0, None])
            if created_state is not None:
                entry[1] = loan_id_of(created_state)
            entry[2:] = [version, hash_hex]
        after = rows[-1][0]
        if progress:
            progress(len(rows))
    return digest, heads


def make_checkpoint(recorder: LedgerRecorder, *, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    head = recorder.max_notification_id() or 0
    digest, heads = log_digest(recorder, head, progress=progress)
    return {
        "head": head,
        "digest": digest.hexdigest(),
        "at": datetime.now(UTC).isoformat(),
        "events": digest.events,
        "streams": len(heads),
        "format": CHECKPOINT_FORMAT,
        "heads": [heads[oid] for oid in sorted(heads)],
    }
