"""``ledger verify`` and ``ledger checkpoint``: read the store in pages and apply eventstore/audit.py.

verify makes three passes, each a page at a time, so memory stays flat however long the log:

1. the events in (stream, version) order, one stream at a time: each stream's chain
   (eventstore/audit.py ``check_stream``) and, with a checkpoint, each stream's head then against
   the stream now (a removed tail shows there);
2. the log in notification order: recorded times never go backwards (the store stamps them at
   commit, in this order), every state is readable, and, with a checkpoint, the log digest up to
   its head;
3. the idempotency records in key order: every event has its command's record and every record
   its event. Both sides are summed into buckets by a hash of (key, stream) in passes 2 and 3;
   only when a bucket differs are the two sides read again, for the differing buckets alone, to
   name what is missing.

Rows are read as stored and decoded here: a row an attacker gave the wrong type (a state as
text or NULL, an id that is no UUID, a version that is no count) is named as ``unreadable``,
never a crash. At most MAX_PROBLEMS problems are listed; the rest are counted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.loan import LOAN_NAMESPACE
from domain.reconciliation import BankReconciliations
from eventstore.audit import (
    EDITED,
    INSERTED,
    MISDATED,
    REMOVED,
    UNREADABLE,
    Found,
    LogDigest,
    StoredRow,
    check_stream,
    hash_bytes,
    loan_id_of,
    removed_run,
)

if TYPE_CHECKING:
    from eventstore.store import LedgerRecorder

PAGE = 5000
CHECKPOINT_FORMAT = "loan-ledger checkpoint v1"
MAX_PROBLEMS = 1000  # listed; the rest are counted, so a store damaged everywhere cannot fill memory
MAX_VERSION = 2**63 - 1  # the store's versions and notification ids are 64-bit
KEY_BUCKETS = 4096  # sums of (key, stream) per bucket, on each side
MAX_DIFFERING_BUCKETS = 64  # read again to name what differs; past that, the rest is counted only
_HEX32 = re.compile(r"[0-9a-f]{32}")
_LOAN_NAMESPACE = LOAN_NAMESPACE.bytes


@dataclass
class VerifyReport:
    events: int = 0
    streams: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0  # every problem found, listed or not

    @property
    def ok(self) -> bool:
        return self.total == 0

    def add(self, item: dict[str, Any]) -> dict[str, Any]:
        self.total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(item)
        return item

    def as_json(self) -> dict[str, Any]:
        if self.ok:
            return {"ok": True, "events": self.events, "streams": self.streams}
        out = {"ok": False, "events": self.events, "streams": self.streams, "problems": self.problems}
        if self.total > len(self.problems):
            out["more_problems"] = self.total - len(self.problems)
        return out


def _echo(value: Any) -> str:
    """A stored value quoted in a message: escaped, and short, whatever an attacker put there."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _stream_bytes(raw: Any) -> bytes | None:
    """The 16 bytes of a stored stream id (no UUID object: the log pass reads every event)."""
    if isinstance(raw, UUID):
        return raw.bytes
    if isinstance(raw, str) and _HEX32.fullmatch(raw):
        return bytes.fromhex(raw)
    return None


