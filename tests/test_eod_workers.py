"""Issue 15: `ledger eod --workers N` stores the same events and prints the same report as one process."""

from __future__ import annotations

import json
import os
import re
import signal
from collections import Counter
from contextlib import ExitStack
from contextlib import closing as closed_at_end
from datetime import date, timedelta
from uuid import UUID

import pytest
from click.testing import CliRunner
from support.commands import domain_example
from support.processes import all_gone, ended, interruptible_cli, parts_of, wait_until, writes_held
from support.simulation import START
from support.stores import copy_store

from cli.main import cli
from domain.loan import Loan, loan_uuid
from eventstore.parts import Abandoned
from ledger import eod_parts
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from ledger.eod import EodReport
from projections import runner
from simulator.platform import Simulator
from simulator.run import run_simulation

STOP = START + timedelta(days=70)  # the simulation's days closed so far: loans still open, some already marked
CLOSE = STOP + timedelta(days=42)  # the early loans pass the write-off point, the later ones change bucket


# Loans due in the tests that stop an end of day mid-run, closed in batches of BATCH (LEDGER_BATCH_SIZE):
# with 2 parts, five batches a part, so a part stopped after its batch in flight has left loans unmarked.
# What these tests prove (a part stops after its batch in flight, a rerun finishes the day, each loan is
# marked once) depends on there being batches after the one in flight, not on how large the book is:
# 200 loans in 20s prove it as 2,000 in 500s did, for a tenth of the book to build and to close.
LOANS = 200
BATCH = 20


def stopped_eod(*args: str, env: dict | None = None):
    """`ledger eod ARGS` as its own process, closing BATCH loans a transaction. The store is set up
    already: its parts open it without creating what exists (LEDGER_SETUP_STORE=no), which on
    PostgreSQL would queue behind the write lock a test holds, before the part is in a batch.
    Ctrl-C (SIGINT) interrupts it even when this test run was started with SIGINT ignored (a background
    job): an end of day that ignored it closed the whole day, and the test then waited on a rerun."""
    settings = {"LEDGER_BATCH_SIZE": str(BATCH), "LEDGER_SETUP_STORE": "no"}
    return interruptible_cli(*args, env={**os.environ, **(env or {}), **settings})


def due_book(url: str) -> None:
    """LOANS loans, all due 2026-03-15, the views caught up."""
    app = Ledger(Settings(db_url=url))
    lines = [c for n in range(LOANS) for c in domain_example(f"K{n:05d}")]
    assert {o.status for o in app.append([command_from_dict(c) for c in lines])} == {"appended"}
    runner.catch_up(app)
    app.close()


@pytest.fixture
def due_store(store_url, books) -> str:
    """This test's store holding the due book: built once per store kind and test process, copied."""
    return books.copy("eod-due", store_url, due_book)


def started_parts(pid: int, count: int) -> list[int]:
    """The parts of end of day ``pid``, once all ``count`` are there."""
    wait_until(lambda: len(parts_of(pid)) == count, f"{count} parts of process {pid}")
    return parts_of(pid)


