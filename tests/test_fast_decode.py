"""Issue 29: stored events decoded without the library's per-dict hook (eventstore/decode.py) give the
library's own objects, and refuse exactly what the library refuses, with the same errors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from hypothesis import given, settings
from hypothesis import strategies as st
from support.commands import domain_example
from support.tamper import EVENTS, kind, raw, triggers_off

from domain.errors import DamagedStream, UnreadableEvent
from domain.loan import Loan, loan_uuid
from eventstore.store import LoanMapper, StateDecoder, event_transcoder
from ledger.commands import command_from_dict

MAPPER = LoanMapper(event_transcoder())
STATE_DECODER = StateDecoder(event_transcoder())  # the dataset's reader of states (projections/dataset_facts.py)
STREAM = loan_uuid("L1")
REPAID = get_topic(Loan.Repaid)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (``Decimal('1E+2') == 100`` is not enough)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, datetime):
        return a == b and a.tzinfo == b.tzinfo and a.isoformat() == b.isoformat()
    return bool(a == b)


def assert_same_event(fast: Any, library: Any) -> None:
    assert type(fast) is type(library)
    assert same(vars(fast), vars(library)), (vars(fast), vars(library))


def outcome(decode: Any, stored: StoredEvent) -> tuple[str, Any]:
    try:
        return "event", decode(stored)
    except Exception as e:  # noqa: BLE001 - the test compares whatever each path raises
        return type(e).__name__, str(e)


def assert_same_outcome(stored: StoredEvent) -> None:
    """The mapper as the ledger uses it decodes ``stored`` as the library does, or refuses it alike."""
    ours, theirs = outcome(MAPPER.to_domain_event, stored), outcome(MAPPER.library_event, stored)
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "event":
        assert_same_event(ours[1], theirs[1])
    else:
        assert ours[1] == theirs[1]


def test_every_stored_event_of_a_simulated_book_decodes_to_the_librarys_own_object(ledger, simulated_book):
    simulated_book(seed=5, loans=40, days=45, settle=True)
    notes = list(ledger.notifications())
    topics = {n.topic for n in notes}
    assert {get_topic(Loan.Applied), get_topic(Loan.Funded), get_topic(Loan.Overdue)} <= topics
    assert any(not t.startswith("domain.loan:Loan.") for t in topics)  # a bank's settlement stream too
    for n in notes:
        fast = ledger.mapper._fast.event(n)
        assert fast is not None, f"the fast path left {n.topic} to the library"  # it is what reads use
        assert_same_event(fast, ledger.mapper.library_event(n))
        assert_same_event(ledger.mapper.to_domain_event(n), fast)
        state = STATE_DECODER._fast.state(n.state)  # the dataset's reading of the same state
        assert state is not None, f"the fast path left {n.topic}'s state to the transcoder"
        assert same(state, STATE_DECODER.transcoder.decode(n.state))


# Values the stored form can hold, as the ledger's events hold them and beyond: Decimals with
# exponents and fen amounts far past any loan, dates, datetimes with and without an offset, ids, text.
DECIMALS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [Decimal("1E+2"), Decimal("-0"), Decimal("0E-8"), Decimal("123456789012345678.99"), Decimal("1.10")]
    ),
    st.integers(-(10**30), 10**30).map(lambda fen: Decimal(fen).scaleb(-2)),
)
OFFSETS = st.sampled_from([None, UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))])
DATETIMES = st.builds(lambda d, tz: d.replace(tzinfo=tz), st.datetimes(), OFFSETS)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.text(max_size=12),
    DECIMALS,
    st.dates(),
    DATETIMES,
    st.uuids(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
STATES = st.dictionaries(st.text(max_size=10), VALUES, max_size=8)
TOPICS = st.sampled_from([get_topic(cls) for cls in (Loan.Applied, Loan.Repaid, Loan.Funded, Loan.Overdue)])


@settings(max_examples=300)
@given(state=STATES, topic=TOPICS, version=st.integers(1, 10**6))
def test_awkward_values_decode_to_the_same_values_of_the_same_types(state, topic, version):
    stored = StoredEvent(STREAM, version, topic, MAPPER.transcoder.encode(state))
    fast = MAPPER._fast.event(stored)
    assert fast is not None  # no floats here: the fast path decides every one of these
    assert_same_event(fast, MAPPER.library_event(stored))


@settings(max_examples=100)
@given(state=STATES, number=st.floats(allow_nan=False) | st.integers(2**64, 2**80))
def test_a_float_or_a_huge_integer_is_left_to_the_library_and_read_as_it_reads_it(state, number):
    state["x"] = [number]
    assert_same_outcome(StoredEvent(STREAM, 2, REPAID, MAPPER.transcoder.encode(state)))


# Objects shaped like the transcoder's wrappers, or holding its keys, anywhere in a state.
WRAPPERISH = st.fixed_dictionaries(
    {"_type_": st.sampled_from(["decimal_str", "date_iso", "nope", 1]) | st.none(), "_data_": VALUES}
) | st.dictionaries(st.sampled_from(["_type_", "_data_", "class_version", "originator_id"]), VALUES, max_size=3)
ODD_STATES = (
    st.dictionaries(
        st.sampled_from(["_type_", "_data_", "class_version", "originator_version", "amount"]) | st.text(max_size=3),
        VALUES | WRAPPERISH | st.lists(WRAPPERISH, max_size=2),
        max_size=4,
    )
    | WRAPPERISH
)


@settings(max_examples=300)
@given(state=ODD_STATES)
def test_objects_shaped_like_wrappers_are_read_or_refused_as_the_library_does(state):
    assert_same_outcome(StoredEvent(STREAM, 2, REPAID, json.dumps(state, default=str).encode()))


@pytest.mark.parametrize(
    "state",
    [
        b'{"_type_":"decimal_str","_data_":"1"}',
        b'{"a":{"_type_":"decimal_str","_data_":{"_type_":"decimal_str","_data_":"1"}}}',
        b'{"a":[{"_type_":"date_iso","_data_":"2026-01-02"},[{"_type_":"decimal_str","_data_":"1E+2"}]]}',
        b'{"a":{"_type_":1,"_data_":"1"}}',
        b'{"a":{"_type_":"decimal_str","_data_":"1","b":2}}',
        b'{"class_version":2,"a":1}',
        b'{"class_version":"2","a":1}',
    ],
    ids=[
        "whole state a wrapper",
        "wrapper in wrapper",
        "wrappers in lists",
        "type not text",
        "three keys",
        "newer class",
        "class text",
    ],
)
def test_wrapper_corner_cases_are_read_or_refused_as_the_library_does(state):
    assert_same_outcome(StoredEvent(STREAM, 2, REPAID, state))


GOOD = (
    b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-03-05T02:00:00.123456+00:00"},'
    b'"amount":{"_type_":"decimal_str","_data_":"12.50"},"bank_ref":"R1",'
    b'"value_date":{"_type_":"date_iso","_data_":"2026-03-05"},"idempotency_key":"rep-1",'
    b'"occurred_at":{"_type_":"datetime_iso","_data_":"2026-03-05T10:00:00+08:00"}}'
)
# Tokens a hand edit or a broken restore could leave in a state.
AWKWARD = [
    b"NaN",
    b"1e400",
    b"-0",
    b"0.1",
    b"\xff",
    b"\xed\xa0\x80",
    b'"\\ud800"',
    b"\x01",
    b"\xef\xbb\xbf",
    b"9" * 5000,
]
AWKWARD += [b'{"_type_":"nope","_data_":"x"}', b'{"_type_":"decimal_str","_data_":"abc"}', b'{"_type_":"date_iso"}']
AWKWARD += [b'{"_type_":"date_iso","_data_":"2026-02-30"}', b'{"_type_":"uuid_hex","_data_":7}', b"[]", b"{}", b","]
AWKWARD += [b'{"_type_":"decimal_str","_data_":{"_type_":"decimal_str","_data_":"1"}}', b'"class_version":2', b" "]


@settings(max_examples=300)
@given(at=st.integers(0, len(GOOD)), cut=st.integers(0, 8), token=st.sampled_from(AWKWARD))
def test_a_damaged_state_is_refused_with_the_librarys_own_error_or_read_as_it_reads_it(at, cut, token):
    state = GOOD[:at] + token + GOOD[at + cut :]
    assert_same_outcome(StoredEvent(STREAM, 3, REPAID, state))


@pytest.mark.parametrize(
    ("state", "topic", "why"),
    [
        (b"not json", REPAID, "its state is not JSON"),
        (b'{"a":{"_type_":"nope","_data_":"x"}}', REPAID, "its state cannot be decoded"),
        (b'{"a":{"_type_":"decimal_str","_data_":"12,50"}}', REPAID, "its state cannot be decoded"),
        (b'{"a":{"_type_":"date_iso","_data_":"2026-02-30"}}', REPAID, "its state is not JSON"),  # the library's words
        (b'{"a":"\xff"}', REPAID, "its state is not JSON"),
        (GOOD, "domain.loan:Loan.Bogus", "its topic 'domain.loan:Loan.Bogus' names no event type"),
    ],
    ids=["not JSON", "unknown type name", "bad decimal", "bad date", "not UTF-8", "bogus topic"],
)
def test_what_the_library_refuses_is_refused_with_the_same_unreadable_event(state, topic, why):
    stored = StoredEvent(STREAM, 2, topic, state)
    assert MAPPER._fast.event(stored) is None
    with pytest.raises(UnreadableEvent) as raised:
        MAPPER.to_domain_event(stored)
    assert (raised.value.version, raised.value.why) == (2, why)
    assert_same_outcome(stored)


def test_a_state_that_is_text_not_bytes_is_refused_as_the_library_refuses_it():
    """SQLite hands back a TEXT cell as str: the library cannot decode it, and neither may the fast path."""
    stored = StoredEvent(STREAM, 2, REPAID, GOOD.decode())  # type: ignore[arg-type]
    assert MAPPER._fast.event(stored) is None
    assert_same_outcome(stored)


def test_the_stored_form_the_ledger_writes_is_what_the_fast_path_reads():
    """It converts the transcoder's own names (a renamed transcoding would be declined, not misread)."""
    assert set(MAPPER._fast._by_name) == {"uuid_hex", "decimal_str", "datetime_iso", "date_iso"}
    event = MAPPER.to_domain_event(StoredEvent(STREAM, 3, REPAID, GOOD))
    assert isinstance(event, Loan.Repaid)
    assert (event.amount, event.value_date, event.originator_id, event.originator_version) == (
        Decimal("12.50"),
        date(2026, 3, 5),
        STREAM,
        3,
    )
    assert event.occurred_at.utcoffset() == timedelta(hours=8)
    assert json.loads(GOOD)["bank_ref"] == event.bank_ref
    assert isinstance(event.originator_id, UUID)


