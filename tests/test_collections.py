"""Collections assignment (issue 24): an agency collects only the loans handed to it, on the days it holds them."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from support.commands import assigned, collected, domain_example, recalled, repaid

from cli.main import cli
from domain.errors import InvalidCommand, LedgerError
from domain.loan import INHOUSE, Loan
from ledger.commands import command_from_dict
from ledger.config import Settings
from ledger.eod import run_eod
from ledger.handlers import handle
from projections import runner

# L1 of support.commands: 1,000.00 funded 2026-03-01, due 2026-03-15; owes 1,017.00 on 2026-03-20 (DPD 5)


def append(ledger, *commands):
    return ledger.append([command_from_dict(c) for c in commands])


def appended(ledger, *commands) -> None:
    outcomes = append(ledger, *commands)
    assert [o.status for o in outcomes] == ["appended"] * len(commands), outcomes


def refused(ledger, command: dict) -> str:
    """The command is rejected, nothing of it is stored; its error."""
    before = len(ledger.loan_events(command["loan_id"]))
    [outcome] = append(ledger, command)
    assert outcome.status == "rejected", outcome
    assert len(ledger.loan_events(command["loan_id"])) == before
    return outcome.error


def test_an_agency_never_handed_the_loan_cannot_post_a_collection_for_it(ledger):
    """The issue's reproduction: any agency name could post a `collected` for any loan."""
    appended(ledger, *domain_example())
    error = refused(ledger, collected("ANY-AGENCY", "2026-03-20"))
    assert error.startswith("loan L1 is overdue, in-house on 2026-03-20; cannot apply 'collected'")
    assert "only 'inhouse'" in error and "'ANY-AGENCY'" in error
    appended(ledger, collected(INHOUSE, "2026-03-20"))  # the platform's own collections may


def test_while_assigned_only_that_agency_collects_and_after_the_recall_only_inhouse(ledger):
    appended(ledger, *domain_example(), assigned("AG-A", "2026-03-20"))
    error = refused(ledger, collected("AG-B", "2026-03-22"))
    assert error.startswith("loan L1 is overdue, with AG-A since 2026-03-20; cannot apply 'collected'")
    assert "AG-A does" in error
    refused(ledger, collected(INHOUSE, "2026-03-22"))
    refused(ledger, collected("AG-A", "2026-03-19"))  # the day before it held the loan
    appended(ledger, collected("AG-A", "2026-03-22"), recalled("2026-04-01"))
    refused(ledger, collected("AG-A", "2026-04-01"))  # the recall's value date is in-house again
    # a late remittance for a day the agency held the loan is still its own
    appended(ledger, collected("AG-A", "2026-03-25", key="late-AG-A"), collected(INHOUSE, "2026-04-02"))
    # recalled and handed to another agency on one day: the new agency holds it that day
    appended(ledger, assigned("AG-B", "2026-04-10"), recalled("2026-04-20"), assigned("AG-C", "2026-04-20"))
    refused(ledger, collected("AG-B", "2026-04-20"))
    appended(ledger, collected("AG-C", "2026-04-20"), collected("AG-B", "2026-04-19"))
    loan = ledger.get_loan("L1")
    assert [(a.agency, a.since, a.until) for a in loan.assignments] == [
        ("AG-A", date(2026, 3, 20), date(2026, 4, 1)),
        ("AG-B", date(2026, 4, 10), date(2026, 4, 20)),
        ("AG-C", date(2026, 4, 20), None),
    ]


A20 = assigned("AG-A", "2026-03-20")
_REFUSALS = [
    (
        [],
        assigned("AG-A", "2026-03-10"),
        "is funded, in-house on 2026-03-10; cannot apply 'assigned': nothing is past due",
    ),
    ([], assigned("AG-A", "2026-02-27"), "'assigned': value_date 2026-02-27 is before funding on 2026-03-01"),
    ([], assigned(INHOUSE, "2026-03-20"), "cannot apply 'assigned': 'inhouse' is the platform's own collections"),
    (
        [A20],
        assigned("AG-B", "2026-03-25"),
        "with AG-A since 2026-03-20; cannot apply 'assigned': it is already with AG-A",
    ),
    ([A20], assigned("AG-B", "2026-03-25"), "recall it first"),
    ([collected(INHOUSE, "2026-03-25")], assigned("AG-A", "2026-03-22"), "value_date must be after 2026-03-25"),
    (
        [collected(INHOUSE, "2026-03-25")],
        assigned("AG-A", "2026-03-25"),
        "inhouse collected on 2026-03-25; a hand-over",
    ),
    (
        [repaid(amount="1012.00", value_date="2026-03-15")],
        A20,
        "is repaid, in-house on 2026-03-20; cannot apply 'assigned'",
    ),
    ([], recalled("2026-03-20"), "in-house on 2026-03-20; cannot apply 'recalled': it is not with a collection agency"),
    ([A20], recalled("2026-03-19"), "cannot apply 'recalled': value_date 2026-03-19 is before its assignment to AG-A"),
    (
        [A20, collected("AG-A", "2026-03-28")],
        recalled("2026-03-25"),
        "'recalled': AG-A collected on 2026-03-28",
    ),
    ([A20, collected("AG-A", "2026-03-28")], recalled("2026-03-28"), "its value_date must be after 2026-03-28"),
    (
        [A20, recalled("2026-03-25")],
        assigned("AG-B", "2026-03-24"),
        "'assigned': value_date 2026-03-24 is before 2026-03-25",
    ),
]


