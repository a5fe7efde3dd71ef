"""Long lists of values are matched a chunk at a time (eventstore/sql.py ``in_chunks``), on both stores."""

from __future__ import annotations

import pytest

from eventstore.sql import IN_CHUNK, StoreSql, in_chunks
from eventstore.store import KeyRecord

MANY = 2 * IN_CHUNK + 1  # three chunks, the last of one value


def test_a_long_list_is_split_into_chunks_of_the_named_size():
    values = [f"k{i}" for i in range(MANY)]
    sqlite = list(in_chunks("key", values))
    assert [len(params) for _, params in sqlite] == [IN_CHUNK, IN_CHUNK, 1]
    assert [v for _, params in sqlite for v in params] == values
    assert sqlite[-1] == ("key IN (?)", ["k1000"])
    postgres = list(in_chunks("key", values, postgres=True))
    assert [where for where, _ in postgres] == ["key = ANY(?)"] * 3
    assert [v for _, (chunk,) in postgres for v in chunk] == values
    assert list(in_chunks("key", [])) == []
    with pytest.raises(ValueError, match="at least one value"):
        list(in_chunks("key", values, size=0))


def test_every_key_of_a_list_longer_than_a_chunk_is_found(ledger):
    """The idempotency keys an append batch looks up: none lost at a chunk's edge, on either store."""
    stored = [KeyRecord(f"key-{i:05d}", f"L{i}", f"hash{i}", "repaid") for i in range(MANY)]
    with StoreSql(ledger.recorder.datastore).transaction() as c:
        c.executemany(
            "INSERT INTO ledger_idempotency VALUES (?,?,?,?)",
            [(r.key, r.loan_id, r.content_hash, r.command) for r in stored],
        )
    asked = [r.key for r in stored] + ["key-unknown"]
    assert ledger.recorder.find_keys(asked) == {r.key: r for r in stored}
    with StoreSql(ledger.recorder.datastore).transaction(commit=False) as c:
        found = [
            row
            for where, params in in_chunks("key", asked, c.postgres)
            for row in c.query(f"SELECT key, loan_id FROM ledger_idempotency WHERE {where}", params)
        ]
    assert sorted(found) == sorted((r.key, r.loan_id) for r in stored)
