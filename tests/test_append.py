"""Appending through the application, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import itertools
import json
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.commands import applied, approved, declined, domain_example, funded, loan_streams, repaid
from support.footprint import table_rows

from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from ledger.ingest import append_lines


def append(app: Ledger, *dicts):
    return app.append([command_from_dict(d) for d in dicts])


def footprint(app: Ledger):
    """Everything a rejected command could have touched: the log head and the stored keys."""
    keys = app.recorder.find_keys(["app-L1", "score-L1", "BANKA-D-L1", "R1", "R2", "X1", "app-L2", "score-L2"])
    return app.recorder.max_notification_id(), sorted(keys)


def test_the_domain_example_as_a_user_appends_it(ledger):
    assert [o.status for o in append(ledger, *domain_example())] == ["appended"] * 3
    p = ledger.get_loan("L1").position(date(2026, 3, 20))
    assert (p.total, p.outstanding.penalty, p.dpd, p.bucket) == (D("1017.00"), D("5.00"), 5, "M1")
    assert ledger.get_loan("L1").state_as_of(date(2026, 3, 20)) == "overdue"


def test_a_retried_batch_is_acknowledged_and_appends_nothing(ledger):
    append(ledger, *domain_example(), repaid())
    head = ledger.recorder.max_notification_id()
    assert [o.status for o in append(ledger, *domain_example(), repaid())] == ["duplicate"] * 4
    assert ledger.recorder.max_notification_id() == head


def test_a_duplicate_inside_one_batch_is_appended_once(ledger):
    outcomes = append(ledger, *domain_example(), repaid(), repaid())
    assert [o.status for o in outcomes] == ["appended"] * 4 + ["duplicate"]
    # 500.00 on 8 March pays 3.50 interest, the fee up to the cost ceiling (3.40), then 493.10 principal
    assert ledger.get_loan("L1").position(date(2026, 3, 8)).outstanding.principal == D("506.90")


def test_a_repeat_of_a_rejected_command_in_one_batch_is_not_acknowledged(ledger):
    append(ledger, *domain_example())
    early = repaid(value_date="2026-02-27")  # before funding: rejected
    outcomes = append(ledger, early, early)
    assert [o.status for o in outcomes] == ["rejected", "rejected"]
    assert "was used earlier in this batch by a command that was rejected" in outcomes[1].error
    assert ledger.get_loan("L1").money_in == []


def test_the_same_amount_written_differently_is_the_same_content(ledger):
    append(ledger, *domain_example(), repaid(amount="500.00"))
    again = repaid(amount=500, occurred_at="2026-03-08T04:00:00+00:00")  # same instant, other offset
    assert append(ledger, again)[0].status == "duplicate"


def test_the_same_key_with_other_content_is_a_conflict_and_appends_nothing(ledger):
    append(ledger, *domain_example(), repaid())
    before = footprint(ledger)
    [outcome] = append(ledger, repaid(amount="501.00"))
    assert outcome.status == "rejected"
    assert "idempotency_key 'R1' was already used (loan L1) with different content" in outcome.error
    assert footprint(ledger) == before


def test_a_key_reused_on_another_loan_is_a_conflict(ledger):
    append(ledger, *domain_example(), repaid())
    append(ledger, applied("L2"), approved("L2"), funded("L2"))
    [outcome] = append(ledger, repaid("L2"))
    assert outcome.status == "rejected" and "(loan L1)" in outcome.error


def _with(cmd, **changes):
    return {**cmd, **changes}


BAD_LINES = [
    (
        "float amount",
        json.dumps(repaid())[:-1].replace('"amount": "500.00"', '"amount": 500.5') + "}",
        "JSON number 500.5 is a float",
    ),
    ("too many decimals", json.dumps(repaid(amount="500.005")), "at most 2 decimal places"),
    ("negative amount", json.dumps(repaid(amount="-500.00")), "negative"),
    ("zero amount", json.dumps(repaid(amount="0.00")), "greater than zero"),
    ("NaN", json.dumps(repaid()).replace('"500.00"', "NaN"), "NaN is not a number"),
    ("exponent", json.dumps(repaid(amount="5e2")), "no exponent"),
    ("impossible date", json.dumps(repaid(value_date="2026-02-30")), "'2026-02-30' is not a real date"),
    ("date without offset", json.dumps(repaid(occurred_at="2026-03-08T12:00:00")), "has no UTC offset"),
    ("unknown field", json.dumps(_with(repaid(), memo="x")), "memo: unknown field"),
    (
        "missing field",
        json.dumps({k: v for k, v in repaid().items() if k != "bank_ref"}),
        "bank_ref: required field is missing",
    ),
    ("unknown type", json.dumps(_with(repaid(), type="refinanced")), "'refinanced' is not one of"),
    ("bad loan id", json.dumps(repaid(loan_id="L 1")), "loan_id: String should match pattern"),
    ("garbage", "this is not json", "not valid JSON"),
    ("not an object", "[1, 2]", "expected a JSON object"),
    ("decline with terms", json.dumps(_with(declined(), fee="5.00")), "a decline carries no terms; remove fee"),
    ("term too long", json.dumps(applied(term_days=31)), "term_days 31 is outside 7-30"),
    ("principal too big", json.dumps(applied(principal="5000.01")), "principal 5000.01 is outside"),
    ("score above 1", json.dumps(approved(score="1.2")), "score 1.2 is outside 0-1"),
]


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _raw(cmd: dict, field: str, raw_json: str) -> str:
    """``cmd`` as JSON with ``field``'s value written as raw JSON text (numbers json.dumps cannot make)."""
    marker = "__RAW__"
    return json.dumps({**cmd, field: marker}).replace(f'"{marker}"', raw_json)


