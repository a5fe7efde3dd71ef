"""The dataset on Spark: from the Parquet event log, the same rows as the single-machine export.

pyspark is an optional extra, installed by the README's test command: nothing here skips.
One Spark session (local[2]) per test process, started once.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from support.simulation import START

from cli.main import cli
from projections import spark_dataset
from simulator.platform import Simulator
from simulator.run import run_simulation

LATER = "2100-01-01T00:00:00+00:00"


@pytest.fixture(scope="session")
def spark():
    session = spark_dataset.session("local[2]", 4)
    yield session
    session.stop()


def invoke(*args):
    result = CliRunner().invoke(cli, [*args, "--json"])
    return result.exit_code, json.loads(result.output)


# SQLite only: Spark reads nothing but the Parquet log, and the store behind it is proven out of this
# test: the Parquet exported from PostgreSQL is the log exactly (test_event_export.py's tests, on both
# stores), and the single-machine rows on PostgreSQL are those of replaying the aggregate
# (test_dataset.py::test_rows_are_those_of_replaying_every_loan_through_the_aggregate[postgres]).
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_spark_rows_equal_the_single_machine_export_column_by_column(spark, ledger, store_url, tmp_path):
    """A simulated book (repeat borrowers, late payers, write-offs, collections, reversals), exported in
    two daily runs; the Spark rows equal the single-machine rows in every column, types and exact
    decimals included, as of two dates and as known at two moments (one between the runs)."""
    events = tmp_path / "events"
    sim = Simulator(2024, 300, START, days=45)
    run_simulation(ledger, sim, until=START + timedelta(days=25))
    head = ledger.recorder.max_notification_id()  # the log's end at the first export (settlements' events too)
    assert invoke("events", "export", "--format", "parquet", "--out", str(events), "--db", store_url)[0] == 0
    exported = ds.dataset(events, format="parquet", partitioning="hive").to_table()
    cut = max(exported["recorded_at"].to_pylist()).isoformat()  # as known at the end of the first run
    run_simulation(ledger, Simulator(2024, 300, START, days=45))  # the rest, recorded after the cut
    code, second = invoke("events", "export", "--format", "parquet", "--out", str(events), "--db", store_url)
    assert code == 0 and second["events"] > 0 and second["after_id"] == head

    answers = {}
    for as_of, known_at in (("2026-02-10", cut), ("2026-12-31", LATER)):
        single, spread = tmp_path / f"single-{as_of}.parquet", tmp_path / f"spark-{as_of}"
        code, local = invoke(
            "dataset", "export", "--as-of", as_of, "--known-at", known_at, "--out", str(single), "--db", store_url
        )
        assert code == 0, local
        code, distributed = invoke(
            "dataset", "export", "--engine", "spark", "--master", "local[2]", "--events", str(events),
            "--as-of", as_of, "--known-at", known_at, "--out", str(spread),
        )  # fmt: skip
        assert code == 0, distributed
        assert distributed["rows"] == local["rows"] > 50
        expected, got = pq.read_table(single).sort_by("loan_id"), pq.read_table(spread).sort_by("loan_id")
        assert got.column_names == expected.column_names
        for name in expected.column_names:
            assert got.schema.field(name).type == expected.schema.field(name).type, name
            assert got[name].to_pylist() == expected[name].to_pylist(), name
        answers[as_of] = expected
    everything = answers["2026-12-31"]
    assert sum(everything["label_matured"].to_pylist()) > 50 and any(everything["loss_amount"].to_pylist())
    assert max(everything["prior_loans"].to_pylist()) >= 1 and max(everything["prior_worst_dpd"].to_pylist()) > 0
    # the cut and the date mattered: the earlier answer is not the later one cut short
    assert answers["2026-02-10"].num_rows < everything.num_rows


def test_without_pyspark_the_spark_engine_is_a_clean_exit_2_with_the_install_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    (tmp_path / "events").mkdir()
    code, answer = invoke(
        "dataset", "export", "--engine", "spark", "--events", str(tmp_path / "events"),
        "--as-of", "2026-03-01", "--out", str(tmp_path / "rows"),
    )  # fmt: skip
    assert code == 2 and "pip install 'loan-ledger[spark]'" in answer["error"]
    assert not (tmp_path / "rows").exists()


def test_the_spark_engine_refuses_what_it_cannot_do_before_spark_starts(tmp_path):
    code, answer = invoke("dataset", "export", "--engine", "spark", "--as-of", "2026-03-01", "--out", "x")
    assert code == 2 and "--events" in answer["error"]
    code, answer = invoke(
        "dataset", "export", "--engine", "spark", "--events", str(tmp_path / "missing"),
        "--as-of", "2026-03-01", "--out", str(tmp_path / "rows"),
    )  # fmt: skip
    assert code == 2 and "not a directory" in answer["error"]


def test_an_event_the_row_function_does_not_know_fails_the_job_by_name(spark, tmp_path):
    """A log with an event type added since this code was written: exit 1 naming it, no traceback."""
    import pyarrow as pa

    from projections.event_export import schema

    events = tmp_path / "events" / "bucket=00" / "month=2026-03"
    events.mkdir(parents=True)
    data = '{"timestamp":{"_type_":"datetime_iso","_data_":"2026-03-01T00:00:00+00:00"},"loan_id":"L1"}'
    row = {
        "notification_id": 1, "loan_id": "L1", "borrower_id": "B1", "version": 1, "type": "Renamed",
        "topic": "domain.loan:Loan.Renamed", "recorded_at": datetime(2026, 3, 1, tzinfo=UTC),
        "occurred_at": None, "value_date": None, "amount": None, "data": data,
    }  # fmt: skip
    pq.write_table(pa.Table.from_pylist([row], schema()), events / "part-000000000001.parquet")
    code, answer = invoke(
        "dataset", "export", "--engine", "spark", "--master", "local[2]", "--events", str(tmp_path / "events"),
        "--as-of", "2026-03-01", "--out", str(tmp_path / "rows"),
    )  # fmt: skip
    assert code == 1 and "Loan.Renamed" in answer["error"] and "unknown to the export" in answer["error"]
