"""Issue 22: a training row sees what happened before its application, however history was batched.

The log stores a transaction's events in the order of the commands that produced them, and an
event of a borrower's other loan counts for an application when it precedes the application in
the log and occurred before it (docs/datasets.md).
"""

from __future__ import annotations

from support.commands import applied, approved, funded, repaid

from domain.loan import loan_uuid
from ledger.commands import command_from_dict


def _append(app, dicts):
    outcomes = app.append([command_from_dict(d) for d in dicts])
    assert {o.status for o in outcomes} == {"appended"}, outcomes


def test_one_transaction_stores_its_events_in_the_order_of_its_commands(ledger):
    batch = [
        applied("A"),
        applied("B", idempotency_key="app-B"),
        approved("A"),
        approved("B"),
        funded("A"),
        repaid("A", ref="RA", amount="100.00"),
        funded("B"),
        applied("C", idempotency_key="app-C"),
        repaid("A", ref="RA2", amount="50.00"),
    ]
    _append(ledger, batch)
    names = {"applied": "Applied", "scored": "Scored", "funded": "Funded", "repaid": "Repaid"}
    logged = [(n.originator_id, n.topic.rpartition(".")[2]) for n in ledger.notifications()]
    assert logged == [(loan_uuid(c["loan_id"]), names[c["type"]]) for c in batch]
    # and each loan's hash chain still verifies (its events kept version order)
    from ledger.verify import verify

    report = verify(ledger.recorder)
    assert report.ok and (report.events, report.streams) == (9, 3), report.as_json()