# Found by fuzzing or by users (issue 10): each was accepted and broke a read later, or crashed
# the whole file. Each must now be one clean, line-numbered refusal.
HOSTILE_LINES = [
    ("huge integer amount", _raw(repaid(), "amount", "100000000000000000000"), "over the limit of 1000000.00"),
    ("integer amount 10^26", _raw(repaid(), "amount", "1" + "0" * 26), "over the limit"),
    ("integer amount 10^17", _raw(repaid(), "amount", "1" + "0" * 17), "over the limit"),
    ("string amount over the limit", json.dumps(repaid(amount="1000000.01")), "over the limit of 1000000.00"),
    ("fraction inside borrower", _raw(applied("L9"), "borrower", '{"income": 1.5}'), "values must be strings"),
    ("not UTF-8", b'{"type": "repaid", "amount": "\xff"}', "not UTF-8 (byte 0xff"),
    ("nested 5000 deep", '{"type": "repaid", "x": ' + "[" * 5000 + "]" * 5000 + "}", "nested"),
    ("year 1", json.dumps(repaid(occurred_at="0001-01-01T00:00:00+08:00")), "outside 2000-01-01..2100-12-31"),
    ("year 9999 value date", json.dumps(funded("L9", value_date="9999-12-18")), "outside 2000-01-01..2100-12-31"),
    # The ledger's day is Asia/Shanghai's: an instant written on 2100-12-31 at -12:00 falls on 2101-01-01
    # there, a loan applied on a day no value date can reach (it could never be funded).
    (
        "last day west of Shanghai",
        json.dumps(applied("L9", occurred_at="2100-12-31T23:59:59-12:00")),
        "falls on 2101-01-01 in Asia/Shanghai, outside 2000-01-01..2100-12-31",
    ),
    (
        "first day east of Shanghai",
        json.dumps(repaid(occurred_at="2000-01-01T00:00:00+14:00")),
        "falls on 1999-12-31 in Asia/Shanghai, outside 2000-01-01..2100-12-31",
    ),
    ("lone surrogate", _raw(applied("L9"), "borrower", '{"name": "\\ud800"}'), "control character"),
    ("NUL in borrower", json.dumps(applied("L9", borrower={"name": "a\u0000b"})), "control character"),
    ("NUL in a text field", json.dumps(applied("L9", product="pay\u0000day")), "product: control character"),
    ("repeated key", json.dumps(repaid())[:-1] + ', "amount": "400.00"}', "key 'amount' appears twice"),
    ("full-width digits", json.dumps(repaid(amount="\uff10.\uff18")), "not a plain amount"),
    ("Arabic-Indic digits", json.dumps(repaid(amount="\u0660.\u0665")), "not a plain amount"),
    ("padded amount", json.dumps(repaid(amount=" 1.00")), "not a plain amount"),
    ("padded rate", json.dumps(approved("L9", daily_rate=" 0.0005")), "not a plain decimal number"),
    ("blank bank_ref", json.dumps(repaid(bank_ref=" ")), "bank_ref: ' ' is blank"),
    ("line over 64 KiB", json.dumps(applied("L9", product="x" * 70_000)), "longer than the limit of 65536 bytes"),
    ("string over 256", json.dumps(applied("L9", channel="c" * 257)), "257 characters is over the limit of 256"),
    (
        "borrower of 33 keys",
        json.dumps(applied("L9", borrower={f"k{i}": "v" for i in range(33)})),
        "over the limit of 32",
    ),
    ("nested borrower", json.dumps(applied("L9", borrower={"a": {"b": "c"}})), "must be strings, got an object"),
    ("basic-format timestamp", json.dumps(repaid(occurred_at="20260308T120000+0800")), "not an RFC 3339 timestamp"),
    ("short offset", json.dumps(repaid(occurred_at="2026-03-08T12:00:00+08")), "not an RFC 3339 timestamp"),
    ("loan_id with a newline", json.dumps(repaid(loan_id="L1\nappended 999")), "loan_id: control character"),
]


