"""Training datasets: right labels, no leakage, and signal a model can learn from."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pyarrow.parquet as pq
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from support import dataset_replay
from support.commands import applied, approved, declined, domain_example, repaid
from support.simulation import START, simulated_ledger

from cli.main import cli
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from projections.dataset import COLUMNS, rows
from simulator.platform import Simulator
from simulator.run import run_simulation

FEATURES = (
    "requested_principal",
    "term_days",
    "prior_loans",
    "prior_repaid_on_time",
    "prior_worst_dpd",
    "days_since_last_funded_loan",
    "outstanding_at_application",
    "score",  # the incumbent model's score: a decision column, here as the strongest signal to learn from
)
LATER = datetime(2100, 1, 1, tzinfo=UTC)


def a_moment_after(moment: datetime) -> datetime:
    """The clock's first reading later than ``moment``: waits for the clock to move, not a fixed time."""
    while (now := datetime.now(UTC)) <= moment:
        time.sleep(0.001)
    return now


def add(app, *dicts):
    outcomes = app.append([command_from_dict(d) for d in dicts])
    assert {o.status for o in outcomes} <= {"appended", "duplicate"}, outcomes


def by_loan(app, as_of, known_at=LATER):
    return {r["loan_id"]: r for r in rows(app, as_of, known_at)}


def test_labels_on_hand_built_loans(ledger):
    add(ledger, *domain_example("ON"), repaid("ON", ref="ON-R", amount="1012.00", value_date="2026-03-15"))
    add(ledger, *domain_example("LATE"), repaid("LATE", ref="LATE-R", amount="1025.00", value_date="2026-03-25"))
    add(ledger, *domain_example("BAD"))
    ledger.append(
        [
            command_from_dict(
                {
                    "type": "written_off",
                    "loan_id": "BAD",
                    "idempotency_key": "BAD-W",
                    "occurred_at": "2026-06-14T23:59:59+08:00",
                    "value_date": "2026-06-14",
                }
            )
        ]
    )
    add(
        ledger,
        {
            "type": "collected",
            "loan_id": "BAD",
            "idempotency_key": "BAD-C",
            "occurred_at": "2026-07-01T10:00:00+08:00",
            "amount": "100.00",
            "agency": "inhouse",
            "value_date": "2026-07-01",
        },
    )
    add(ledger, applied("NO"), declined("NO"))
    rows_now = by_loan(ledger, date(2026, 8, 1))
    on, late, bad, no = rows_now["ON"], rows_now["LATE"], rows_now["BAD"], rows_now["NO"]
    assert (
        on["label_matured"],
        on["repaid_on_time"],
        on["first_payment_default"],
        on["ever_30dpd_60d"],
        on["loss_amount"],
    ) == (True, True, False, False, D("0.00"))
    assert (late["repaid_on_time"], late["first_payment_default"], late["ever_30dpd_60d"]) == (False, True, False)
    assert (bad["first_payment_default"], bad["ever_30dpd_60d"], bad["loss_amount"]) == (True, True, D("900.00"))
    assert no["decision"] == "declined" and not no["label_matured"] and no["first_payment_default"] is None
    # due 2026-03-15: the first-payment window closes at due + 7 (03-22), the 60-day one at due + 60 (05-14)
    fpd = lambda day: {  # noqa: E731
        k: by_loan(ledger, day)["LATE"][k]
        for k in ("fpd_matured", "first_payment_default", "repaid_on_time", "label_matured", "ever_30dpd_60d")
    }
    assert fpd(date(2026, 3, 21)) == dict.fromkeys(("first_payment_default", "repaid_on_time", "ever_30dpd_60d")) | {
        "fpd_matured": False,
        "label_matured": False,
    }
    assert fpd(date(2026, 3, 22)) == {
        "fpd_matured": True,
        "first_payment_default": True,
        "repaid_on_time": False,
        "label_matured": False,
        "ever_30dpd_60d": None,
    }
    assert not by_loan(ledger, date(2026, 5, 13))["ON"]["label_matured"]
    assert by_loan(ledger, date(2026, 5, 13))["ON"]["loss_amount"] is None
    assert by_loan(ledger, date(2026, 5, 14))["ON"]["label_matured"]


