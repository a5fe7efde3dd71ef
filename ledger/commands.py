"""The wire format: one JSON object per line, validated before anything is appended.

Exactly the commands of CONTRACT.md; unknown fields are rejected, not ignored.
JSON is decoded so that no number becomes a binary float: fractions and
exponents arrive as ``JsonFloat`` text, and ``NaN``/``Infinity`` are refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_serializer,
    model_validator,
)

from domain.errors import InvalidAmount, InvalidCommand
from domain.money import JsonFloat, parse_amount
from domain.terms import PRINCIPAL_MAX, PRINCIPAL_MIN, TERM_DAYS_MAX, TERM_DAYS_MIN

MAX_LINE_BYTES = 64 * 1024  # a command is a few hundred bytes; anything huge is garbage
PERSONAL_FIELDS = ("borrower",)  # kept out of events and out of the idempotency fingerprint


# ---- field types ------------------------------------------------------------
def _money(value: object, *, allow_zero: bool = False) -> Decimal:
    try:
        return parse_amount(value, "amount", allow_zero=allow_zero)
    except InvalidAmount as e:
        raise ValueError(e.reason) from None


def _money_or_zero(value: object) -> Decimal:
    return _money(value, allow_zero=True)


def _rate(value: object) -> Decimal:
    """Rates and scores: exact decimal from the JSON text, never via float."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal, JsonFloat)):
        raise ValueError(f"{value!r} is not a decimal number")
    try:
        rate = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not rate.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return rate


def _calendar_date(value: object) -> date:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"{value!r} is not a date in YYYY-MM-DD form")
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise ValueError(f"{value!r} is not a real date ({e})") from None


def _aware_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{value!r} has no UTC offset (e.g. +08:00)")
    return moment


def _strict_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a JSON integer")
    return value


Money = Annotated[Decimal, BeforeValidator(_money)]
Rate = Annotated[Decimal, BeforeValidator(_rate)]
CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]
AwareDatetime = Annotated[datetime, BeforeValidator(_aware_datetime)]
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Text = Annotated[str, Field(min_length=1, max_length=128)]
Note = Annotated[str, Field(min_length=1, max_length=500)]


def _between(lo: Any, hi: Any, what: str):
    def check(value: Any) -> Any:
        if not lo <= value <= hi:
            raise ValueError(f"{what} {value} is outside {lo}-{hi}")
        return value

    return AfterValidator(check)


Principal = Annotated[Money, _between(PRINCIPAL_MIN, PRINCIPAL_MAX, "principal")]
TermDays = Annotated[int, BeforeValidator(_strict_int), _between(TERM_DAYS_MIN, TERM_DAYS_MAX, "term_days")]
DailyRate = Annotated[Rate, _between(Decimal(0), Decimal("0.1"), "rate")]
Score = Annotated[Rate, _between(Decimal(0), Decimal(1), "score")]
GraceDays = Annotated[int, BeforeValidator(_strict_int), _between(0, 30, "grace_days")]
Fee = Annotated[Decimal, BeforeValidator(_money_or_zero)]


# ---- commands ---------------------------------------------------------------
class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    loan_id: Ident
    idempotency_key: Annotated[str, Field(min_length=1, max_length=128)]
    occurred_at: AwareDatetime

    @cached_property
    def content_hash(self) -> str:
        """Fingerprint of what the command says, so a retry is told from a conflict.

        Normalised first: "12.5" and "12.50" are one Decimal, and one instant
        written in two offsets is one UTC time (see ``_utc_in_json``). Personal
        data is left out (as if absent, so commands without any hash as before):
        the fingerprint outlives an erasure and must not confirm a guessed phone
        number; a re-sent ``applied`` differing only in ``borrower`` is a duplicate.
        """
        personal = {name: None for name in PERSONAL_FIELDS if name in type(self).model_fields}
        return hashlib.sha256(self.model_copy(update=personal).model_dump_json().encode()).hexdigest()

    @field_serializer("occurred_at", when_used="json")
    def _utc_in_json(self, moment: datetime) -> str:
        return moment.astimezone(UTC).isoformat()