@pytest.mark.parametrize("name,line,error", BAD_LINES + HOSTILE_LINES, ids=[b[0] for b in BAD_LINES + HOSTILE_LINES])
def test_a_bad_line_is_refused_alone_and_writes_nothing(ledger, name, line, error):
    """The bad line sits between valid lines of one batch: it is refused with its line number and
    reason, its neighbours are appended, and no table holds a row for it."""
    append(ledger, *domain_example())
    before = table_rows(ledger)
    around = [applied("N1"), approved("N1"), funded("N1", idempotency_key="BANKA-D-N1", bank_ref="BANKA-D-N1")]
    lines = [_bytes(json.dumps(c)) for c in around[:2]] + [line if isinstance(line, bytes) else _bytes(line)]
    lines += [_bytes(json.dumps(around[2]))]
    outcomes = list(append_lines(ledger, lines))
    assert [(o.line, o.outcome.status) for o in outcomes] == [
        (1, "appended"),
        (2, "appended"),
        (3, "rejected"),
        (4, "appended"),
    ]
    assert error in outcomes[2].outcome.error
    after = table_rows(ledger)
    grew = {table: after[table] - before.get(table, 0) for table in after if after[table] != before.get(table, 0)}
    assert grew == {ledger.recorder.events_table_name: 3, "ledger_idempotency": 3}


