"""The end of day hands the loans it read to the append: the same events as reading them again,
and a loan another writer changed in between still gets a true answer, on both stores."""

from __future__ import annotations

from datetime import date
from uuid import UUID

import pytest
from eventsourcing.persistence import OperationalError
from support.commands import domain_example, repaid

from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from ledger.eod import EodReport, eod_commands, run_eod

LOANS = ["L1", "L2", "L3", "L4"]
DAYS = [date(2026, 3, 20), date(2026, 4, 20), date(2026, 6, 20)]  # M1, M2, then past the write-off point


def book_of(url: str) -> Ledger:
    """L1 unpaid, L2 half repaid, L3 repaid in full (nothing due), L4 funded later (not due on the first day)."""
    app = Ledger(Settings(db_url=url))
    lines = [c for loan in LOANS for c in domain_example(loan)]
    lines += [repaid("L2", ref="R2", amount="500.00"), repaid("L3", ref="R3", amount="1008.50")]
    for c in lines:
        if c["loan_id"] == "L4" and c["type"] == "funded":
            c["value_date"] = "2026-03-10"
    assert {o.status for o in app.append([command_from_dict(c) for c in lines])} == {"appended"}
    return app


def facts(app: Ledger) -> dict[str, list]:
    """Every loan's events as facts: recorded times differ between two stores, and should."""
    return {
        loan_id: [
            (type(e).__name__, e.originator_version, {k: v for k, v in vars(e).items() if k != "timestamp"})
            for e in app.loan_events(loan_id)
        ]
        for loan_id in LOANS
    }


def eod_reading_twice(app: Ledger, day: date) -> list[tuple[str, str]]:
    """The end of day as it was before the hand-over: decide on one read, append on a fresh one."""
    loans = app.get_loans(LOANS)
    cmds = [
        c for loan in loans.values() if loan is not None for c in eod_commands(loan, day, app.settings.write_off_dpd)
    ]
    return sorted((c.type, o.status) for c, o in zip(cmds, app.append(cmds), strict=True))


def counted(report: EodReport) -> list[tuple[str, str]]:
    return sorted(key for key, n in report.outcomes.items() for _ in range(n))


def test_the_loans_handed_over_give_the_same_events_as_a_fresh_read(new_store):
    handed, fresh = book_of(new_store()), book_of(new_store())
    assert facts(handed) == facts(fresh)
    for day in [*DAYS, DAYS[-1]]:  # the last day twice: the second run only finds duplicates
        report = run_eod(handed, day)
        assert counted(report) == eod_reading_twice(fresh, day) and not report.rejected
    book = facts(handed)
    assert book == facts(fresh)
    marks = [(f["as_of"], f["bucket"]) for e, _, f in book["L1"] if e == "Overdue"]
    assert marks == [(date(2026, 3, 20), "M1"), (date(2026, 4, 20), "M2"), (date(2026, 6, 20), "M3+")]
    assert [e for e, _, _ in book["L1"]][-1] == "WrittenOff" and [e for e, _, _ in book["L3"]][-1] == "Repaid"
    handed.close()
    fresh.close()


class RacedLedger(Ledger):
    """Between the end of day's read of its loans and its append, another writer stores a repayment
    on L2 and closes the same day for L1 itself (as a second `ledger eod` process would)."""

    name = "Ledger"  # the library names a subclass's PostgreSQL table after the class otherwise

    def __init__(self, settings: Settings, day: date):
        super().__init__(settings)
        self.day, self.raced = day, False

    def get_loans_by_uuid(self, uuids: list[UUID], names: dict[UUID, str] | None = None) -> dict:
        loans = super().get_loans_by_uuid(uuids, names)
        if not self.raced:
            self.raced = True
            other = Ledger(self.settings)
            l1 = other.get_loan("L1")
            cmds = [
                *eod_commands(l1, self.day, self.settings.write_off_dpd),
                command_from_dict(repaid("L2", ref="R2-late", amount="100.00", value_date="2026-03-19")),
            ]
            assert [o.status for o in other.append(cmds)] == ["appended", "appended"]
            other.close()
        return loans


def test_a_loan_changed_between_the_read_and_the_append_gets_a_true_answer(new_store):
    url = new_store()
    book_of(url).close()
    day = DAYS[0]
    app = RacedLedger(Settings(db_url=url), day)
    report = run_eod(app, day)
    assert app.raced and not report.rejected
    # L1: the other writer's mark is the one stored; ours is its duplicate. L2: marked on its new state.
    assert counted(report) == [("overdue", "appended"), ("overdue", "duplicate")]
    l1, l2 = app.get_loan("L1"), app.get_loan("L2")
    assert l1.overdue_marks == [(day, 5, "M1")]
    assert l2.overdue_marks == [(day, 5, "M1")] and "R2-late" in {m.key for m in l2.money_in}
    assert not run_eod(app, day).outcomes  # both marked for the day: nothing left to decide
    app.close()


def test_the_compact_candidates_are_the_open_loans_in_order(store_url):
    from domain.loan import loan_uuid
    from projections import runner
    from projections.balances import open_loan_ids, open_loan_uuids

    app = book_of(store_url)
    runner.catch_up(app)
    db = runner.views(app)
    for day in [date(2026, 3, 15), *DAYS]:
        assert list(open_loan_uuids(db, day)) == [loan_uuid(loan_id) for loan_id in open_loan_ids(db, day)]
    assert [str(u) for u in open_loan_uuids(db, DAYS[0])] == [
        str(loan_uuid(x)) for x in ["L1", "L2"]
    ]  # L3 repaid, L4 not due yet
    app.close()


class LosingLedger(Ledger):
    """Loses the store once, at its first save of a batch: before the commit, or just after it."""

    name = "Ledger"

    def __init__(self, settings: Settings, after_commit: bool):
        super().__init__(settings)
        self.after_commit, self.lost = after_commit, False

    def _save(self, staged: list) -> None:
        if not self.lost and staged:
            self.lost = True
            if self.after_commit:
                super()._save(staged)
            raise OperationalError("database is locked")  # what a busy store or a cut connection raises
        super()._save(staged)


@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
def test_a_store_lost_during_the_append_is_retried_on_a_fresh_read(new_store, after_commit):
    """Staging moved the handed-over loans on: the retry must read them again, not stage twice."""
    url = new_store()
    book_of(url).close()
    app = LosingLedger(Settings(db_url=url, retry_seconds=5), after_commit)
    report = run_eod(app, DAYS[0])
    assert app.lost and not report.rejected
    assert counted(report) == [("overdue", "appended"), ("overdue", "appended")]
    for loan_id in ["L1", "L2"]:
        assert app.get_loan(loan_id).overdue_marks == [(DAYS[0], 5, "M1")]
    app.close()
