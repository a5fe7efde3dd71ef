"""Whatever a sender writes, every line ends appended, duplicate or refused, and nothing accepted
can stop the ledger from answering (issue 10: total parsing and unpoisonable reads).

Hypothesis feeds arbitrary bytes, arbitrary JSON values, and valid commands with one field
replaced by an arbitrary JSON value, to the parser and through ``append_lines`` into both stores;
then the projection catches up and every read the operators use still answers.
"""

from __future__ import annotations

import json
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st
from support.commands import applied, approved, domain_example, funded, repaid

from domain.errors import InvalidCommand
from ledger.app import Ledger
from ledger.commands import _Command, parse_command
from ledger.config import Settings
from ledger.ingest import append_lines
from projections import runner
from projections.balances import portfolio, trial_balance
from projections.loan_view import loan_view

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.text(max_size=40)
    | st.sampled_from(["1.00", "0", "1e3", "NaN", "-1", "0.0005", "2026-03-08", "2026-03-08T12:00:00+08:00", " "])
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# P1 starts a new loan; the repayment and the collection land on L1, which the file funds first
_collected = {**repaid(), "type": "collected", "agency": "inhouse", "idempotency_key": "C1"}
del _collected["bank_ref"]
_valid = [applied("P1"), approved("P1"), funded("P1"), repaid(), _collected]


def _fresh_keys(cmd: dict, n: int) -> dict:
    """Another money movement, not a retry of the first: its own key and bank reference."""
    cmd = {**cmd, "idempotency_key": f"{cmd['idempotency_key']}-{n}"}
    if "bank_ref" in cmd:
        cmd["bank_ref"] = f"{cmd['bank_ref']}-{n}"
    return cmd


@st.composite
def mutated_commands(draw) -> str:
    """A valid command with one field replaced (or added) by an arbitrary JSON value."""
    cmd = _fresh_keys(draw(st.sampled_from(_valid)), draw(st.integers(0, 9)))
    field = draw(st.sampled_from([*cmd, "borrower", "extra"]))
    cmd[field] = draw(json_values)
    return json.dumps(cmd)


@st.composite
def fractional_numbers(draw) -> str:
    """Money and rates written as raw JSON numbers (json.dumps never writes these itself)."""
    cmd = _fresh_keys(draw(st.sampled_from(_valid)), draw(st.integers(0, 9)))
    field = draw(st.sampled_from(["amount", "principal", "fee", "daily_rate", "score"]))
    number = draw(st.from_regex(r"-?[0-9]{1,30}(\.[0-9]{1,6})?([eE][+-]?[0-9]{1,4})?", fullmatch=True))
    return json.dumps({**cmd, field: "__N__"}).replace('"__N__"', number)


@st.composite
def money_movements(draw) -> str:
    """A repayment or collection on the funded loan, of any integer or decimal-text amount."""
    cmd = _fresh_keys(draw(st.sampled_from(_valid[3:])), draw(st.integers(0, 99)))
    amount = draw(st.integers(1, 10**30) | st.from_regex(r"[0-9]{1,30}(\.[0-9]{1,2})?", fullmatch=True))
    return json.dumps({**cmd, "amount": amount})


any_line = (
    st.binary(max_size=200)
    | money_movements()
    | json_values.map(json.dumps)
    | mutated_commands()
    | fractional_numbers()
    | st.sampled_from([json.dumps(c) for c in _valid])
)


def _parses_or_refuses(line: str | bytes) -> None:
    try:
        assert isinstance(parse_command(line), _Command)
    except InvalidCommand as e:
        assert str(e) and "\n" not in str(e)


@given(st.binary(max_size=400))
def test_any_bytes_parse_or_are_refused(data):
    _parses_or_refuses(data)


@given(json_values)
def test_any_json_value_parses_or_is_refused(value):
    _parses_or_refuses(json.dumps(value))


@settings(max_examples=300)
@given(st.one_of(mutated_commands(), fractional_numbers()))
def test_any_field_holding_any_json_value_parses_or_is_refused(line):
    _parses_or_refuses(line)


@settings(max_examples=40)
@given(lines=st.lists(money_movements() | any_line, max_size=12))
def test_any_file_gets_one_answer_a_line_and_every_read_still_works(new_store, lines):
    app = Ledger(Settings(db_url=new_store()))
    try:
        file = [json.dumps(c).encode() for c in domain_example()] + [
            line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass") for line in lines
        ]
        file = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in file]  # one line each
        outcomes = list(append_lines(app, file))
        expected = [n for n, line in enumerate(file, start=1) if line.strip()]
        assert [o.line for o in outcomes] == expected
        assert {o.outcome.status for o in outcomes} <= {"appended", "duplicate", "rejected"}
        for o in outcomes:
            assert (o.outcome.status == "rejected") == (o.outcome.error is not None)
        # nothing accepted can poison a read: the projection catches up, the book balances
        runner.catch_up(app)
        db = runner.views(app)
        for day in (date(2026, 3, 20), date(2100, 12, 31)):
            assert trial_balance(db, day) == 0
            for by in ("bank", "product", "bucket", "state"):
                portfolio(db, day, by)
        for loan_id in {o.outcome.loan_id for o in outcomes if o.outcome.status == "appended"}:
            loan = app.get_loan(loan_id)
            assert loan is not None
            loan_view(loan, app.loan_events(loan_id), date(2100, 12, 31), None)
    finally:
        app.close()
