"""Issue 22: a training row sees what happened before its application, however history was batched.

The log stores a transaction's events in the order of the commands that produced them, and an
event of a borrower's other loan counts for an application when it precedes the application in
the log and occurred before it (docs/datasets.md).
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal as D
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st
from support.commands import applied, approved, declined, funded, repaid

from domain.loan import loan_uuid
from ledger.commands import command_from_dict

LATER = datetime(2100, 1, 1, tzinfo=UTC)


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


# ---- the training rows: the same however the history was batched -------------------------------------
def _export(store_url, out):
    """`ledger dataset export --format csv`, read back: {loan_id: row of text}."""
    from click.testing import CliRunner

    from cli.main import cli

    result = CliRunner().invoke(cli, ["dataset", "export", "--as-of", "2026-12-31", "--format", "csv", "--out", out,
                                      "--known-at", LATER.isoformat(), "--db", store_url])  # fmt: skip
    assert result.exit_code == 0, result.output
    with open(out, encoding="utf-8") as f:
        return {r["loan_id"]: r for r in csv.DictReader(f)}


def test_a_first_loan_and_a_second_application_in_one_append_give_the_rows_of_two_appends(new_store, tmp_path):
    """The issue's reproduction: one `ledger append` of a repaid first loan and a second application gave
    the second row prior_loans 0 and no days since the last loan; two runs gave 1 and 11."""
    from click.testing import CliRunner

    from cli.main import cli

    history = [
        applied("P1", occurred_at="2026-03-01T09:00:00+08:00"),
        approved("P1", occurred_at="2026-03-01T09:00:01+08:00"),
        funded("P1"),
        repaid("P1", ref="P1-R", amount="1009.50", value_date="2026-03-10", occurred_at="2026-03-10T12:00:00+08:00"),
        applied("P2", idempotency_key="app-P2", occurred_at="2026-03-12T10:00:00+08:00"),
    ]
    runs = {"one append": [history], "two appends": [history[:4], history[4:]]}
    seen = {}
    for name, parts in runs.items():
        url = new_store()
        assert CliRunner().invoke(cli, ["init", "--db", url]).exit_code == 0
        for n, part in enumerate(parts):
            path = tmp_path / f"{name}-{n}.jsonl".replace(" ", "-")
            path.write_text("".join(json.dumps(c) + "\n" for c in part), encoding="utf-8")
            result = CliRunner().invoke(cli, ["append", str(path), "--db", url])
            assert result.exit_code == 0, result.output
        seen[name] = _export(url, str(tmp_path / f"{name}.csv"))
    assert seen["one append"] == seen["two appends"]
    second = seen["one append"]["P2"]
    assert (second["prior_loans"], second["prior_repaid_on_time"], second["days_since_last_funded_loan"]) == (
        "1",
        "1",
        "11",
    )
    assert second["applied_at"] == "2026-03-12T02:00:00+00:00"  # the CSV's times are in UTC


T_START = datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))


@st.composite
def histories(draw):
    """A few borrowers with repeat loans, as the ledger would receive them: commands in arrival order.

    A callback may arrive days after it happened (backdated), after the borrower's next application;
    a repayment may be partial, late or more than owed; some applications are declined.
    """
    arriving: list[tuple[datetime, int, dict]] = []
    n = 0
    for b in range(draw(st.integers(2, 3))):
        at = T_START + timedelta(hours=draw(st.integers(0, 48)))
        for k in range(draw(st.integers(1, 3))):
            loan = f"B{b}L{k}"
            common = {"borrower_id": f"BR{b}"}
            cmds = [(at, applied(loan, idempotency_key=f"app-{loan}", occurred_at=at.isoformat(), **common))]
            scored_at = at + timedelta(minutes=1)
            if draw(st.integers(0, 4)) == 0:
                cmds.append((scored_at, declined(loan, occurred_at=scored_at.isoformat())))
            else:
                day = at.date()
                cmds.append((scored_at, approved(loan, occurred_at=scored_at.isoformat())))
                cmds.append((scored_at, funded(loan, occurred_at=scored_at.isoformat(), value_date=str(day))))
                for r in range(draw(st.integers(0, 2))):
                    value = day + timedelta(days=draw(st.integers(1, 16)))
                    happened = datetime.combine(value, time(12), T_START.tzinfo)
                    amount = draw(st.sampled_from(["300.00", "1012.00", "1100.00"]))
                    ref = f"{loan}-R{r}"
                    late = timedelta(days=draw(st.sampled_from([0, 1, 4, 9])))
                    cmds.append((happened + late, repaid(loan, ref=ref, amount=amount, value_date=str(value),
                                                         occurred_at=happened.isoformat())))  # fmt: skip
            for when, cmd in cmds:
                arriving.append((when, n, cmd))
                n += 1
            at += timedelta(days=draw(st.integers(1, 10)), minutes=draw(st.integers(0, 600)))
    return [cmd for _, _, cmd in sorted(arriving, key=lambda a: (a[0], a[1]))]


def _rows_after(url, batches):
    from ledger.app import Ledger
    from ledger.config import Settings
    from ledger.ingest import append_lines
    from projections.dataset import rows

    app = Ledger(Settings(db_url=url))
    try:
        for kind, part in batches:
            if kind == "file":  # `ledger append FILE`: the ingest path, 500 lines a transaction
                statuses = {o.outcome.status for o in append_lines(app, [json.dumps(c) for c in part])}
            else:  # an API batch: one Ledger.append
                statuses = {o.status for o in app.append([command_from_dict(c) for c in part])}
            assert statuses == {"appended"}, statuses
        return list(rows(app, date(2026, 12, 31), LATER))
    finally:
        app.close()


def _batchings(history, cuts):
    edges = [0, *sorted(cuts), len(history)]
    return {
        "one line per run": [("file", [c]) for c in history],
        "one file": [("file", history)],
        "API batches": [("api", history[a:b]) for a, b in pairwise(edges)],
    }


def test_a_late_callback_that_happened_before_the_next_application_counts_only_when_logged_before_it(new_store):
    """P1's repayment happened on 03-10 but its callback arrived on 03-13, after P2's application on 03-12:
    P2 saw P1 still owing, however the lines were cut into commits. P3, applied after the callback
    arrived, sees it repaid (early: on time)."""
    late = repaid("P1", ref="P1-R", amount="1009.50", value_date="2026-03-10", occurred_at="2026-03-10T12:00:00+08:00")
    history = [
        applied("P1", occurred_at="2026-03-01T09:00:00+08:00"),
        approved("P1", occurred_at="2026-03-01T09:00:01+08:00"),
        funded("P1"),
        applied("P2", idempotency_key="app-P2", occurred_at="2026-03-12T10:00:00+08:00"),
        late,
        applied("P3", idempotency_key="app-P3", occurred_at="2026-03-14T10:00:00+08:00"),
    ]
    got = {name: _rows_after(new_store(), b) for name, b in _batchings(history, {2, 5}).items()}
    assert got["one file"] == got["one line per run"] == got["API batches"]
    by_loan = {r["loan_id"]: r for r in got["one file"]}
    p2, p3 = by_loan["P2"], by_loan["P3"]
    # owed on 03-12: principal, the fee and 11 nights of interest
    assert (p2["prior_repaid_on_time"], p2["outstanding_at_application"]) == (0, D("1010.50"))
    assert (p3["prior_applications"], p3["prior_loans"], p3["prior_repaid_on_time"]) == (2, 1, 1)
    assert p3["outstanding_at_application"] == D("0.00")


@settings(max_examples=5)
@given(history=histories(), data=st.data())
def test_training_rows_are_the_same_however_the_history_is_batched(new_store, history, data):
    cuts = data.draw(st.sets(st.integers(1, len(history) - 1), max_size=6), label="cuts")
    got = {name: _rows_after(new_store(), batches) for name, batches in _batchings(history, cuts).items()}
    assert got["one file"] == got["one line per run"] == got["API batches"]
    assert len(got["one file"]) == sum(c["type"] == "applied" for c in history)