@pytest.mark.parametrize(("damage", "version"), [("state", 1), ("state", 2), ("order", 2)])
def test_the_batch_read_names_the_loan_whose_stored_event_cannot_be_read(ledger, damage, version):
    """``_loans_from`` (the end of day's, the settlement's and an append's read of many loans) names the
    damaged loan once it no longer wraps each event in ``damage_named``; the healthy loan still reads."""
    ledger.append([command_from_dict(c) for c in [*domain_example("L1"), *domain_example("L2")]])
    url = ledger.settings.db_url
    table = EVENTS[kind(url)]
    placeholder = "?" if kind(url) == "sqlite" else "%s"
    change = "state = ?" if damage == "state" else "originator_version = 7"
    change = change.replace("?", placeholder)
    params: tuple[Any, ...] = (b"not json",) if damage == "state" else ()
    with raw(url) as con, triggers_off(url, con, table):
        con.execute(
            f"UPDATE {table} SET {change} WHERE originator_id = {placeholder} AND originator_version = {version}",
            (*params, loan_uuid("L2").hex if kind(url) == "sqlite" else loan_uuid("L2")),
        )
    error = UnreadableEvent if damage == "state" else DamagedStream
    with pytest.raises(error) as raised:
        ledger.get_loans(["L1", "L2"])
    assert raised.value.loan == "L2"  # from the first event, or from the id asked for when that is the damaged one
    assert str(raised.value).startswith("loan L2: ")
    loan = ledger.get_loans(["L1"])["L1"]
    assert loan is not None and loan.loan_id == "L1"


