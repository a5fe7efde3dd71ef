"""The once-per-line search for unsafe characters answers exactly as the per-string check did.

parse_command skips the per-string search when the line has no backslash and no unsafe
character anywhere; any line, valid or not, must get the same command or the same refusal
(word for word) as when every string is searched.
"""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from support.commands import applied, approved, funded, repaid

from api.body import decode_batch, rejected, single_command
from domain.errors import InvalidCommand
from ledger.app import Outcome
from ledger.commands import _UNSAFE_CHARS, DEFAULT_MAX_AMOUNT, command_from_dict, decode_json, parse_command

_valid = [applied(), approved(), funded(), repaid(), applied(borrower={"name": "张三"})]
# Characters either side of the line: controls, C1, separators, bidi overrides, escapes, quotes.
_tricky = st.sampled_from(
    [
        "\x00",
        "\x07",
        "\t",
        "\x7f",
        "\x85",
        "\u2028",
        "\u202e",
        "\u2066",
        "\u200b",
        "\ufeff",
        "\u00ad",
        "\\",
        '"',
        "é",
        "贷",
    ]
)
_texts = st.text(alphabet=st.characters(codec="utf-8") | _tricky, max_size=12)


def _answer(parse):
    try:
        return parse().model_dump()
    except InvalidCommand as e:
        return str(e)


def _decoded(line: str):
    try:
        return decode_json(line)
    except ValueError:  # refused before any string is looked at, on both paths alike
        return None


@st.composite
def lines(draw) -> str:
    cmd = dict(draw(st.sampled_from(_valid)))
    field = draw(st.sampled_from([*cmd, "borrower", "bank_ref"]))
    text = draw(_texts)
    if draw(st.booleans()):
        cmd[field] = {"name": text} if field == "borrower" else text
    else:
        cmd[text] = "x"  # as a field name
    line = json.dumps(cmd, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):  # raw characters between tokens, where JSON may or may not allow them
        at = line.index(",") + 1
        line = line[:at] + draw(st.sampled_from([" ", "\t", "\x7f", "\u2028", "\r"])) + line[at:]
    return line


@given(lines())
def test_one_search_per_line_answers_as_a_search_per_string(line):
    data = _decoded(line)
    assume(data is not None)
    slow = _answer(lambda: command_from_dict(data))  # every string searched
    assert _answer(lambda: parse_command(line)) == slow
    assert _answer(lambda: parse_command(line.encode())) == slow


def test_a_control_character_in_a_string_is_refused_without_any_backslash():
    line = json.dumps(repaid(bank_ref="R\x7f1"), ensure_ascii=False)
    assert "\\" not in line
    assert _answer(lambda: parse_command(line)) == "bank_ref: control character '\\x7f' (U+007F) is not accepted"


@pytest.mark.parametrize("char", ["\u200b", "\ufeff", "\u2060", "\u200e", "\u00ad", "\u200d", "\U000e0041"])
@pytest.mark.parametrize("field", ["idempotency_key", "bank_ref", "loan_id", "borrower_id", "model_version", "bank"])
def test_an_invisible_format_character_is_refused_in_every_id_and_reference(field, char):
    """Reproduction: `ZW-1` and `ZW-1` + U+200B appended two repayments that look alike."""
    cmd = {"bank_ref": repaid, "idempotency_key": repaid, "loan_id": repaid}.get(field, applied)()
    if field == "model_version":
        cmd = approved()
    if field == "bank":
        cmd = funded()
    cmd[field] = "ZW-1" + char
    for line in (json.dumps(cmd, ensure_ascii=False), json.dumps(cmd)):  # raw, and as a \\u escape
        answer = _answer(lambda line=line: parse_command(line))
        assert f"{field}: invisible format character" in answer and f"(U+{ord(char):04X}) is not accepted" in answer


def test_the_format_characters_refused_are_every_cf_character_of_this_python():
    """The Cf ranges in ledger/commands.py are Unicode 14's: a newer Python with new ones fails here."""
    missing = [f"U+{cp:04X}" for cp in range(0x110000) if unicodedata.category(chr(cp)) == "Cf"]
    missing = [cp for cp in missing if not _UNSAFE_CHARS.fullmatch(chr(int(cp[2:], 16)))]
    assert missing == []


@given(lines(), st.sampled_from(["", "\n", "\r\n", " "]))
def test_a_single_requests_one_search_answers_as_a_search_per_string(line, end):
    """POST /v1/commands: the body searched once, as parse_command searches a line (issue 29)."""
    body = line + end
    data = _decoded(body)
    assume(data is not None)
    slow = _answer(lambda: command_from_dict(data))
    assert _answer(lambda: single_command(data, body, DEFAULT_MAX_AMOUNT)) == slow


def _batch_answer(item):
    return item.model_dump() if not isinstance(item, Outcome) else (item.error, item.code, item.field, item.loan_id)


@given(st.lists(lines(), min_size=1, max_size=4), st.sampled_from(["", "\n"]))
def test_a_batchs_one_search_answers_as_a_search_per_string(items, end):
    """POST /v1/commands/batch: one search of the whole body answers for every item's strings, and any
    item's unsafe character sends every item through the search per string."""
    body = '{"commands": [' + ", ".join(items) + "]}" + end
    data = _decoded(body)
    assume(data is not None)
    slow = []
    for item in data["commands"]:
        try:
            slow.append(_batch_answer(command_from_dict(item)))
        except InvalidCommand as e:
            slow.append(_batch_answer(rejected(item, e)))
    assert [_batch_answer(c) for c in decode_batch(body.encode(), DEFAULT_MAX_AMOUNT)] == slow
