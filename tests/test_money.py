"""Money parsing: what is accepted, and what is refused with a reason naming it."""

from decimal import Decimal as D

import pytest

from domain.errors import InvalidAmount
from domain.money import JsonFloat, parse_amount, round_half_up


@pytest.mark.parametrize(
    "value,expected",
    [
        ("1000.00", D("1000.00")),
        ("12.5", D("12.50")),
        ("7", D("7.00")),
        (1000, D("1000.00")),
        ("0.01", D("0.01")),
    ],
)
def test_accepted_amounts_become_two_place_decimals(value, expected):
    amount = parse_amount(value, "amount")
    assert amount == expected and amount.as_tuple().exponent == -2


@pytest.mark.parametrize(
    "value,reason",
    [
        (JsonFloat("12.5"), "is a float"),
        (12.5, "float"),
        ("12.345", "at most 2 decimal places"),
        ("1e3", "no exponent"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-5.00", "negative"),
        (-5, "negative"),
        ("0.00", "greater than zero"),
        (0, "greater than zero"),
        (True, "boolean"),
        ("", "not a plain amount"),
        ("1,000.00", "not a plain amount"),
        (None, "not an amount"),
    ],
)
def test_refused_amounts_say_why(value, reason):
    with pytest.raises(InvalidAmount, match=reason) as e:
        parse_amount(value, "amount")
    assert e.value.field == "amount"


def test_zero_is_allowed_where_the_rule_allows_it():
    assert parse_amount("0", "fee", allow_zero=True) == D("0.00")


@pytest.mark.parametrize("raw,rounded", [("0.25425", "0.25"), ("0.125", "0.13"), ("0.135", "0.14"), ("0.0049", "0.00")])
def test_round_half_up_to_the_fen(raw, rounded):
    assert round_half_up(D(raw)) == D(rounded)