class Applied(_Command):
    type: Literal["applied"]
    borrower_id: Ident
    principal: Principal
    term_days: TermDays
    product: Text
    channel: Text
    borrower: dict[str, Any] | None = Field(default=None, max_length=50)


class Scored(_Command):
    type: Literal["scored"]
    score: Score
    model_version: Text
    decision: Literal["approved", "declined"]
    principal: Principal | None = None
    term_days: TermDays | None = None
    daily_rate: DailyRate | None = None
    fee: Fee | None = None
    penalty_daily_rate: DailyRate | None = None
    grace_days: GraceDays | None = None

    @model_validator(mode="after")
    def _terms_follow_decision(self) -> Scored:
        terms = ("principal", "term_days", "daily_rate", "fee", "penalty_daily_rate")
        if self.decision == "approved":
            missing = [name for name in terms if getattr(self, name) is None]
            if missing:
                raise ValueError(f"an approval needs terms; missing {', '.join(missing)}")
        else:
            given = [name for name in (*terms, "grace_days") if getattr(self, name) is not None]
            if given:
                raise ValueError(f"a decline carries no terms; remove {', '.join(given)}")
        return self


class Funded(_Command):
    type: Literal["funded"]
    bank: Ident
    bank_ref: Text
    amount: Money
    value_date: CalendarDate


class Repaid(_Command):
    type: Literal["repaid"]
    amount: Money
    bank_ref: Text
    value_date: CalendarDate
    channel: Text | None = None


class Overdue(_Command):
    type: Literal["overdue"]
    as_of: CalendarDate


class Collected(_Command):
    type: Literal["collected"]
    amount: Money
    agency: Text
    value_date: CalendarDate
    stage: Text | None = None


class WrittenOff(_Command):
    type: Literal["written_off"]
    value_date: CalendarDate
    reason: Note | None = None


class Reversed(_Command):
    type: Literal["reversed"]
    reverses: Annotated[str, Field(min_length=1, max_length=128)]
    reason: Note


Command = Annotated[
    Applied | Scored | Funded | Repaid | Overdue | Collected | WrittenOff | Reversed,
    Field(discriminator="type"),
]
COMMAND_TYPES = ("applied", "scored", "funded", "repaid", "overdue", "collected", "written_off", "reversed")
_command = TypeAdapter(Command)


# ---- decoding -----------------------------------------------------------------
def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number the ledger accepts")


def decode_json(text: str) -> Any:
    """json.loads, with fractions kept as text and NaN/Infinity refused."""
    return json.loads(text, parse_float=JsonFloat, parse_constant=_refuse_constant)


def parse_command(line: str) -> _Command:
    """One JSON Lines line to a validated command, or InvalidCommand saying what is wrong."""
    if len(line.encode("utf-8", "surrogatepass")) > MAX_LINE_BYTES:
        raise InvalidCommand(f"line is longer than {MAX_LINE_BYTES} bytes")
    try:
        data = decode_json(line)
    except ValueError as e:
        raise InvalidCommand(f"not valid JSON: {e}") from None
    return command_from_dict(data)


def command_from_dict(data: Any) -> _Command:
    if not isinstance(data, dict):
        raise InvalidCommand(f"expected a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if kind not in COMMAND_TYPES:
        raise InvalidCommand(f"type: {kind!r} is not one of {', '.join(COMMAND_TYPES)}")
    try:
        return _command.validate_python(data)
    except ValidationError as e:
        raise InvalidCommand(_describe(e, data)) from None


def _describe(error: ValidationError, data: dict) -> str:
    loan = data.get("loan_id")
    parts = []
    for item in error.errors(include_url=False):
        loc = [str(p) for p in item["loc"] if p != data.get("type")]
        field = ".".join(loc) or "command"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        parts.append(f"{field}: {message}")
    prefix = f"{data.get('type')} for loan {loan}: " if isinstance(loan, str) else f"{data.get('type')}: "
    return prefix + "; ".join(parts)
