"""`ledger events export --format parquet`: the event log for Spark, partitioned, exact, incremental."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pyarrow.dataset as ds
from click.testing import CliRunner
from support.commands import applied, approved, domain_example, funded, repaid

from cli.main import cli
from ledger.commands import command_from_dict
from projections.event_export import bucket_of


def add(app, *dicts):
    outcomes = app.append([command_from_dict(d) for d in dicts])
    assert {o.status for o in outcomes} <= {"appended", "duplicate"}, outcomes


def export(store_url, out, *extra):
    result = CliRunner().invoke(
        cli, ["events", "export", "--format", "parquet", "--out", str(out), "--db", store_url, "--json", *extra]
    )
    return result.exit_code, json.loads(result.output)


def table(out):
    return ds.dataset(out, format="parquet", partitioning="hive").to_table().sort_by("notification_id")


def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*.parquet")}


def test_the_log_exported_exactly_partitioned_by_borrower_and_month_and_nothing_personal(ledger, store_url, tmp_path):
    add(ledger, applied("L1", borrower={"name": "Zhang San", "phone": "13812345678"}), approved("L1"), funded("L1"))
    add(ledger, repaid("L1", ref="R1", amount="0.01"), *domain_example("L2"))
    out = tmp_path / "events"
    code, summary = export(store_url, out)
    assert code == 0 and summary["events"] == 7 and summary["after_id"] == 0
    t = table(out)
    rows = t.to_pylist()
    assert [(r["loan_id"], r["version"], r["type"]) for r in rows[:4]] == [
        ("L1", 1, "Applied"),
        ("L1", 2, "Scored"),
        ("L1", 3, "Funded"),
        ("L1", 4, "Repaid"),
    ]
    assert {r["borrower_id"] for r in rows} == {"B1"} and {r["bucket"] for r in rows} == {bucket_of("B1")}
    assert str(t.schema.field("amount").type) == "decimal128(14, 2)"
    assert rows[3]["amount"] == D("0.01") and rows[2]["amount"] == D("1000.00")  # exact, to the fen
    assert rows[3]["value_date"].isoformat() == "2026-03-08"
    assert all(r["recorded_at"].tzinfo is not None and r["occurred_at"] is not None for r in rows)
    month = rows[0]["recorded_at"].strftime("%Y-%m")
    assert all(r["month"] == month for r in rows)  # the month the event was recorded in
    # the stored event itself, byte for byte, for the row function on the other side
    stored = ledger.recorder.select_notifications(1, 10)
    assert [r["data"].encode() for r in rows] == [n.state for n in stored]
    for data in files(out).values():
        assert b"Zhang San" not in data and b"13812345678" not in data


def test_a_daily_export_appends_only_what_is_new_and_never_rewrites_a_file(ledger, store_url, tmp_path):
    add(ledger, *domain_example("L1"))
    out = tmp_path / "events"
    assert export(store_url, out)[1]["events"] == 3
    before = files(out)
    code, again = export(store_url, out)  # nothing new: nothing written
    assert code == 0 and again["events"] == 0 and files(out) == before
    add(ledger, repaid("L1", ref="R1"), *domain_example("L2"))
    code, summary = export(store_url, out)
    assert code == 0 and (summary["after_id"], summary["events"]) == (3, 4)
    after = files(out)
    assert {k: after[k] for k in before} == before and len(after) > len(before)  # old files untouched
    ids = table(out)["notification_id"].to_pylist()
    assert ids == sorted(set(ids)) and len(ids) == 7  # every event once
    # asking again from an id already exported would export events twice: refused, exit 2
    code, refused = export(store_url, out, "--after-id", "2")
    assert code == 2 and "exported twice" in refused["error"] and files(out) == after


def test_an_export_stopped_half_way_is_finished_or_dropped_by_the_next(ledger, store_url, tmp_path):
    add(ledger, *domain_example("L1"))
    out = tmp_path / "events"
    export(store_url, out)
    # a run that died before its manifest: its staged files are dropped, its events exported again
    stray = out / "_staging" / "bucket=00" / "month=2026-01" / "part-000000000004.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"half a file")
    add(ledger, repaid("L1", ref="R1"))
    code, summary = export(store_url, out)
    assert code == 0 and summary["events"] == 1 and not (out / "_staging").exists()
    assert table(out)["notification_id"].to_pylist() == [1, 2, 3, 4]


def test_parquet_refuses_the_filters_of_the_audit_trail(ledger, store_url, tmp_path):
    add(ledger, *domain_example("L1"))
    code, refused = export(store_url, tmp_path / "events", "--loan", "L1")
    assert code == 2 and "--loan" in refused["error"] and not (tmp_path / "events").exists()
    result = CliRunner().invoke(
        cli, ["events", "export", "--out", str(tmp_path / "x.jsonl"), "--after-id", "3", "--db", store_url]
    )
    assert result.exit_code == 2 and "--after-id" in result.output


def test_a_run_stopped_after_its_manifest_is_finished_by_the_next_not_exported_again(
    ledger, store_url, tmp_path, monkeypatch
):
    from projections import event_export

    add(ledger, *domain_example("L1"))
    out = tmp_path / "events"

    def stopped(out, record):
        raise OSError("the machine went down while moving the files in")

    publish = event_export._publish
    monkeypatch.setattr(event_export, "_publish", stopped)
    code, failed = export(store_url, out)
    assert code == 2 and "went down" in failed["error"] and (out / "_staging" / "manifest.json").exists()
    assert not list(out.glob("bucket=*"))  # nothing published yet
    monkeypatch.setattr(event_export, "_publish", publish)
    code, summary = export(store_url, out)
    assert code == 0 and summary["events"] == 0  # the stopped run's events are in, once
    assert table(out)["notification_id"].to_pylist() == [1, 2, 3] and not (out / "_staging").exists()