def _loan_stream(loan_id: str) -> bytes:
    """``loan_uuid(loan_id).bytes`` (a UUID 5), without building two UUID objects a record."""
    raw = bytearray(hashlib.sha1(_LOAN_NAMESPACE + loan_id.encode("utf-8")).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return bytes(raw)


def _stream(raw: Any) -> UUID | None:
    if isinstance(raw, UUID):
        return raw
    if isinstance(raw, str) and _HEX32.fullmatch(raw):
        return UUID(raw)
    return None


def _version(raw: Any) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= MAX_VERSION:
        return raw
    return None


def _state(raw: Any) -> bytes | None:
    return bytes(raw) if isinstance(raw, (bytes, bytearray, memoryview)) else None


def _row(raw: tuple[Any, ...], version: int) -> StoredRow:
    """One stored row of a stream as verify checks it; ``unreadable`` when a column has the wrong type."""
    _, _, topic, state, nid, hash_value = raw
    why = None
    if hash_value is not None and hash_bytes(hash_value) is None:
        why = f"its chain hash {_echo(hash_value)} is not 64 hex digits"
    elif state is not None and _state(state) is None:
        why = f"its state is {type(state).__name__}, not bytes"
    elif state is not None and not isinstance(topic, str):
        why = f"its topic is {_echo(topic)}, not text"
    elif state is None and topic is not None:
        why = "its state is missing (NULL)"
    return StoredRow(
        version,
        topic if isinstance(topic, str) else None,
        _state(state),
        nid if isinstance(nid, int) else None,
        hash_value if why is None else (hash_value if hash_bytes(hash_value) is not None else None),
        why,
    )


@dataclass
class _Stream:
    oid: UUID
    rows: list[StoredRow]
    unplaced: list[tuple[Any, Any]]  # (version as stored, notification id) of rows whose version is no count


def _streams(recorder: LedgerRecorder, page: int, report: VerifyReport) -> Iterator[_Stream]:
    """Each stream's rows in version order, streams in id order, read a page at a time. A row whose
    stream id is no UUID belongs to no stream: it is named here and skipped."""
    current: Any = object()
    stream: _Stream | None = None
    after = None
    while events := recorder.audit_events_page(after, page):
        for raw in events:
            raw_oid, raw_version = raw[0], raw[1]
            report.events += 1
            if raw_oid != current:
                if stream is not None:
                    yield stream
                current, stream = raw_oid, None
                oid = _stream(raw_oid)
                if oid is not None:
                    stream = _Stream(oid, [], [])
            if stream is None:
                report.add(
                    {
                        "loan_id": None,
                        "version": _version(raw_version),
                        "problem": UNREADABLE,
                        "notification_id": raw[4],
                        "detail": f"its stream id {_echo(raw_oid)} is not a loan's stream id",
                    }
                )
                continue
            version = _version(raw_version)
            if version is None:
                stream.unplaced.append((raw_version, raw[4]))
            else:
                stream.rows.append(_row(raw, version))
        after = (events[-1][0], events[-1][1])
    if stream is not None:
        yield stream


def verify(
    recorder: LedgerRecorder,
    checkpoint: dict[str, Any] | None = None,
    *,
    page: int = PAGE,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    report = VerifyReport()
    heads = iter(checkpoint["heads"] if checkpoint else ())
    head = next(heads, None)
    unnamed: list[dict[str, Any]] = []  # problems of streams whose created event is gone

    named = _Named()

    def add(oid: UUID, loan_id: str | None, found: Found, detail: str | None = None) -> None:
        version, problem, through = found
        named.note(oid, found)
        item: dict[str, Any] = {"loan_id": loan_id, "version": version, "problem": problem}
        if through != version:
            item["through"] = through
        if detail:
            item["detail"] = detail
        report.add(item)
        if loan_id is None and len(unnamed) < MAX_PROBLEMS:
            item["stream"] = str(oid)
            unnamed.append(item)

    def removed_streams_before(oid: UUID | None) -> None:
        nonlocal head
        while head is not None and (oid is None or UUID(head[0]) < oid):
            for found in removed_run(1, head[2]):
                add(UUID(head[0]), head[1], found)
            head = next(heads, None)

    for stream in _streams(recorder, page, report):
        oid, rows = stream.oid, stream.rows
        report.streams += 1
        first = rows[0] if rows else None
        loan_id = loan_id_of(first.state) if first and first.version == 1 and first.state is not None else None
        found = check_stream(oid, rows)
        removed_streams_before(oid)
        if head is not None and UUID(head[0]) == oid:
            loan_id = loan_id or head[1]
            found += _against_head(rows, head[2], head[3], found)
            head = next(heads, None)
        why = {r.version: r.unreadable for r in rows if r.unreadable}
        for item in sorted(found):
            add(oid, loan_id, item, why.get(item[0]) if item[1] == UNREADABLE else None)
        for raw_version, nid in stream.unplaced:
            detail = f"its version {_echo(raw_version)} is not a version (1 to {MAX_VERSION})"
            _add_for_stream(report, unnamed, oid, None, UNREADABLE, detail, nid, loan_id)
        if progress:
            progress(len(rows) + len(stream.unplaced))
    removed_streams_before(None)

    log = _check_log(recorder, report, checkpoint["head"] if checkpoint else None, page, unnamed, named)
    _check_keys(recorder, report, log, page, unnamed, named)
    if unnamed:
        _name_loans(recorder, unnamed, page)
    if checkpoint and report.ok and log.digest is not None and log.digest.hexdigest() != checkpoint["digest"]:
        report.add({"loan_id": None, "version": None, "problem": "log differs from the checkpoint's digest"})
    return report


def _against_head(rows: list[StoredRow], version: int, hash_hex: str | None, found: list[Found]) -> list[Found]:
    """The stream now against its head at the checkpoint: a removed tail, or a head rewritten whole.
    Gaps between the rows now were found by check_stream already (``found``)."""
    last = max((r.version for r in rows), default=0)
    problems = removed_run(last + 1, version) if version > last else []
    at = next((r for r in rows if r.version == version), None)
    named = any(first <= version <= through for first, _, through in found)
    if at is not None and at.hash is not None and at.hash != hash_hex and not named:
        # the stream's chain was rewritten consistently: only the checkpoint can tell
        problems.append((version, EDITED, version))
    return problems


# ---- pass 2: the log in notification order ------------------------------------------------
@dataclass
class _Log:
    digest: LogDigest | None
    sums: list[int]  # per bucket, the sum of (key, stream) elements of the events
    counts: list[int]


def _element(key: str, stream: bytes) -> tuple[int, int]:
    """(bucket, value) of one (key, stream) pair; ``stream`` is the stream id's 16 bytes."""
    d = hashlib.sha256(key.encode("utf-8", "surrogatepass") + b"\0" + stream).digest()
    return int.from_bytes(d[:4], "big") % KEY_BUCKETS, int.from_bytes(d[4:20], "big")


def _decoded(state: bytes) -> tuple[datetime, str] | str:
    """The recorded time and idempotency key in an event's state, or why they cannot be read."""
    try:
        data = json.loads(state)
    except (ValueError, RecursionError):
        return "its state is not JSON"
    if not isinstance(data, dict):
        return "its state is not a JSON object"
    stamp = data.get("timestamp")
    text = stamp.get("_data_") if isinstance(stamp, dict) else None
    try:
        recorded = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        recorded = None
    if recorded is None or recorded.utcoffset() is None:
        return "its state has no recorded time"
    key = data.get("idempotency_key")
    if not isinstance(key, str) or not key:
        return NO_KEY
    return recorded, key


NO_KEY = "its state has no idempotency key"


def _keyless_stream(stream: bytes, version: int, state: bytes, keyless: set[bytes]) -> bool:
    """Whether the event is of a bank's reconciliation runs, whose events are recorded without a command
    and so without an idempotency key: its stream is the one its first event's bank names."""
    if stream in keyless:
        return True
    if version != 1:
        return False
    bank = json.loads(state).get("bank")
    if isinstance(bank, str) and BankReconciliations.create_id(bank).bytes == stream:
        keyless.add(stream)
        return True
    return False


def _log_rows(recorder: LedgerRecorder, page: int) -> Iterator[tuple[Any, ...]]:
    after = 0
    while rows := recorder.audit_log_page(after, MAX_VERSION, page, states=True):
        yield from rows
        after = rows[-1][0]


def _check_log(
    recorder: LedgerRecorder,
    report: VerifyReport,
    head: int | None,
    page: int,
    unnamed: list[dict[str, Any]],
    named: _Named,
) -> _Log:
    log = _Log(LogDigest() if head is not None else None, [0] * KEY_BUCKETS, [0] * KEY_BUCKETS)
    before: datetime | None = None
    keyless: set[bytes] = set()  # streams whose events carry no idempotency key by design
    for nid, raw_oid, raw_version, raw_hash, raw_state in _log_rows(recorder, page):
        if log.digest is not None and head is not None and nid <= head:
            log.digest.add("00" * 32 if raw_hash is None else raw_hash)
        stream, version, state = _stream_bytes(raw_oid), _version(raw_version), _state(raw_state)
        if raw_oid is None or raw_version is None:  # no stream or version at all: the first pass cannot see it
            report.events += 1
            report.add(
                {
                    "loan_id": None,
                    "version": None,
                    "problem": UNREADABLE,
                    "notification_id": nid,
                    "detail": "its stream id or version is missing (NULL)",
                }
            )
            continue
        if stream is None or version is None or state is None:
            continue  # named by the first pass
        decoded = _decoded(state)
        if decoded == NO_KEY and _keyless_stream(stream, version, state, keyless):
            continue  # a bank's reconciliation runs: its chain proves it, it has no commands' keys to prove
        if isinstance(decoded, str):
            _add_for_stream(report, unnamed, UUID(bytes=stream), version, UNREADABLE, decoded, nid)
            named.note(UUID(bytes=stream), (version, UNREADABLE, version))
            continue
        recorded, key = decoded
        if before is not None and recorded < before:
            detail = (
                f"recorded at {recorded.astimezone(UTC).isoformat()}, before the event logged ahead of it "
                f"({before.astimezone(UTC).isoformat()}): the ledger stamps times in log order, so it was "
                "written around the ledger"
            )
            _add_for_stream(report, unnamed, UUID(bytes=stream), version, MISDATED, detail, nid)
        before = recorded
        bucket, value = _element(key, stream)
        log.sums[bucket] = (log.sums[bucket] + value) % 2**128
        log.counts[bucket] += 1
    return log


def _add_for_stream(
    report: VerifyReport,
    unnamed: list[dict[str, Any]],
    oid: UUID,
    version: int | None,
    problem: str,
    detail: str,
    nid: Any,
    loan_id: str | None = None,
) -> None:
    """A problem found by stream id; ``unnamed`` collects those whose loan id is to be looked up."""
    item = report.add(
        {"loan_id": loan_id, "version": version, "problem": problem, "detail": detail, "notification_id": nid}
    )
    if loan_id is None:
        item["stream"] = str(oid)
        if len(unnamed) < MAX_PROBLEMS:
            unnamed.append(item)


# ---- pass 3: the idempotency records -----------------------------------------------------------
def _records(recorder: LedgerRecorder, page: int) -> Iterator[tuple[str, str, bytes]]:
    """(key, loan id, the loan's stream id as 16 bytes) of every idempotency record."""
    after = None
    while rows := recorder.audit_keys_page(after, page):
        for key, loan_id in rows:
            yield key, loan_id, _loan_stream(loan_id)
        after = rows[-1][0]


@dataclass
class _Named:
    """What the first passes named, so the key check does not name the same tamper again: the
    versions named per stream, and how many versions of each stream were found removed or
    unreadable (an event whose key cannot be read leaves its record without an event)."""

    versions: set[tuple[UUID, int]] = field(default_factory=set)
    removed: dict[UUID, int] = field(default_factory=dict)

    def note(self, oid: UUID, found: Found) -> None:
        version, problem, through = found
        if len(self.versions) < 10 * MAX_PROBLEMS:
            self.versions.add((oid, version))
        if problem in (REMOVED, UNREADABLE) and (oid in self.removed or len(self.removed) < 10 * MAX_PROBLEMS):
            self.removed[oid] = self.removed.get(oid, 0) + through - version + 1


def _check_keys(
    recorder: LedgerRecorder, report: VerifyReport, log: _Log, page: int, unnamed: list[dict[str, Any]], named: _Named
) -> None:
    """Every event's key has its record and every record its event, as multisets of (key, stream)."""
    sums, counts = [0] * KEY_BUCKETS, [0] * KEY_BUCKETS
    for key, _, record_stream in _records(recorder, page):
        bucket, value = _element(key, record_stream)
        sums[bucket] = (sums[bucket] + value) % 2**128
        counts[bucket] += 1
    differing = [b for b in range(KEY_BUCKETS) if (sums[b], counts[b]) != (log.sums[b], log.counts[b])]
    if not differing:
        return
    looked_at = set(differing[:MAX_DIFFERING_BUCKETS])
    events: dict[tuple[str, bytes], list[tuple[Any, int]]] = {}  # (key, stream) -> [(notification id, version)]
    for nid, raw_oid, raw_version, _, raw_state in _log_rows(recorder, page):
        stream, version, state = _stream_bytes(raw_oid), _version(raw_version), _state(raw_state)
        decoded = _decoded(state) if stream and version and state is not None else "unread"
        if stream is None or version is None or isinstance(decoded, str):
            continue
        if _element(decoded[1], stream)[0] in looked_at:
            events.setdefault((decoded[1], stream), []).append((nid, version))
    missing: dict[bytes, list[tuple[str, str]]] = {}
    for key, loan_id, record_stream in _records(recorder, page):
        if _element(key, record_stream)[0] not in looked_at:
            continue
        found = events.get((key, record_stream))
        if found:
            found.pop(0)  # the first event logged with the key is the one the record was written with
        else:
            missing.setdefault(record_stream, []).append((key, loan_id))
    for stream_id, records in missing.items():
        if len(records) <= named.removed.get(UUID(bytes=stream_id), 0):
            continue  # as many versions of the stream were named removed already
        for key, loan_id in records:
            detail = f"the command with idempotency key {_echo(key)} was accepted, but its event is gone"
            item = {"loan_id": loan_id, "version": None, "problem": REMOVED, "detail": detail, "idempotency_key": key}
            report.add(item)
    extra = sorted((nid, version, key, stream_id) for (key, stream_id), rest in events.items() for nid, version in rest)
    for nid, version, key, stream_id in extra:
        oid = UUID(bytes=stream_id)
        if (oid, version) not in named.versions:
            detail = f"no idempotency record of its own for its key {_echo(key)}: the ledger writes both or neither"
            _add_for_stream(report, unnamed, oid, version, INSERTED, detail, nid)
    if len(differing) > len(looked_at):
        report.add(
            {
                "loan_id": None,
                "version": None,
                "problem": "events and idempotency records differ in more places than were listed",
            }
        )


def _name_loans(recorder: LedgerRecorder, items: list[dict[str, Any]], page: int) -> None:
    """Loan ids for problems known by stream only, from the idempotency records."""
    wanted = {UUID(i["stream"]).bytes for i in items if i.get("loan_id") is None}
    names: dict[bytes, str] = {}
    for _, loan_id, stream in _records(recorder, page):
        if stream in wanted:
            names[stream] = loan_id
    for item in items:
        item["loan_id"] = item.get("loan_id") or names.get(UUID(item["stream"]).bytes)
        if item["loan_id"] is not None:
            del item["stream"]


# ---- checkpoints ----------------------------------------------------------------------------
def log_digest(
    recorder: LedgerRecorder, head: int, *, page: int = PAGE, progress: Callable[[int], None] | None = None
) -> tuple[LogDigest, dict[UUID, list[Any]]]:
    """The digest over the log up to ``head``, and each stream's head as [id, loan, version, hash]."""
    digest = LogDigest()
    heads: dict[UUID, list[Any]] = {}
    after = 0
    while rows := recorder.audit_log_page(after, head, page):
        for _nid, raw_oid, raw_version, hash_hex, created_state in rows:
            digest.add("00" * 32 if hash_hex is None else hash_hex)
            oid, version = _stream(raw_oid), _version(raw_version)
            if oid is None or version is None:
                continue  # a row no stream can own: `verify` names it
            entry = heads.setdefault(oid, [oid.hex, None, 0, None])
            state = _state(created_state)
            if state is not None:
                entry[1] = loan_id_of(state)
            entry[2:] = [version, hash_hex if hash_bytes(hash_hex) is not None else None]
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


class BadCheckpoint(ValueError):
    """Not a checkpoint written by `ledger checkpoint`: what is wrong with it, and where."""


def check_checkpoint(data: Any) -> dict[str, Any]:
    """``data`` (parsed JSON) as a checkpoint verify can use, or BadCheckpoint naming the first fault.

    Every number is bounded by what a store can hold: a head of 10^30 or a loan of 10^6 versions
    in a log of 12 events is no checkpoint, and would otherwise cost verify memory and time.
    """
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise BadCheckpoint(f"its format is not {CHECKPOINT_FORMAT!r}")
    head = data.get("head")
    if not isinstance(head, int) or isinstance(head, bool) or not 0 <= head <= MAX_VERSION:
        raise BadCheckpoint(f"head {_echo(head)} is not a notification id (0 to {MAX_VERSION})")
    digest = data.get("digest")
    if not isinstance(digest, str) or hash_bytes(digest) is None:
        raise BadCheckpoint(f"digest {_echo(digest)} is not 64 hex digits")
    heads = data.get("heads")
    if not isinstance(heads, list):
        raise BadCheckpoint("heads is not a list")
    if len(heads) > head:
        raise BadCheckpoint(f"{len(heads)} loans' heads, more than the {head} events it covers")
    last = ""
    for i, entry in enumerate(heads):
        where = f"heads[{i}]"
        if not isinstance(entry, list) or len(entry) != 4:
            raise BadCheckpoint(f"{where} is not [stream, loan id, version, hash]")
        stream, loan_id, version, hash_hex = entry
        if not isinstance(stream, str) or not _HEX32.fullmatch(stream):
            raise BadCheckpoint(f"{where}: stream {_echo(stream)} is not 32 hex digits")
        if stream <= last:
            raise BadCheckpoint(f"{where}: stream {stream} is not after the one before it (they are sorted)")
        last = stream
        if loan_id is not None and not (isinstance(loan_id, str) and 0 < len(loan_id) <= 64):
            raise BadCheckpoint(f"{where}: loan id {_echo(loan_id)} is not a loan id")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= head:
            raise BadCheckpoint(f"{where}: version {_echo(version)} is not between 1 and the head, {head}")
        if hash_hex is not None and hash_bytes(hash_hex) is None:
            raise BadCheckpoint(f"{where}: hash {_echo(hash_hex)} is not 64 hex digits")
    return data