def run(*args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def stored(app: Ledger) -> dict[UUID, list]:
    """Every loan's stored events, timestamps aside (each store records its own times)."""
    events: dict[UUID, list] = {}
    start = 1
    while notes := app.recorder.select_notifications(start, 5_000):
        for n in notes:
            event = app.mapper.to_domain_event(n)
            facts = {k: v for k, v in vars(event).items() if k != "timestamp"}
            events.setdefault(n.originator_id, []).append((n.originator_version, n.topic, facts))
        start = notes[-1].id + 1
    return events


def test_two_and_three_workers_store_the_same_events_and_print_the_same_report_as_one(new_store):
    urls = {1: new_store()}
    app = Ledger(Settings(db_url=urls[1]))
    # write-offs fall in (STOP, CLOSE]; no bank settlement: the end of day reads positions, which remittances
    # to a bank do not move, and settling was half the simulation's time
    run_simulation(app, Simulator(30, 300, START, days=90), until=STOP, settle=False)
    runner.catch_up(app)
    app.close()
    for workers in (2, 3):  # the same book, copied: the end of day is what differs
        urls[workers] = new_store()
        copy_store(urls[1], urls[workers])
    reports = {
        w: json.loads(run("eod", "--date", CLOSE, "--workers", w, "--json", "--db", url)) for w, url in urls.items()
    }
    one = reports[1]
    assert one["outcomes"]["overdue:appended"] > 10 and one["outcomes"]["written_off:appended"] >= 3, one
    assert reports[2] == one and reports[3] == one
    books = {}
    for workers, url in urls.items():
        app = Ledger(Settings(db_url=url))
        books[workers] = stored(app)
        app.close()
    assert books[2] == books[1] and books[3] == books[1]
    assert len(books[1]) > 150

    # a rerun, in parts or not, appends nothing: what it would add is stored (duplicates only, if any)
    again = {w: run("eod", "--date", CLOSE, "--workers", w, "--db", url) for w, url in urls.items()}
    assert again[2] == again[1] and again[3] == again[1]
    assert again[1].startswith(f"eod {CLOSE}: {one['loans_checked'] - one['outcomes']['written_off:appended']} loans")
    rerun = {
        w: json.loads(run("eod", "--date", CLOSE, "--workers", w, "--json", "--db", url)) for w, url in urls.items()
    }
    assert rerun[2] == rerun[1] and rerun[3] == rerun[1]
    assert all(outcome.endswith(":duplicate") for outcome in rerun[1]["outcomes"]), rerun[1]
    for workers, url in urls.items():
        app = Ledger(Settings(db_url=url))
        assert stored(app) == books[1], workers
        app.close()


def test_workers_is_bounded():
    result = CliRunner().invoke(cli, ["eod", "--workers", "0", "--db", "sqlite:///:memory:"])
    assert result.exit_code == 2 and "--workers" in result.output


def test_an_in_memory_store_is_not_closed_in_parts_but_told_why():
    result = CliRunner().invoke(cli, ["eod", "--date", "2026-03-20", "--workers", "2", "--db", "sqlite:///:memory:"])
    assert result.exit_code == 1, result.output
    assert "needs a database file that other processes can open" in result.output
    assert "Traceback" not in result.output


def test_the_parts_rejections_come_back_in_the_candidates_order():
    ids = [f"L{n}" for n in range(10)]
    order = [loan_uuid(i) for i in ids]
    whole, shares = eod_parts.shares(order, 3)
    assert whole == b"".join(u.bytes for u in order)
    assert sorted(shares, key=len) and sum(len(s) for s in shares) == len(whole)
    for i, share in enumerate(shares):  # each loan in the part its hash names, in the given order
        mine = [UUID(bytes=share[j : j + 16]) for j in range(0, len(share), 16)]
        assert mine == [u for u in order if u.int % 3 == i]
    a = EodReport(date(2026, 3, 20), 4, 1, Counter({("overdue", "appended"): 3}), [("L7", "x"), ("L7", "y")])
    b = EodReport(date(2026, 3, 20), 6, 0, Counter({("overdue", "rejected"): 2}), [("L2", "z"), ("L9", "w")])
    total = eod_parts.merged(date(2026, 3, 20), [a, b], order)
    assert (total.loans_checked, total.already_closed) == (10, 1)
    assert total.outcomes == Counter({("overdue", "appended"): 3, ("overdue", "rejected"): 2})
    assert total.rejected == [("L2", "z"), ("L7", "x"), ("L7", "y"), ("L9", "w")]


def test_a_part_whose_end_of_day_is_gone_appends_nothing_more():
    with pytest.raises(Abandoned):
        eod_parts.EodPart(0, 2, parent=os.getpid()).still_wanted()  # our parent is not ourselves
    eod_parts.EodPart(0, 2, parent=os.getppid()).still_wanted()


def test_a_part_killed_mid_run_is_one_line_and_exit_2_and_a_rerun_finishes_the_day(due_store):
    store_url = due_store
    with ended() as started, closed_at_end(Ledger(Settings(db_url=store_url))) as app:
        with writes_held(store_url) as wait_for_writers:  # the parts cannot finish before one is killed
            closing = started(stopped_eod("eod", "--date", "2026-03-20", "--workers", "2", "--db", store_url))
            parts = started_parts(closing.pid, 2)
            wait_for_writers(parts)  # each part has a batch in flight
            os.kill(parts[0], signal.SIGKILL)
        out, err = closing.communicate(timeout=120)
        assert closing.returncode == 2, (out, err)
        [line] = err.strip().splitlines()
        assert "stopped without an answer" in line and "running the command again is safe" in line, line
        again = json.loads(run("eod", "--date", "2026-03-20", "--workers", "2", "--json", "--db", store_url))
        assert again["outcomes"].get("overdue:appended", 0) > 0  # what the killed part had not stored
        assert sum(1 for _ in app.notifications(Loan.Overdue, page=10_000)) == LOANS  # each loan marked once


@pytest.fixture
def own_server():
    from pgserver import ThrowawayPostgres

    with ThrowawayPostgres() as server:
        yield server


def test_a_store_lost_under_the_parts_is_the_same_one_line_exit_2_as_one_process(own_server):
    errors = {}
    due_book(own_server.create_database("outage1"))
    own_server.create_database("outage2")
    copy_store(own_server.url("outage1"), own_server.url("outage2"))  # the same book for each run
    urls = {workers: own_server.url(f"outage{workers}") for workers in (1, 2)}
    env = {"LEDGER_RETRY_SECONDS": "2"}
    # One outage for both runs, each on its own copy: each run waits out its deadline and a connection's wait
    # (5 s) once the store is gone, and two runs waited for it one after the other.
    with ended() as started, ExitStack() as holding:
        closing = {}
        for workers, url in urls.items():  # the store goes while each end of day is mid-batch
            wait_for_writers = holding.enter_context(writes_held(url))
            closing[workers] = started(
                stopped_eod("eod", "--date", "2026-03-20", "--workers", str(workers), "--db", url, env=env)
            )
            wait_for_writers(started_parts(closing[workers].pid, workers) if workers > 1 else [closing[workers].pid])
        assert all(proc.poll() is None for proc in closing.values()), "a run ended before the store went"
        own_server.stop()
        holding.close()
        answers = {workers: proc.communicate(timeout=120) for workers, proc in closing.items()}
    own_server.start()
    for workers, url in urls.items():
        out, err = answers[workers]
        assert closing[workers].returncode == 2, (workers, out, err)
        assert "Traceback" not in err, err
        [line] = [line for line in err.splitlines() if line.startswith("Error:")]
        errors[workers] = re.sub(r"\(.*\)", "(...)", line)  # the driver's words for the lost connection vary
        assert "running the command again is safe" in line
        assert json.loads(run("eod", "--date", "2026-03-20", "--workers", workers, "--json", "--db", url))
        with closed_at_end(Ledger(Settings(db_url=url))) as app:
            assert sum(1 for _ in app.notifications(Loan.Overdue, page=10_000)) == LOANS  # each loan marked once
    assert errors[2] == errors[1]
    assert errors[1].startswith("Error: eod 2026-03-20: the store did not answer for 2 s"), errors[1]


def test_the_parts_of_a_killed_end_of_day_stop_after_their_batch_in_flight(due_store):
    store_url = due_store
    with ended() as started, closed_at_end(Ledger(Settings(db_url=store_url))) as app:
        with writes_held(store_url) as wait_for_writers:  # it cannot finish before it is killed
            closing = started(stopped_eod("eod", "--date", "2026-03-20", "--workers", "2", "--db", store_url))
            started.parts += (parts := started_parts(closing.pid, 2))  # left behind by their killed parent
            wait_for_writers(parts)  # each part has a batch in flight
            closing.send_signal(signal.SIGKILL)
            closing.wait()
        assert all_gone(parts, within=30), "a part outlived its end of day"
        marked = sum(1 for _ in app.notifications(Loan.Overdue, page=10_000))
        assert 0 < marked < LOANS, marked  # each part stopped after its batch in flight, not at the end of its share
        again = json.loads(run("eod", "--date", "2026-03-20", "--workers", "2", "--json", "--db", store_url))
        assert again["outcomes"] == {"overdue:appended": LOANS - marked}


def test_ctrl_c_stops_the_parts_after_their_batch_in_flight_and_exits_as_one_process_does(due_store):
    """Reproduction (a flake of the whole suite, 2 x 121 s): a test run started as a background job (`pytest &`
    from a script, SIGINT ignored) passed SIGINT's ignore on to the end of day, which then closed the whole day
    in its first round; the second round's end of day had those marks to bring its views up to, under the write
    lock the test held (SQLite: it never started its parts), or found nothing left to write (PostgreSQL: its
    parts never waited for the lock), and the test waited 120 s for either."""
    store_url = due_store
    answers = {}
    with ended() as started, closed_at_end(Ledger(Settings(db_url=store_url))) as app:
        for workers in (1, 2):
            with writes_held(store_url) as wait_for_writers:  # it cannot finish before it is interrupted
                closing = started(
                    stopped_eod("eod", "--date", "2026-03-20", "--workers", str(workers), "--db", store_url)
                )
                parts = started_parts(closing.pid, workers) if workers > 1 else []
                wait_for_writers(parts or [closing.pid])  # a batch in flight in each part (or in the one process)
                closing.send_signal(signal.SIGINT)  # to the end of day alone: its parts hear of it from it
            out, err = closing.communicate(timeout=60)
            answers[workers] = (closing.returncode, err.strip().splitlines()[-1:])
            assert all_gone(parts), "a part outlived its end of day"
            marked = sum(1 for _ in app.notifications(Loan.Overdue, page=10_000))
            assert marked < LOANS, (
                f"the end of day in {workers} process(es) closed the whole day: it never heard Ctrl-C"
            )
        assert answers[2] == answers[1], answers
        assert 0 < marked < LOANS, (
            marked
        )  # the parts stopped after their batch in flight, not at the end of their shares
        again = json.loads(run("eod", "--date", "2026-03-20", "--workers", "2", "--json", "--db", store_url))
        assert again["outcomes"] == {"overdue:appended": LOANS - marked}
