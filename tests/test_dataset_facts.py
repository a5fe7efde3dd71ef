"""The dataset's facts read stored events with the library's own decoding, as the Ledger does."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from eventsourcing.persistence import Notification

from eventstore.store import event_transcoder
from ledger.app import Ledger
from ledger.config import Settings
from projections.dataset_facts import UnknownEvent, decode_state


def test_readers_without_a_ledger_decode_as_the_ledger_does(tmp_path):
    """The export's transcoder knows the same values (names and transcodings) the store writes with
    (the transcoder does not depend on the store: SQLite stands for both)."""
    ledger = Ledger(Settings(db_url=f"sqlite:///{tmp_path}/ledger.db"))

    def known(transcoder):
        return {name: type(t).__name__ for name, t in transcoder.names.items()}

    assert known(event_transcoder()) == known(ledger.construct_transcoder())
    ledger.close()
    assert set(known(event_transcoder())) == {"uuid_hex", "decimal_str", "datetime_iso", "date_iso"}


def test_a_value_the_export_cannot_decode_is_named_not_a_traceback():
    state = {"amount": {"_type_": "money_cents", "_data_": "12345"}, "idempotency_key": "k1"}
    stored = Notification(uuid4(), 3, "domain.loan:Loan.Repaid", json.dumps(state).encode(), 17)
    with pytest.raises(UnknownEvent, match=r"'domain.loan:Loan.Repaid' version 3: .*money_cents"):
        decode_state(stored)