def test_features_are_the_borrowers_history_as_known_at_application(ledger):
    add(ledger, *domain_example("FIRST"))
    add(ledger, repaid("FIRST", ref="F-R", amount="1017.00", value_date="2026-03-20"))  # 5 days late
    second = applied("SECOND", occurred_at="2026-04-01T10:00:00+08:00")
    add(ledger, second, approved("SECOND"))
    third = applied("THIRD", occurred_at="2026-04-02T10:00:00+08:00")
    add(ledger, third)
    r = by_loan(ledger, date(2026, 4, 30))
    assert r["FIRST"]["prior_loans"] == 0 and r["FIRST"]["days_since_last_funded_loan"] is None
    assert (
        r["SECOND"]["prior_applications"],
        r["SECOND"]["prior_loans"],
        r["SECOND"]["prior_repaid_on_time"],
        r["SECOND"]["prior_worst_dpd"],
        r["SECOND"]["days_since_last_funded_loan"],
        r["SECOND"]["outstanding_at_application"],
    ) == (1, 1, 0, 4, 31, D("0.00"))  # FIRST was funded on 2026-03-01, SECOND applied on 2026-04-01
    # SECOND, approved but not funded, is an application before THIRD, not a loan
    assert (r["THIRD"]["prior_applications"], r["THIRD"]["prior_loans"]) == (2, 1)
    assert r["THIRD"]["decision"] == "pending" and r["THIRD"]["days_since_last_funded_loan"] == 32


@settings(max_examples=3)
@given(seed=st.integers(0, 10_000), cut_days=st.integers(3, 40))
def test_events_recorded_after_the_cut_never_change_what_is_exported_as_known_then(new_store, seed, cut_days):
    app = Ledger(Settings(db_url=new_store()))
    sim = Simulator(seed, 120, START, days=30)
    run_simulation(app, sim, until=START + timedelta(days=cut_days))  # the log as it stood at the cut
    head_at_cut = app.recorder.max_notification_id()
    cut = a_moment_after(datetime.now(UTC))  # later than every event recorded so far
    before = list(rows(app, date(2026, 9, 1), cut))
    a_moment_after(cut)  # and every event recorded from here on is later than the cut
    run_simulation(app, Simulator(seed, 120, START, days=30))  # the rest of the stream, recorded after the cut
    assert app.recorder.max_notification_id() > head_at_cut
    after_cut = list(rows(app, date(2026, 9, 1), cut))
    assert after_cut == before
    # and no feature of any row moved because later events exist
    latest = {r["loan_id"]: r for r in rows(app, date(2026, 9, 1), datetime.now(UTC))}
    for row in before:
        assert {f: row[f] for f in FEATURES if f != "score"} == {
            f: latest[row["loan_id"]][f] for f in FEATURES if f != "score"
        }
    assert len(latest) >= len(before)
    app.close()


def test_a_model_learns_from_the_exported_features(tmp_path):
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    app = Ledger(Settings(db_url=f"sqlite:///{tmp_path}/ds.db"))
    simulated_ledger(app, seed=99, loans=2500, days=60)
    out = tmp_path / "train.parquet"
    assert (
        CliRunner()
        .invoke(
            cli,
            ["dataset", "export", "--as-of", "2026-08-01", "--out", str(out), "--db", f"sqlite:///{tmp_path}/ds.db"],
        )
        .exit_code
        == 0
    )
    table = pq.read_table(out)
    assert all(table.schema.field(c.name).metadata[b"description"] for c in COLUMNS)
    assert {c.name: table.schema.field(c.name).metadata[b"role"].decode() for c in COLUMNS} == {
        c.name: c.role for c in COLUMNS
    }
    assert set(FEATURES) - {"score"} <= {c.name for c in COLUMNS if c.role == "feature"}
    data = [r for r in table.to_pylist() if r["label_matured"]]
    assert len(data) > 1000
    x = np.array([[float(r[f] or 0) for f in FEATURES] for r in data])
    y = np.array([r["ever_30dpd_60d"] for r in data])
    half = len(data) // 2
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x[:half], y[:half])
    auc = roc_auc_score(y[half:], model.predict_proba(x[half:])[:, 1])
    assert auc > 0.65, auc
    # the default rate falls across score deciles
    scored = sorted(zip(x[:, FEATURES.index("score")], y, strict=True))
    tenth = len(scored) // 10
    deciles = [np.mean([bad for _, bad in scored[i * tenth : (i + 1) * tenth]]) for i in range(10)]
    assert deciles[0] > deciles[-1] * 2 and np.mean(deciles[:5]) > np.mean(deciles[5:])
    app.close()


def test_csv_export_has_one_row_per_application(ledger, tmp_path):
    add(ledger, *domain_example(), applied("L2"), declined("L2"))
    out = tmp_path / "d.csv"
    result = CliRunner().invoke(
        cli,
        [
            "dataset",
            "export",
            "--as-of",
            "2026-06-01",
            "--format",
            "csv",
            "--out",
            str(out),
            "--db",
            ledger.settings.db_url,
            "--json",
        ],
    )
    assert json.loads(result.output)["rows"] == 2
    header, *lines = out.read_text().splitlines()
    assert header.split(",") == [c.name for c in COLUMNS] and len(lines) == 2


