"""The append path stores the same bytes as before it was made faster (time stamps aside).

tests/support/stored_golden.jsonl was written by the path as it stood before the parsing and
event-creation speed-ups; every outcome, event state and idempotency fingerprint must match it.
"""

from __future__ import annotations

import json

from support.stored_golden import GOLDEN, stored


def test_a_fixed_input_stores_the_golden_bytes(ledger):
    expected = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines()]
    got = stored(ledger)
    assert len(got) == len(expected)
    for want, have in zip(expected, got, strict=True):
        assert have == want
