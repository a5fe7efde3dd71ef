"""Issue 15: `projections rebuild --workers N` writes the same rows, row for row, as one process."""

from __future__ import annotations

import os
import signal
import time

import pytest
from support.commands import applied, approved, domain_example, funded
from support.processes import all_gone, parts_of
from support.simulation import simulated_ledger
from test_projection_failure import _poison
from test_projections import snapshot
from test_races import cli
from test_rebuild_readers import reading, rebuilding

from domain.errors import LedgerError
from eventstore.parts import Abandoned
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from projections import partitions, runner


def tracking(app: Ledger) -> dict[str, int]:
    return dict(runner.views(app).query("SELECT name, position FROM proj_tracking"))


def test_a_rebuild_in_parts_writes_the_same_rows_as_one_process(store_url):
    app = Ledger(Settings(db_url=store_url))
    simulated_ledger(app, seed=11, loans=120, days=45)  # repayments, reversals, write-offs across many pages
    runner.catch_up(app, page_size=64)
    incremental = snapshot(app)
    one = runner.rebuild(app, page_size=50)
    assert snapshot(app) == incremental
    for workers in (2, 3):
        assert runner.rebuild(app, page_size=50, workers=workers) == one
        assert snapshot(app) == incremental, workers  # every journal line id, every known_from/known_to
        assert tracking(app) == {"book": app.recorder.max_notification_id()}  # no part's row left behind
    assert len(incremental[0]) > 1000 and len(incremental[1]) == 120
    assert incremental[2] and incremental[3]  # agencies' spells and collections, rebuilt row for row too
    app.close()


def test_events_appended_after_the_parts_started_are_applied_before_the_swap(store_url, monkeypatch):
    app = Ledger(Settings(db_url=store_url))
    simulated_ledger(app, seed=12, loans=40, days=20)
    runner.catch_up(app)
    real = partitions.fill

    def fill_then_append(*args, **kwargs):  # past the head the parts stopped at
        done = real(*args, **kwargs)
        app.append([command_from_dict(c) for c in (applied("LATE"), approved("LATE"), funded("LATE"))])
        return done

    monkeypatch.setattr(partitions, "fill", fill_then_append)
    runner.rebuild(app, workers=2)
    rebuilt = snapshot(app)
    runner.rebuild(app)
    assert rebuilt == snapshot(app)
    assert "LATE" in {row[0] for row in rebuilt[1]}
    app.close()


def test_a_part_that_cannot_apply_an_event_stops_the_rebuild_and_records_it(store_url):
    app = Ledger(Settings(db_url=store_url))
    app.append([command_from_dict(c) for c in domain_example()])
    app.append([command_from_dict(c) for c in (applied("L2"), approved("L2"))])
    runner.catch_up(app)
    live = snapshot(app)
    bad = _poison(app)
    app.append([command_from_dict(funded("L2", idempotency_key="D-L2", bank_ref="D-L2"))])

    with pytest.raises(runner.ProjectionFailed) as alone:
        runner.rebuild(app)
    runner.set_failure(runner.views(app), "book", None)
    with pytest.raises(runner.ProjectionFailed) as in_parts:
        runner.rebuild(app, workers=2)
    assert str(in_parts.value) == str(alone.value)
    assert (in_parts.value.notification_id, in_parts.value.loan_id) == (bad, "L1")
    [status] = runner.status(app)
    assert status.failure == str(alone.value)
    assert snapshot(app) == live  # nothing swapped in
    app.close()


def test_a_part_whose_rebuild_is_gone_writes_nothing_more():
    part = partitions.Partition(0, 2, head=10, parent=os.getpid())  # our parent is not ourselves
    with pytest.raises(Abandoned):
        part.still_wanted()
    partitions.Partition(0, 2, head=10, parent=os.getppid()).still_wanted()


def test_a_rebuild_in_parts_killed_half_way_leaves_the_live_book_and_its_parts_stop(store_url):
    app = Ledger(Settings(db_url=store_url))
    # 100 loans: over 400 events, each a page of its own below, and the kill comes after the first
    # page; the test fails (not passes) if the rebuild finished before it
    simulated_ledger(app, seed=13, loans=100, days=30)
    runner.catch_up(app)
    whole, before = reading(app), snapshot(app)
    rebuild = cli("projections", "rebuild", "--page-size", "1", "--workers", "2", "--db", store_url)
    deadline = time.time() + 120
    while time.time() < deadline and not any(
        position > 0 for name, position in tracking(app).items() if name.startswith("book_next:")
    ):
        time.sleep(0.01)
    workers = parts_of(rebuild.pid)
    assert rebuild.poll() is None, "the rebuild finished before it could be killed: the test proved nothing"
    assert len(workers) == 2
    rebuild.send_signal(signal.SIGKILL)
    rebuild.wait()
    assert all_gone(workers, within=60), "a part's process outlived its rebuild"
    # gone, and not by finishing their shares: each stopped after its page in flight
    head = app.recorder.max_notification_id()
    parts = {name: position for name, position in tracking(app).items() if name.startswith("book_next:")}
    assert len(parts) == 2 and all(position < head for position in parts.values()), (parts, head)
    assert rebuilding(app) and reading(app) == whole and snapshot(app) == before
    again = cli("projections", "rebuild", "--workers", "2", "--db", store_url)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert not rebuilding(app) and snapshot(app) == before
    assert tracking(app) == {"book": app.recorder.max_notification_id()}
    app.close()


def test_an_in_memory_store_is_not_rebuilt_in_parts_but_told_why(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # (the rebuild's lock file sits beside the database)
    app = Ledger(Settings(db_url="sqlite:///:memory:"))
    app.append([command_from_dict(c) for c in domain_example()])
    runner.catch_up(app)
    before = snapshot(app)
    with pytest.raises(LedgerError, match="other processes can open"):
        runner.rebuild(app, workers=2)
    assert snapshot(app) == before and runner.rebuild(app) == app.recorder.max_notification_id()
    app.close()