@pytest.mark.parametrize("before, command, says", _REFUSALS)
def test_each_refusal_names_the_loan_its_state_and_holder_and_the_command(ledger, before, command, says):
    appended(ledger, *domain_example(), *before)
    error = refused(ledger, command)
    assert error.startswith("loan L1 is ") and says in error, error


@pytest.mark.parametrize("command", [assigned("AG-A", "2026-03-20"), recalled("2026-03-20")])
def test_a_loan_not_funded_can_be_neither_assigned_nor_recalled(ledger, command):
    appended(ledger, *domain_example()[:2])
    error = refused(ledger, command)
    assert error.startswith(f"loan L1 is approved; cannot apply '{command['type']}': only a funded loan"), error
    unknown = refused(ledger, {**command, "loan_id": "NOPE"})
    assert unknown == f"loan NOPE is unknown; cannot apply '{command['type']}': no such loan has applied"


@pytest.mark.parametrize(
    "command, error",
    [
        ({**assigned("AG-A", "2026-03-20"), "agent": "x"}, "assigned for loan L1: agent: unknown field"),
        ({**recalled("2026-03-20"), "agency": "AG-A"}, "recalled for loan L1: agency: unknown field"),
        ({k: v for k, v in A20.items() if k != "agency"}, "agency: required field is missing"),
        (assigned(" ", "2026-03-20"), "agency: ' ' is blank"),
        (recalled("2026-02-30"), "value_date: '2026-02-30' is not a real date"),
    ],
)
def test_assigned_and_recalled_refuse_unknown_missing_and_malformed_fields(command, error):
    with pytest.raises(InvalidCommand) as raised:
        command_from_dict(command)
    assert error in str(raised.value)


def test_a_loan_written_off_before_it_fell_due_goes_to_a_recovery_agency(ledger):
    written_off = {
        "type": "written_off",
        "loan_id": "L1",
        "idempotency_key": "W1",
        "occurred_at": "2026-03-10T18:00:00+08:00",
        "value_date": "2026-03-10",
        "reason": "fraud",
    }
    appended(ledger, *domain_example(), written_off)
    appended(ledger, assigned("RECOVERY-X", "2026-03-12"))  # not past due (due 03-15), but written off
    [spell] = ledger.get_loan("L1").assignments
    # 9 nights of 0.50 and the 5.00 fee (9.50) held to the cost ceiling: round_down(0.36 x 1,000 x 9 / 365) = 8.87
    assert (spell.dpd, spell.bucket, spell.owed) == (0, "current", D("1008.87"))
    appended(ledger, collected("RECOVERY-X", "2026-03-30", amount="300.00"))
    accounts = _accounts(ledger, date(2026, 3, 30))
    assert accounts["recovery_income"] == D("-300.00")


def test_replay_never_rejudges_an_assignment_made_unlawful_by_a_later_backdated_repayment(ledger):
    appended(ledger, *domain_example(), assigned("AG-A", "2026-03-20"))
    # the bank's callback arrives late: the loan was paid off on its due date, so it was never past due on 03-20
    appended(ledger, repaid(ref="LATE", amount="1012.00", value_date="2026-03-15"))
    refused(ledger, assigned("AG-B", "2026-03-20", key="again"))  # a new assignment would be refused (recall first)
    loan = ledger.get_loan("L1")  # loads: the stored assignment is history, not re-judged
    assert loan.current_assignment().owed == D("1017.00")  # as the ledger found it when the agency took it
    runner.catch_up(ledger)
    rows = runner.views(ledger).query("SELECT agency, dpd, bucket, owed_fen FROM proj_assignments")
    assert rows == [("AG-A", 5, "M1", 101700)]
    runner.rebuild(ledger)
    assert runner.views(ledger).query("SELECT agency, dpd, bucket, owed_fen FROM proj_assignments") == rows