def test_amounts_and_dates_remembered_past_the_memorys_bound_still_decode_to_their_own_values():
    """Each distinct text is converted once and shared; past MAX_MEMO the memory starts again, never mixing values."""
    from eventstore.decode import MAX_MEMO

    mapper = LoanMapper(event_transcoder())
    encode = mapper.transcoder.encode
    for i in [*range(MAX_MEMO + 50), *range(0, MAX_MEMO + 50, 97)]:  # past the bound, then texts seen before again
        amount, day = Decimal(i).scaleb(-2), date(2026, 1, 1) + timedelta(days=i % 400)
        stored = StoredEvent(STREAM, 2, REPAID, encode({"amount": amount, "value_date": day, "again": amount}))
        event = mapper.to_domain_event(stored)
        assert same(vars(event), vars(mapper.library_event(stored)))
        assert (event.amount, event.value_date) == (amount, day)
    memo = mapper._fast._by_name["decimal_str"][1]
    assert memo is not None and 0 < len(memo) <= MAX_MEMO


def decoded(decode: Any, data: bytes) -> tuple[str, Any]:
    try:
        return "state", decode(data)
    except Exception as e:  # noqa: BLE001 - the test compares whatever each path raises
        return type(e).__name__, str(e)


@settings(max_examples=300)
@given(
    data=st.one_of(
        STATES.map(MAPPER.transcoder.encode),
        ODD_STATES.map(lambda state: json.dumps(state, default=str).encode()),
        st.builds(
            lambda at, cut, token: GOOD[:at] + token + GOOD[at + cut :],
            st.integers(0, len(GOOD)),
            st.integers(0, 8),
            st.sampled_from(AWKWARD),
        ),
        st.sampled_from([b"not json", b"[]", b'{"_type_":"decimal_str","_data_":"1"}', GOOD]),
    )
)
def test_a_state_read_without_its_event_is_what_the_transcoder_gives_or_refused_as_it_refuses(data):
    """The dataset's rows read states, not events: the same values of the same types as the library's
    transcoder, and what it refuses refused with its own error (the dataset names it, line and loan)."""
    ours, theirs = decoded(STATE_DECODER.decode, data), decoded(STATE_DECODER.transcoder.decode, data)
    assert ours[0] == theirs[0], (ours, theirs)
    if ours[0] == "state":
        assert same(ours[1], theirs[1]), (ours, theirs)
    else:
        assert ours[1] == theirs[1]
