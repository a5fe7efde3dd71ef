"""How the book projection works a page: what it does to the process and the tables for speed, and nothing more."""

from __future__ import annotations

import gc

import pytest
from support.commands import domain_example, repaid

from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from projections import book, runner


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_a_page_holds_off_the_cyclic_collector_and_turns_it_back_on(ledger, collector_on, monkeypatch):
    ledger.append([command_from_dict(c) for c in domain_example()])
    seen = []
    journal_lines = book.journal_lines

    def spy(*args):
        seen.append(gc.isenabled())
        return journal_lines(*args)

    monkeypatch.setattr(book, "journal_lines", spy)
    assert runner.catch_up(ledger) == 3
    assert seen == [False]  # off while the page was worked
    assert gc.isenabled()  # and on again for the rest of the process


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
