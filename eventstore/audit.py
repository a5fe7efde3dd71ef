"""The audit chain: how a stored event is encoded and hashed, and how a stream is checked.

Pure: no I/O. The store writes ``chain_hash`` beside each event in the event's own
transaction; ``ledger verify`` reads events and hashes back and hands each stream
to ``check_stream``. The encoding is versioned and pinned by a golden test: a
library upgrade that changed it would make every stored chain look edited.

Encoding v1 of one stored event (all integers big-endian, unsigned):
    originator id (16 bytes of the UUID)
    version (8 bytes)
    topic length (4 bytes), topic (UTF-8)
    state length (8 bytes), state (the bytes exactly as stored; the recorded
    time is inside the state, as its ``timestamp``)
hash(event) = sha256(previous hash of the stream (32 bytes; 32 zero bytes before
version 1) || encoding), stored as 64 lowercase hex digits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

GENESIS = "00" * 32
EDITED, REMOVED, INSERTED, REORDERED = "edited", "removed", "inserted", "reordered"
UNREADABLE, MISDATED = "unreadable", "misdated"


def _header(originator_id: UUID, version: int, topic: str, state_length: int) -> bytes:
    topic_bytes = topic.encode("utf-8")
    return b"".join(
        (
            originator_id.bytes,
            version.to_bytes(8, "big"),
            len(topic_bytes).to_bytes(4, "big"),
            topic_bytes,
            state_length.to_bytes(8, "big"),
        )
    )


def encode_event(originator_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    return _header(originator_id, version, topic, len(state)) + bytes(state)


def chain_hash(previous: str, originator_id: UUID, version: int, topic: str, state: bytes) -> str:
    # fed in parts: the same bytes as previous || encode_event(...), without copying the state
    sha = hashlib.sha256(bytes.fromhex(previous))
    sha.update(_header(originator_id, version, topic, len(state)))
    sha.update(state)
    return sha.hexdigest()


def chain_batch(
    events: Iterable[tuple[UUID, int, str, bytes]], previous: dict[UUID, str]
) -> list[tuple[UUID, int, str]]:
    """Hashes for a batch of new events, given each stream's hash just before the batch.

    ``previous`` maps a stream to the hash of the version before its first event
    in the batch (absent for streams starting at version 1). Raises ValueError
    when a stream's previous hash is missing (chaining from nothing would hide a
    gap) or its events are not consecutive versions in order.
    """
    last: dict[UUID, tuple[int, str]] = {}
    rows: list[tuple[UUID, int, str]] = []
    # In the order given: a stream's events come in version order (as an aggregate's pending
    # events do; checked below), and sorting UUIDs costs as much as the hashing.
    for oid, version, topic, state in events:
        if oid in last:
            at, prev = last[oid]
            if version != at + 1:
                raise ValueError(f"stream {oid}: version {version} follows {at} in one batch")
        elif version <= 1:  # a stream's first event: 1 for every aggregate (the library's own tests use 0)
            prev = GENESIS
        elif oid in previous:
            prev = previous[oid]
        else:
            raise ValueError(f"stream {oid}: no chain hash for version {version - 1}; run `ledger verify`")
        h = chain_hash(prev, oid, version, topic, state)
        last[oid] = (version, h)
        rows.append((oid, version, h))
    return rows


@dataclass(frozen=True)
class StoredRow:
    """One version of a stream as found: the event (if present) and its chain hash (if present).

    ``unreadable`` says why a row that is there cannot be checked (its state is not bytes, its
    topic not text, its hash not text): the row is named once and its stored hash taken as it stands.
    """

    version: int
    topic: str | None = None
    state: bytes | None = None
    notification_id: int | None = None
    hash: str | None = None
    unreadable: str | None = None

    @property
    def has_event(self) -> bool:
        return self.state is not None


# A problem of one stream: (first version, kind, last version); last > first only for a run of
# more than RUN_FROM removed versions, named as one item so a version of 10^18 costs one line.
Found = tuple[int, str, int]
RUN_FROM = 16
# How far from a row that does not hash to look for the hash it chains from (a swap's partner).
SEARCH_ROWS = 64


def removed_run(first: int, last: int) -> list[Found]:
    """Versions ``first``..``last`` removed: one item each, or one for the run when it is long."""
    if last - first + 1 > RUN_FROM:
        return [(first, REMOVED, last)]
    return [(v, REMOVED, v) for v in range(first, last + 1)]


def check_stream(originator_id: UUID, rows: Sequence[StoredRow]) -> list[Found]:
    """Problems of one stream, rows in version order.

    A chain row without its event: removed. An event without a chain row: inserted
    (the ledger writes both or neither). A version missing from both: removed. An
    event that does not hash to its chain row: reordered if its content belongs at a
    neighbouring version (or a neighbour's content belongs here), else edited; but an
    event whose content and hash still chain from a hash stored elsewhere in the stream
    is untouched: its predecessor's hash was moved (a swap), which is named where it
    sits. Versions whose notification ids run backwards: reordered. After a gap or an
    insert the link cannot be checked, so the next stored hash is taken as it stands:
    one tamper is named once, not at every later version.
    """
    problems: list[Found] = []
    prev: str | None = GENESIS
    expected = 1
    last_nid: int | None = None
    for i, row in enumerate(rows):
        if row.version > expected:
            problems += removed_run(expected, row.version - 1)
            prev = None
        expected = row.version + 1
        if row.unreadable is not None:
            problems.append((row.version, UNREADABLE, row.version))
            prev = row.hash if hash_bytes(row.hash) is not None else None
            continue
        if row.state is None:  # no event: as has_event, spelled so the checker sees state is bytes below
            problems.append((row.version, REMOVED, row.version))
            prev = row.hash
            continue
        if row.hash is None:
            problems.append((row.version, INSERTED, row.version))
            prev = None
            continue
        kind = None
        if prev is not None and chain_hash(prev, originator_id, row.version, row.topic or "", row.state) != row.hash:
            kind = _misfit(originator_id, rows, i, prev)
        if last_nid is not None and row.notification_id is not None and row.notification_id < last_nid:
            kind = REORDERED  # recorded before the version it follows
        if kind:
            problems.append((row.version, kind, row.version))
        if row.notification_id is not None:
            last_nid = row.notification_id
        prev = row.hash
    return problems


def _misfit(originator_id: UUID, rows: Sequence[StoredRow], i: int, prev: str) -> str | None:
    """Why row ``i`` does not hash from ``prev``: REORDERED, EDITED, or None when it is untouched."""
    row = rows[i]
    state, topic = row.state or b"", row.topic or ""
    for j in (i - 1, i + 1):
        other = rows[j] if 0 <= j < len(rows) else None
        if other is not None and other.has_event:
            # the content that belongs here sits at a neighbour (its hash moved with it, or stayed)
            moved = chain_hash(prev, originator_id, row.version, other.topic or "", other.state or b"")
            if moved in (row.hash, other.hash):
                return REORDERED
    nearby = rows[max(0, i - SEARCH_ROWS) : i + SEARCH_ROWS + 1]
    hashes = {r.hash for r in nearby if r is not row and r.hash is not None and hash_bytes(r.hash) is not None}
    for before in {GENESIS, *hashes} - {prev}:
        if chain_hash(before, originator_id, row.version, topic, state) == row.hash:
            return None  # content and hash intact: its predecessor's hash sits elsewhere, named there
        for version in (row.version - 1, row.version + 1):
            if version >= 1 and chain_hash(before, originator_id, version, topic, state) == row.hash:
                return REORDERED  # this content and hash belong at a neighbouring version
    return EDITED


def loan_id_of(created_state: bytes) -> str | None:
    """The loan's own id, from its created event's state (None if unreadable)."""
    try:
        value = json.loads(created_state).get("loan_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def hash_bytes(value: object) -> bytes | None:
    """The 32 bytes of a stored chain hash, or None if ``value`` is not 64 hex digits."""
    if not isinstance(value, str) or len(value) != 64:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


class LogDigest:
    """A running sha256 over the chain hashes in notification order: the checkpoint's digest.

    Each chain hash already covers its event and everything before it in its
    stream, so this covers every event up to the head and the order they were
    recorded in.
    """

    def __init__(self) -> None:
        self._sha = hashlib.sha256(b"loan-ledger log digest v1")
        self.events = 0

    def add(self, hash_hex: object) -> None:
        """Add the next event's stored hash. A value that is not a hash (mangled, of another type) is
        mixed in as what it is: the digest then differs from the intact log's instead of failing."""
        raw = hash_bytes(hash_hex)
        self._sha.update(raw if raw is not None else b"\0not a hash:" + repr(hash_hex).encode("ascii", "replace"))
        self.events += 1

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