def test_the_end_of_day_job_marks_and_writes_off_but_never_assigns(ledger):
    appended(ledger, *domain_example())
    outcomes = set()
    for day in (date(2026, 3, 20), date(2026, 4, 20), date(2026, 6, 14)):
        outcomes |= set(run_eod(ledger, day).outcomes)
    assert outcomes == {("overdue", "appended"), ("written_off", "appended")}
    kinds = [type(e).__name__ for e in ledger.loan_events("L1")]
    assert "WrittenOff" in kinds and "Assigned" not in kinds


def test_loan_show_names_the_agency_holding_the_loan_on_the_date_and_the_history(store_url):
    from ledger.app import Ledger

    app = Ledger(Settings(db_url=store_url))
    appended(app, *domain_example(), assigned("AG-A", "2026-03-20"), recalled("2026-04-01"))
    app.close()

    def show(day: str) -> dict:
        result = CliRunner().invoke(cli, ["loan", "show", "L1", "--as-of", day, "--db", store_url, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert [show(d)["agency"] for d in ("2026-03-19", "2026-03-20", "2026-03-31", "2026-04-01")] == [
        INHOUSE,
        "AG-A",
        "AG-A",
        INHOUSE,
    ]
    events = {e["type"]: e for e in show("2026-04-01")["events"]}
    assert events["assigned"]["agency"] == "AG-A" and events["assigned"]["owed"] == "1017.00"
    assert events["recalled"]["agency"] == "AG-A" and events["recalled"]["value_date"] == "2026-04-01"
    human = CliRunner().invoke(cli, ["loan", "show", "L1", "--as-of", "2026-04-01", "--db", store_url])
    assert "assigned" in human.output and "recalled" in human.output and "agency AG-A" in human.output
    assert "collector inhouse" in human.output.splitlines()[0]
    held = CliRunner().invoke(cli, ["loan", "show", "L1", "--as-of", "2026-03-25", "--db", store_url])
    assert "bucket M1  collector AG-A  (as of 2026-03-25)" in held.output.splitlines()[0]


def _accounts(ledger, day: date) -> dict:
    from projections.balances import account_balances

    runner.catch_up(ledger)
    return account_balances(runner.views(ledger), day)


# ---- an invariant: whatever arrives, in whatever order, custody and collections stay one story -------------
_AGENCIES = ("AG-A", "AG-B", INHOUSE)
_START = date(2026, 3, 1)


@st.composite
def collections_traffic(draw) -> list[dict]:
    commands, offset = [], 10
    for i in range(draw(st.integers(1, 14))):
        offset = max(0, offset + draw(st.integers(-6, 15)))  # mostly forward in time, sometimes backdated
        day = (_START + timedelta(days=offset)).isoformat()
        kind = draw(st.sampled_from(["assigned", "assigned", "recalled", "collected", "collected", "reversed"]))
        if kind == "assigned":
            commands.append(assigned(draw(st.sampled_from(_AGENCIES)), day, key=f"A{i}"))
        elif kind == "recalled":
            commands.append(recalled(day, key=f"R{i}"))
        elif kind == "collected":
            commands.append(collected(draw(st.sampled_from(_AGENCIES)), day, amount="50.00", key=f"C{i}"))
        elif any(c["type"] == "collected" for c in commands):
            commands.append(
                {
                    "type": "reversed",
                    "loan_id": "L1",
                    "idempotency_key": f"X{i}",
                    "occurred_at": "2026-05-01T10:00:00+08:00",
                    "reverses": draw(st.sampled_from([c["idempotency_key"] for c in commands if "amount" in c])),
                    "reason": "returned",
                }
            )
    return commands


@settings(max_examples=150)
@given(collections_traffic())
def test_every_collection_kept_names_the_holder_of_its_value_date_and_spells_never_overlap(traffic):
    loan: Loan | None = None
    the_settings = Settings()
    for command in domain_example():
        loan = handle(loan, command_from_dict(command), the_settings)
    assert loan is not None
    for command in traffic:
        try:
            loan = handle(loan, command_from_dict(command), the_settings)
        except LedgerError as e:
            assert str(e).startswith("loan L1")  # refused, naming the loan: never a traceback
    spells = loan.assignments
    for earlier, later in zip(spells, spells[1:], strict=False):
        assert earlier.until is not None and earlier.since <= earlier.until <= later.since
    assert all(s.agency != INHOUSE and s.dpd > 0 and s.owed > 0 for s in spells)
    for money in loan.money_in:  # a reversed collection is void: it holds no later recall back
        assert money.reversed_by is not None or money.agency == loan.collector_on(money.value_date), (money, spells)
    replayed = None
    for e in loan.collect_events():
        replayed = e.mutate(replayed)
    assert replayed is not None and replayed.assignments == spells and replayed.money_in == loan.money_in