RULE_BREAKS = [
    (
        "fund a declined loan",
        [applied("L2"), declined("L2")],
        funded("L2"),
        "loan L2 is declined; cannot apply 'funded'",
    ),
    (
        "repay an unfunded loan",
        [applied("L2"), approved("L2")],
        repaid("L2", ref="R2"),
        "loan L2 is approved; cannot apply 'repaid'",
    ),
    (
        "fund twice",
        [],
        funded(idempotency_key="BANKA-D-2", bank_ref="BANKA-D-2"),
        "loan L1 is funded; cannot apply 'funded'",
    ),
    (
        "apply twice",
        [],
        applied(idempotency_key="app-again"),
        "loan L1 is funded; cannot apply 'applied': the loan already exists",
    ),
    ("score twice", [], approved(idempotency_key="score-again"), "loan L1 is funded; cannot apply 'scored'"),
    ("repay an unknown loan", [], repaid("L9", ref="R2"), "loan L9 is unknown; cannot apply 'repaid'"),
    (
        "over-cap pricing",
        [applied("L2")],
        approved("L2", daily_rate="0.0008", fee="20.00"),
        "annualised cost 81.3429% exceeds the cap of 36.00%",
    ),
    (
        "funding amount differs",
        [applied("L2"), approved("L2")],
        funded("L2", amount="999.00"),
        "amount 999.00 must equal the approved principal 1000.00",
    ),
    (
        "repayment before funding",
        [],
        repaid(value_date="2026-02-27"),
        "value_date 2026-02-27 is before funding on 2026-03-01",
    ),
    ("same bank_ref twice", [repaid()], repaid(idempotency_key="R1-again"), "bank_ref 'R1' is already recorded"),
    (
        "reverse an unknown key",
        [],
        {
            "type": "reversed",
            "loan_id": "L1",
            "idempotency_key": "X1",
            "occurred_at": "2026-03-09T10:00:00+08:00",
            "reverses": "nope",
            "reason": "x",
        },
        "no repayment, collection, waiver or refund with idempotency_key 'nope'",
    ),
    (
        "overdue when not due",
        [],
        {
            "type": "overdue",
            "loan_id": "L1",
            "idempotency_key": "X1",
            "occurred_at": "2026-03-09T10:00:00+08:00",
            "as_of": "2026-03-10",
        },
        "nothing is past due as of 2026-03-10",
    ),
]


@pytest.mark.parametrize("name,setup,cmd,error", RULE_BREAKS, ids=[r[0] for r in RULE_BREAKS])
def test_illegal_commands_are_rejected_naming_loan_and_state_and_nothing_is_appended(ledger, name, setup, cmd, error):
    append(ledger, *domain_example(), *setup)
    before = footprint(ledger)
    [outcome] = append(ledger, cmd)
    assert outcome.status == "rejected"
    assert error in outcome.error
    assert footprint(ledger) == before


def test_a_rejected_line_does_not_stop_the_valid_lines_around_it(ledger):
    outcomes = append(ledger, *domain_example(), funded(idempotency_key="again", bank_ref="again"), repaid())
    assert [o.status for o in outcomes] == ["appended", "appended", "appended", "rejected", "appended"]


def test_a_backdated_repayment_rederives_balances_and_history_stays_auditable(ledger):
    append(ledger, *domain_example())
    before_callback = datetime.now(UTC)
    # the bank's callback for a 500.00 repayment valued 2026-03-08 arrives late
    append(ledger, repaid(occurred_at="2026-03-19T10:00:00+08:00"))
    now = ledger.get_loan("L1").position(date(2026, 3, 20))
    assert now.outstanding.principal == D("506.90")  # the fee was paid up to the cost ceiling, 3.40 of 5.00
    assert now.outstanding.interest == D("0.25") * 7
    assert now.outstanding.penalty == D("0.51") * 5  # 506.90 x 0.001 = 0.5069 -> 0.51 a night
    then = ledger.get_loan("L1", known_at=before_callback).position(date(2026, 3, 20))
    assert then.total == D("1017.00")  # what the ledger knew before the callback


def test_a_reversal_takes_the_repayment_out_and_rederives(ledger):
    append(ledger, *domain_example(), repaid())
    reversal = {
        "type": "reversed",
        "loan_id": "L1",
        "idempotency_key": "X1",
        "occurred_at": "2026-03-10T10:00:00+08:00",
        "reverses": "R1",
        "reason": "payment bounced",
    }
    assert append(ledger, reversal)[0].status == "appended"
    assert ledger.get_loan("L1").position(date(2026, 3, 20)).total == D("1017.00")
    [again] = append(ledger, _with(reversal, idempotency_key="X2"))
    assert again.status == "rejected" and "'R1' was already reversed by 'X1'" in again.error


