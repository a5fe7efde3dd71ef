"""A safe end of day: no future day is closed, and an earlier day than one already closed adds nothing."""

from __future__ import annotations

import json
from datetime import date

from click.testing import CliRunner
from support.commands import domain_example

from cli.main import cli
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def example_store(url: str) -> Ledger:
    app = Ledger(Settings(db_url=url))
    app.append([command_from_dict(c) for c in domain_example()])  # L1 due 2026-03-15
    return app


def test_a_day_after_today_is_refused_and_nothing_is_written(store_url):
    app = example_store(store_url)
    head = app.recorder.max_notification_id()
    result = CliRunner().invoke(cli, ["eod", "--date", "2036-03-20", "--json", "--db", store_url])
    assert result.exit_code == 2, result.output
    assert "2036-03-20 is after today" in result.output
    assert app.recorder.max_notification_id() == head
    loan = app.get_loan("L1")
    assert loan.written_off_on is None and loan.overdue_marks == []
    app.close()


def test_closing_an_earlier_day_than_one_already_closed_adds_no_mark(store_url):
    app = example_store(store_url)
    later = json.loads(run("eod", "--date", "2026-04-20", "--json", "--db", store_url).output)  # DPD 36: M2
    assert later["outcomes"] == {"overdue:appended": 1}
    head = app.recorder.max_notification_id()
    earlier = run("eod", "--date", "2026-03-20", "--json", "--db", store_url)  # DPD 5: would be M1
    assert earlier.exit_code == 0, earlier.output
    assert json.loads(earlier.output)["outcomes"] == {} and json.loads(earlier.output)["already_closed"] == 1
    human = run("eod", "--date", "2026-03-20", "--db", store_url).output
    assert "nothing to do (1 already closed for a later day)" in human
    assert app.recorder.max_notification_id() == head
    assert app.get_loan("L1").overdue_marks == [(date(2026, 4, 20), 36, "M2")]
    app.close()


def test_an_overdue_mark_dated_before_the_last_one_is_refused(store_url):
    app = example_store(store_url)
    run("eod", "--date", "2026-04-20", "--db", store_url)
    [outcome] = app.append(
        [
            command_from_dict(
                {
                    "type": "overdue",
                    "loan_id": "L1",
                    "idempotency_key": "late-mark",
                    "occurred_at": "2026-04-21T10:00:00+08:00",
                    "as_of": "2026-03-20",
                }
            )
        ]
    )
    assert outcome.status == "rejected" and "before the last mark on 2026-04-20" in outcome.error
    app.close()