def test_rows_are_those_of_replaying_every_loan_through_the_aggregate(ledger):
    """The export reads events without the Loan aggregate and values each loan as few times as it can:
    on a simulated book (repeat borrowers, late payers, write-offs, collections, reversals) every row
    must still be what replaying each loan through the aggregate gives, for any as-of and known-at."""
    sim = Simulator(2024, 300, START, days=45)
    run_simulation(ledger, sim, until=START + timedelta(days=25))
    cut = a_moment_after(datetime.now(UTC))  # later than every event recorded so far
    a_moment_after(cut)  # and every event recorded from here on is later than the cut
    run_simulation(ledger, Simulator(2024, 300, START, days=45))  # the rest, recorded after the cut
    everything = list(dataset_replay.rows(ledger, date(2026, 12, 31), LATER))
    assert sum(r["label_matured"] for r in everything) > 100
    assert any(r["loss_amount"] for r in everything) and any(r["first_payment_default"] for r in everything)
    assert any(r["prior_loans"] > 1 for r in everything) and any(r["prior_worst_dpd"] > 0 for r in everything)
    for as_of in (date(2026, 1, 20), date(2026, 3, 10), date(2026, 4, 15), date(2026, 12, 31)):
        for known_at in (cut, LATER):
            assert list(rows(ledger, as_of, known_at)) == list(dataset_replay.rows(ledger, as_of, known_at)), (
                as_of,
                known_at,
            )


def test_a_repayment_valued_after_a_later_application_leaves_the_loan_owed_at_that_application(ledger):
    # recorded before the second application, but valued ten days after it: owed on its date
    add(ledger, *domain_example("FIRST"), repaid("FIRST", ref="F-R", amount="1017.00", value_date="2026-03-20"))
    add(ledger, applied("SECOND", occurred_at="2026-03-10T10:00:00+08:00"))
    r = by_loan(ledger, date(2026, 8, 1))
    assert r["FIRST"]["repaid_on_time"] is False  # its own label sees the repayment, late
    assert (r["SECOND"]["prior_loans"], r["SECOND"]["prior_worst_dpd"]) == (1, 0)
    # principal, then fee and 9 nights of interest held to the ceiling: round_down(0.36 x 9,000.00 / 365)
    assert r["SECOND"]["outstanding_at_application"] == D("1008.87")
    assert list(rows(ledger, date(2026, 8, 1), LATER)) == list(dataset_replay.rows(ledger, date(2026, 8, 1), LATER))


def exactly(rows_in):
    """Every cell as its type and its text: Decimal("1.00") and Decimal("1.0") compare equal, and so do
    True and 1, but a CSV file, a JSON answer and a Parquet decimal's scale tell them apart."""
    return [{k: (type(v).__name__, str(v)) for k, v in row.items()} for row in rows_in]


def test_every_cell_keeps_its_type_and_digits_beside_the_replay_and_in_the_parquet_file(ledger, tmp_path):
    """The rows' own equality would not see a decimal's exponent, a bool turned int or a date turned
    datetime; the file written column by column must hold exactly the rows' values."""
    import pyarrow as pa

    from projections.dataset_writers import arrow_types, write

    run_simulation(ledger, Simulator(7, 150, START, days=45))
    # and a borrower who still owes at the next application (the simulated ones repay first)
    add(ledger, *domain_example("OWES"), repaid("OWES", ref="O-R", amount="1017.00", value_date="2026-03-20"))
    add(ledger, applied("NEXT", occurred_at="2026-03-10T10:00:00+08:00"))
    everything = list(rows(ledger, date(2026, 12, 31), LATER))
    assert any(r["prior_loans"] for r in everything) and any(r["loss_amount"] for r in everything)
    assert any(r["outstanding_at_application"] for r in everything) and any(r["daily_rate"] for r in everything)
    for as_of in (date(2026, 2, 10), date(2026, 12, 31)):  # labels still open, and all of them matured
        ours = list(rows(ledger, as_of, LATER))
        assert exactly(ours) == exactly(dataset_replay.rows(ledger, as_of, LATER)), as_of
        out = tmp_path / f"{as_of}.parquet"
        assert write(iter(ours), str(out), "parquet", as_of, LATER, batch_rows=97) == len(ours)
        types = arrow_types()
        schema = pa.schema([pa.field(c.name, types[c.kind]) for c in COLUMNS])
        written = pq.read_table(out)
        assert written.schema.metadata[b"as_of"] == as_of.isoformat().encode()
        assert written.cast(schema).equals(pa.Table.from_pylist(ours, schema))
        assert written.to_pylist() == pa.Table.from_pylist(ours, schema).to_pylist()