def test_payment_in_full_closes_the_loan_and_excess_is_owed_back(ledger):
    append(ledger, *domain_example(), repaid(amount="1020.00", value_date="2026-03-15"))
    loan = ledger.get_loan("L1")
    p = loan.position(date(2026, 4, 1))
    assert loan.state_as_of(date(2026, 4, 1)) == "repaid"
    assert (p.total, p.overpayment, p.dpd) == (D("0.00"), D("8.00"), 0)


def test_personal_data_stays_out_of_the_events_and_can_be_erased(ledger):
    from click.testing import CliRunner

    from cli.main import cli

    append(ledger, applied(borrower={"name": "Zhang San", "phone": "13800000000"}), approved(), funded())
    stored = b"".join(n.state for n in ledger.recorder.select_notifications(1, 100))
    assert b"Zhang" not in stored and b"13800000000" not in stored
    assert ledger.recorder.borrower_data("B1") == {"name": "Zhang San", "phone": "13800000000"}
    head = ledger.recorder.max_notification_id()
    forget = CliRunner().invoke(cli, ["borrower", "forget", "B1", "--db", ledger.settings.db_url])
    assert forget.exit_code == 0 and "erased B1" in forget.output
    assert ledger.recorder.borrower_data("B1") is None
    assert ledger.recorder.max_notification_id() == head  # history untouched
    assert ledger.get_loan("L1").position(date(2026, 3, 20)).total == D("1017.00")
    again = CliRunner().invoke(cli, ["borrower", "forget", "B1", "--db", ledger.settings.db_url])
    assert again.exit_code == 0 and "the erasure on record is finished" in again.output  # the clean-up, again


_loan_numbers = itertools.count()


def _fresh_loan(stream):
    """Hypothesis reuses one store across examples: give each example its own loan and keys."""
    loan_id = f"H{next(_loan_numbers)}"
    prefix = lambda key: f"{loan_id}:{key}"  # noqa: E731
    fresh = [{**c, "loan_id": loan_id, "idempotency_key": prefix(c["idempotency_key"])} for c in stream]
    for c in fresh:
        if c["type"] == "reversed":
            c["reverses"] = prefix(c["reverses"])
    return loan_id, fresh


@settings(max_examples=25)
@given(stream=loan_streams(), cut=st.integers(0, 100))
def test_reappending_any_prefix_changes_nothing(store_url, stream, cut):
    app = Ledger(Settings(db_url=store_url))
    try:
        loan_id, stream = _fresh_loan(stream)
        first = append(app, *stream)
        if app.get_loan(loan_id) is None:
            return
        head, state = app.recorder.max_notification_id(), app.get_loan(loan_id).position(date(2026, 12, 31))
        prefix = stream[: cut % (len(stream) + 1)]
        again = append(app, *prefix)
        assert app.recorder.max_notification_id() == head
        assert app.get_loan(loan_id).position(date(2026, 12, 31)) == state
        for was, now in zip(first[: len(prefix)], again, strict=True):
            assert now.status == ("duplicate" if was.status == "appended" else "rejected")
    finally:
        app.close()


@settings(max_examples=25)
@given(stream=loan_streams(adjustments=True))
def test_replaying_stored_events_gives_the_state_that_was_saved(store_url, stream):
    app = Ledger(Settings(db_url=store_url))
    try:
        loan_id, stream = _fresh_loan(stream)
        # the aggregate as built in memory by the handlers, before the round trip through the store
        from domain.errors import LedgerError
        from ledger.handlers import handle

        in_memory = None
        for c in stream:
            with contextlib.suppress(LedgerError):
                in_memory = handle(in_memory, command_from_dict(c), app.settings)
        append(app, *stream)
        replayed = app.get_loan(loan_id)
        assert replayed.version == in_memory.version
        attrs = ("phase", "terms", "funded_on", "money_in", "adjustments", "overdue_marks", "written_off_on", "keys")
        for attr in (*attrs, "bank"):
            assert getattr(replayed, attr) == getattr(in_memory, attr)
        for day in (date(2026, 3, 10), date(2026, 4, 1), date(2026, 9, 1)):
            assert replayed.position(day) == in_memory.position(day)
    finally:
        app.close()
