"""Issue 11 item 6: recorded time is stamped at commit, by the store's clock, in notification order."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import eventsourcing.domain as es_domain
import pytest
from eventsourcing.persistence import StoredEvent
from support.commands import applied, approved, domain_example, funded, repaid
from support.tamper import raw

from domain.loan import loan_uuid
from eventstore import commit_time
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from ledger.verify import verify


def commands(*dicts):
    return [command_from_dict(d) for d in dicts]


def logged_times(app: Ledger) -> list[tuple[int, datetime]]:
    """(notification id, recorded time) of every event, in notification order."""
    return [(n.id, app.mapper.to_domain_event(n).timestamp) for n in app.notifications()]


@pytest.fixture
def skewed(monkeypatch):
    """Make this process's clocks (the staging clock and the SQLite store's clock) run off by some hours."""

    real_now, real_host = es_domain.datetime_now_with_tzinfo, commit_time.host_clock_us

    def skew(hours: float) -> None:
        shift = timedelta(hours=hours)
        monkeypatch.setattr(es_domain, "datetime_now_with_tzinfo", lambda: real_now() + shift)
        monkeypatch.setattr(commit_time, "host_clock_us", lambda: real_host() + shift // timedelta(microseconds=1))

    return skew


def test_one_commit_is_one_recorded_time_and_later_commits_are_later(ledger):
    ledger.append(commands(*domain_example("L1"), *domain_example("L2")))  # one transaction: six events
    ledger.append(commands(repaid("L1")))
    ledger.append(commands(repaid("L2", ref="R2")))
    times = [t for _, t in logged_times(ledger)]
    assert len(times) == 8
    assert len(set(times[:6])) == 1  # they became known together
    assert times[5] < times[6] < times[7]


def test_recorded_times_follow_notification_order_whatever_the_writers_clocks(ledger, skewed):
    """A writer an hour fast, then one an hour slow: times still never go back in notification order,
    and the slow writer's events are not recorded before the fast one's."""
    skewed(+1)
    ledger.append(commands(*domain_example("L1")))
    skewed(-1)
    other = Ledger(Settings(db_url=ledger.settings.db_url))
    other.append(commands(repaid("L1"), *domain_example("L2")))
    times = [t for _, t in logged_times(ledger)]
    assert times == sorted(times)
    assert times[-1] > times[0]
    l1 = [e.timestamp for e in other.loan_events("L1")]
    assert l1 == sorted(l1) and l1[-1] > l1[0]
    funded_at = l1[2]
    assert [type(e).__name__ for e in ledger.loan_events("L1", known_at=funded_at)][-1] == "Funded"
    other.close()


def test_the_store_clock_decides_not_the_writers(ledger, skewed):
    """On PostgreSQL every host's events are stamped by the database's clock: a writer whose clock
    is a day fast still records the time of its commit. A SQLite file has one host, whose clock it is."""
    skewed(+24)
    before = datetime.now(UTC)
    ledger.append(commands(*domain_example("L1")))
    after = datetime.now(UTC)
    (_, recorded), *_ = logged_times(ledger)
    if ledger.settings.db_url.startswith("sqlite"):
        before, after = before + timedelta(hours=24), after + timedelta(hours=24)
    assert before - timedelta(seconds=5) <= recorded <= after + timedelta(seconds=5)


def test_concurrent_writers_record_times_in_notification_order(ledger):
    """Four writers appending different loans at once: each commit is later than every commit
    before it in the log, so "as known at T" is a prefix of the log."""
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        app = Ledger(Settings(db_url=ledger.settings.db_url))
        try:
            for i in range(8):
                app.append(commands(*domain_example(f"W{w}-{i}")))
        except BaseException as e:  # surfaced below: a thread's failure must fail the test
            errors.append(e)
        finally:
            app.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    logged = logged_times(ledger)
    assert len(logged) == 4 * 8 * 3
    times = [t for _, t in logged]
    assert times == sorted(times)
    assert len(set(times)) == 4 * 8  # one time per commit, no two commits alike


def test_as_known_at_a_committed_time_never_changes(ledger, skewed):
    """Once a commit at T is visible, what was known at T is fixed: later writes, even from a host
    whose clock is behind, are recorded after T."""
    ledger.append(commands(*domain_example("L1")))
    known_at = max(e.timestamp for e in ledger.loan_events("L1"))
    then = ledger.get_loan("L1", known_at=known_at)
    assert then is not None
    skewed(-2)
    ledger.append(commands(repaid("L1"), applied("L2"), approved("L2"), funded("L2")))
    assert all(e.timestamp > known_at for e in ledger.loan_events("L1")[3:])
    again = ledger.get_loan("L1", known_at=known_at)
    assert again is not None and again.version == then.version == 3
    assert ledger.get_loan("L2", known_at=known_at) is None


def test_the_clock_only_moves_forward(ledger, store_url):
    ledger.append(commands(*domain_example("L1")))
    with raw(store_url) as con:
        for statement in (
            "UPDATE ledger_clock SET last_us = last_us - 3600000000",
            "UPDATE ledger_clock SET last_us = last_us",
            "DELETE FROM ledger_clock",
        ):
            with pytest.raises(Exception, match="ledger_clock only moves forward"):
                con.execute(statement)
        assert len(con.execute("SELECT * FROM ledger_clock").fetchall()) == 1


def test_a_store_from_before_commit_stamping_starts_its_clock_after_its_latest_event(ledger, store_url, skewed):
    """A store whose events were stamped by a writer an hour fast, before the clock existed: its
    next commit is still recorded after every event it holds."""
    skewed(+1)
    ledger.append(commands(*domain_example("L1")))
    latest = max(e.timestamp for e in ledger.loan_events("L1"))
    ledger.close()
    with raw(store_url) as con:
        con.execute("DROP TABLE ledger_clock")  # as a store from before the clock looked
    skewed(0)
    upgraded = Ledger(Settings(db_url=store_url))
    with raw(store_url) as con:
        assert con.execute("SELECT last_us FROM ledger_clock").fetchall() == [(commit_time.micros_of(latest),)]
    upgraded.append(commands(repaid("L1")))
    assert upgraded.loan_events("L1")[-1].timestamp > latest
    assert verify(upgraded.recorder).ok
    upgraded.close()


def test_stamping_changes_only_the_recorded_time(ledger):
    """The stamp rewrites one span of the state the library encoded; decoded, the event is the same
    event at the new time, and its chain hash covers the stamped bytes (verify stays green)."""
    ledger.append(commands(*domain_example("L1")))
    event = ledger.loan_events("L1")[0]
    stored = ledger.mapper.to_stored_event(event)
    us = commit_time.micros_of(datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC))  # no microseconds: still 6 digits
    (stamped,) = commit_time.restamp([stored], us)
    again = ledger.mapper.to_domain_event(stamped)
    assert again.timestamp == datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert {k: v for k, v in vars(again).items() if k != "timestamp"} == {
        k: v for k, v in vars(event).items() if k != "timestamp"
    }
    assert stamped.state.replace(b"2031-05-06T07:08:09.000000+00:00", b"") == stored.state.replace(
        event.timestamp.isoformat().encode(), b""
    )
    assert verify(ledger.recorder).ok


def test_a_ledger_event_that_cannot_be_stamped_is_refused_not_stored_unstamped():
    foreign = StoredEvent(loan_uuid("L1"), 1, "tests:Other", b"state1")
    assert commit_time.restamp([foreign], 1) == [foreign]  # the library's recorder tests store such bytes
    odd = StoredEvent(loan_uuid("L1"), 1, "domain.loan:Loan.Applied", b'{"loan_id":"L1"}')
    with pytest.raises(commit_time.UnstampableEvent):
        commit_time.restamp([odd], 1)
