"""Money: CNY amounts as Decimal with exactly two places (fen).

Amounts arrive as JSON strings ("1000.00", "12.5") or JSON integers (whole
yuan). Anything that could silently lose a fen is refused: floats, more than two
decimal places, exponents, NaN and infinities. The JSON layer hands floats over
as ``JsonFloat`` (never as ``float``) so this module can name them in the error.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

from domain.errors import InvalidAmount as InvalidAmount  # re-exported: parse_amount raises it to callers

FEN = Decimal("0.01")
ZERO = Decimal("0.00")
# The largest amount one command may carry (``LEDGER_MAX_AMOUNT`` overrides it). Far above any
# micro-loan movement, far below what the views' 64-bit fen columns hold: an accepted amount can
# never overflow a sum on the read side.
DEFAULT_MAX_AMOUNT = Decimal("1000000.00")

# Plain ASCII decimal notation only: no sign, no exponent, no padding, at most two places.
# (``Decimal`` itself would accept "０.８", "٠.٥" and " 1.00": all refused here.)
_AMOUNT_TEXT = re.compile(r"(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?", re.ASCII)


class JsonFloat:
    """The source text of a JSON number with a fraction or exponent.

    Kept as text so that a rejected ``12.345`` is reported as written, and so
    that no binary float ever exists on the way in. Deliberately not a ``str``:
    a number must not slip into a text field either.
    """

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def parse_amount(
    value: object, field: str, *, allow_zero: bool = False, maximum: Decimal = DEFAULT_MAX_AMOUNT
) -> Decimal:
    """Parse an incoming amount into fen-exact Decimal at most ``maximum``, or raise InvalidAmount."""
    if isinstance(value, bool):
        raise InvalidAmount(field, f"{value!r} is a boolean, not an amount")
    if isinstance(value, JsonFloat):
        raise InvalidAmount(
            field,
            f'JSON number {value} is a float; send amounts as strings (e.g. "{value}") or whole-yuan integers',
        )
    if isinstance(value, float):
        raise InvalidAmount(field, f"float {value!r} is not accepted for money")
    if isinstance(value, int):
        if value > maximum:  # before Decimal(): a 10**26 integer would not fit the context
            raise InvalidAmount(field, f"{value} is over the limit of {maximum} (LEDGER_MAX_AMOUNT)")
        amount = Decimal(value)
    elif isinstance(value, str):
        text = value
        if text.startswith("-"):
            raise InvalidAmount(field, f"{value!r} is negative")
        if not _AMOUNT_TEXT.fullmatch(text):
            raise InvalidAmount(
                field,
                f"{value!r} is not a plain amount with at most 2 decimal places (no exponent, sign, NaN or Infinity)",
            )
        amount = Decimal(text)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidAmount(field, f"{value} is not a finite amount")
        if value.as_tuple().exponent < -2:  # type: ignore[operator]
            raise InvalidAmount(field, f"{value} has more than 2 decimal places")
        amount = value
    else:
        raise InvalidAmount(field, f"{type(value).__name__} is not an amount")
    if amount < 0:
        raise InvalidAmount(field, f"{value!r} is negative")
    if amount == 0 and not allow_zero:
        raise InvalidAmount(field, f"{value!r} must be greater than zero")
    if amount > maximum:
        raise InvalidAmount(field, f"{fmt(amount)} is over the limit of {fmt(maximum)} (LEDGER_MAX_AMOUNT)")
    return amount.quantize(FEN)


def round_half_up(amount: Decimal) -> Decimal:
    """Round to the fen, half away from zero, as the accrual rules require."""
    return amount.quantize(FEN, rounding=ROUND_HALF_UP)


def fmt(amount: Decimal) -> str:
    """Render an amount the way the wire format carries it: two places, no exponent."""
    return f"{amount.quantize(FEN):f}"
