"""How the book projection works a page: what it does to the process and the tables for speed, and nothing more."""

from __future__ import annotations

import gc

import pytest
from support.commands import domain_example, repaid
from support.simulation import simulated_ledger

from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from projections import book, collector, runner


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_a_catch_up_holds_off_the_cyclic_collector_and_turns_it_back_on(ledger, collector_on, monkeypatch):
    ledger.append([command_from_dict(c) for c in domain_example()])
    seen = []
    journal_lines, write = book.journal_lines, book.Page.write

    def spy_lines(*args):
        seen.append(("worked", gc.isenabled()))
        return journal_lines(*args)

    def spy_write(*args):
        seen.append(("written", gc.isenabled()))
        return write(*args)

    monkeypatch.setattr(book, "journal_lines", spy_lines)
    monkeypatch.setattr(book.Page, "write", spy_write)
    assert runner.catch_up(ledger) == 3
    assert seen == [("worked", False), ("written", False)]  # off while the page was worked and written
    assert gc.isenabled()  # and on again for the rest of the process


def test_working_the_log_leaves_no_reference_cycle_behind(store_url, collector_on):
    """What the hold rests on: without cycles, reference counting frees everything a page made."""
    app = Ledger(Settings(db_url=store_url))
    simulated_ledger(app, seed=5, loans=40, days=90)  # repayments, collections, write-offs, reversals
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # a pass keeps what it finds unreachable in gc.garbage
    try:
        runner.rebuild(app, page_size=50)
        gc.collect()
        cycles = [type(o).__name__ for o in gc.garbage]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert cycles == []
    assert runner.status(app)[0].lag == 0
    app.close()


def test_a_long_catch_up_still_gets_a_full_pass_now_and_then(ledger, collector_on, monkeypatch):
    ledger.append([command_from_dict(c) for c in [*domain_example(), repaid()]])
    passes = []

    def count(phase, info):
        if phase == "start" and info["generation"] == 2:
            passes.append(info)

    monkeypatch.setattr(collector, "EVENTS_PER_PASS", 2)
    gc.callbacks.append(count)
    try:
        runner.catch_up(ledger, page_size=1)
    finally:
        gc.callbacks.remove(count)
    assert len(passes) == 2  # 4 events, a pass after each 2: memory stays bounded on a long log


def test_a_failing_page_also_turns_the_collector_back_on(ledger, collector_on, monkeypatch):
    ledger.append([command_from_dict(c) for c in [*domain_example(), repaid()]])

    def broken(*args):
        raise RuntimeError("a bug in the journal")

    monkeypatch.setattr(book, "journal_lines", broken)
    with pytest.raises(runner.ProjectionFailed):
        runner.catch_up(ledger)
    assert gc.isenabled()


def test_a_page_leaves_a_collector_that_was_off_off(ledger, collector_on):
    ledger.append([command_from_dict(c) for c in domain_example()])
    gc.disable()
    runner.catch_up(ledger)
    assert not gc.isenabled()  # the process's own choice is not ours to overrule


def test_the_journal_leaves_room_to_close_rows_in_place_on_postgresql(pg_server):
    app = Ledger(Settings(db_url=pg_server.create_database("book_page_fillfactor")))
    db = runner.views(app)
    assert db.query("SELECT reloptions FROM pg_class WHERE relname = 'proj_journal'") == [(["fillfactor=80"],)]
    app.close()
