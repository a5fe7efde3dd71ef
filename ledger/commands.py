"""The wire format: one JSON object per line, validated before anything is appended.

Exactly the commands of the contract (docs/contract.md); unknown fields are
rejected, not ignored. Parsing is total: any byte sequence either becomes a
command or raises ``InvalidCommand`` naming the field and the limit it broke.

Strict wherever an ambiguity could cost money: JSON numbers never become binary
floats (fractions arrive as ``JsonFloat`` text), a key given twice in one object
is refused (rather than the last copy silently winning), digits are ASCII and
unpadded, references are never blank, timestamps are RFC 3339 with an offset,
and every date lies in ``DATE_MIN``..``DATE_MAX`` (a timestamp's both as written and on
its day in Asia/Shanghai, the ledger's day).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_serializer,
    model_validator,
)

from domain.errors import InvalidAmount, InvalidCommand
from domain.loan import SHANGHAI
from domain.money import DEFAULT_MAX_AMOUNT, JsonFloat, parse_amount
from domain.terms import PRINCIPAL_MAX, PRINCIPAL_MIN, TERM_DAYS_MAX, TERM_DAYS_MIN

# ---- limits (a line over any of them is refused, naming it) -----------------------
MAX_LINE_BYTES = 64 * 1024  # a command is a few hundred bytes; anything huge is garbage
PERSONAL_FIELDS = ("borrower",)  # kept out of events and out of the idempotency fingerprint
MAX_TEXT_CHARS = 256  # every string unless its field says otherwise (ids: 64)
MAX_BORROWER_KEYS = 32
# A sane window for every date and timestamp: it keeps arithmetic on them (due dates, UTC
# conversion, day numbers) far from the calendar's edges, so nothing accepted can break a read.
DATE_MIN, DATE_MAX = date(2000, 1, 1), date(2100, 12, 31)

_LOAN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", re.ASCII)
_DECIMAL_TEXT = re.compile(r"[0-9]{1,6}(\.[0-9]{1,12})?", re.ASCII)
# C0 and C1 controls, DEL, Unicode line separators and lone surrogates: never meaningful in a field,
# and they can forge or disguise output lines, or fail to encode on the way to the store. And every
# format character (Unicode category Cf: zero-width spaces and joiners, U+FEFF, the soft hyphen,
# direction marks and overrides, ...): invisible, so "ZW-1" and "ZW-1" + U+200B would be two keys or
# two bank references that look alike. The Cf ranges are Unicode 14's (Python 3.11);
# tests/test_parse_fast_path.py checks them against the running Python's unicodedata.
_FORMAT_CHARS = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U00013438"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
_UNSAFE_CHARS = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\ud800-\\udfff{_FORMAT_CHARS}]")


# ---- field types ------------------------------------------------------------
def _max_amount(info: ValidationInfo) -> Decimal:
    context = info.context or {}
    maximum: Decimal = context.get("max_amount", DEFAULT_MAX_AMOUNT)
    return maximum


def _money(value: object, info: ValidationInfo) -> Decimal:
    try:
        return parse_amount(value, "amount", maximum=_max_amount(info))
    except InvalidAmount as e:
        raise ValueError(e.reason) from None


def _money_or_zero(value: object, info: ValidationInfo) -> Decimal:
    try:
        return parse_amount(value, "amount", allow_zero=True, maximum=_max_amount(info))
    except InvalidAmount as e:
        raise ValueError(e.reason) from None


def _rate(value: object) -> Decimal:
    """Rates and scores: exact decimal from the JSON text (string or number), never via float."""
    if isinstance(value, bool) or not isinstance(value, (str, int, JsonFloat)):
        raise ValueError(f"{value!r} is not a decimal number")
    text = str(value)
    if not _DECIMAL_TEXT.fullmatch(text):
        raise ValueError(f"{text!r} is not a plain decimal number (ASCII digits, no sign, exponent or spaces)")
    return Decimal(text)


def _in_window(day: date, what: str) -> None:
    if not DATE_MIN <= day <= DATE_MAX:
        raise ValueError(f"{what} {day.isoformat()} is outside {DATE_MIN}..{DATE_MAX}")


def _calendar_date(value: object) -> date:
    if not isinstance(value, str) or not _DATE_TEXT.fullmatch(value):
        raise ValueError(f"{value!r} is not a date in YYYY-MM-DD form")
    try:
        day = date.fromisoformat(value)
    except ValueError as e:
        raise ValueError(f"{value!r} is not a real date ({e})") from None
    _in_window(day, "date")
    return day


def _aware_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp string")
    if not _RFC3339.fullmatch(value):
        hint = " (it has no UTC offset, e.g. +08:00)" if re.fullmatch(r"[0-9T:.\-]+", value) else ""
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp like 2026-03-08T12:00:00+08:00{hint}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(f"{value!r} is not a real time ({e})") from None
    _in_window(moment.date(), "timestamp")  # first as written: a far year could not be moved to Shanghai
    day = moment.astimezone(SHANGHAI).date()  # the ledger's day for it, as every value date is reckoned
    if not DATE_MIN <= day <= DATE_MAX:
        raise ValueError(f"timestamp {value} falls on {day} in Asia/Shanghai, outside {DATE_MIN}..{DATE_MAX}")
    return moment


def parse_date(value: str) -> date:
    """A calendar date as every input of the ledger takes it (commands, the CLI's options, the API's
    parameters): YYYY-MM-DD exactly, a real date, inside DATE_MIN..DATE_MAX. ValueError says why not."""
    return _calendar_date(value)


def parse_timestamp(value: str) -> datetime:
    """An instant as every input of the ledger takes it: RFC 3339 with a UTC offset (``Z`` or +hh:mm),
    inside the date window. ValueError says why not."""
    return _aware_datetime(value)


def loan_id_of(data: Any) -> str | None:
    """The loan id a rejected input names, so its answer can still name the loan: a decoded object,
    or a line of JSON (str or bytes). Only a well-formed id (as ``loan_id`` accepts it), else None."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return None
    value = data.get("loan_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and _LOAN_ID.fullmatch(value) else None


def _strict_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{value!r} is not a JSON integer")
    return value


def _reference(value: str) -> str:
    if value.strip() != value or not value:
        raise ValueError(f"{value!r} is blank or has leading or trailing spaces")
    return value


def _between(lo: Any, hi: Any, what: str) -> AfterValidator:
    def check(value: Any) -> Any:
        if not lo <= value <= hi:
            raise ValueError(f"{what} {value} is outside {lo}-{hi}")
        return value

    return AfterValidator(check)


Money = Annotated[Decimal, BeforeValidator(_money)]
Rate = Annotated[Decimal, BeforeValidator(_rate)]
CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]
AwareDatetime = Annotated[datetime, BeforeValidator(_aware_datetime)]
Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_reference)]
Reference = Text  # keys and bank references: the same rules, named for what they hold
Note = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
Principal = Annotated[Money, _between(PRINCIPAL_MIN, PRINCIPAL_MAX, "principal")]
TermDays = Annotated[int, BeforeValidator(_strict_int), _between(TERM_DAYS_MIN, TERM_DAYS_MAX, "term_days")]
DailyRate = Annotated[Rate, _between(Decimal(0), Decimal("0.1"), "rate")]
Score = Annotated[Rate, _between(Decimal(0), Decimal(1), "score")]
GraceDays = Annotated[int, BeforeValidator(_strict_int), _between(0, 30, "grace_days")]
Fee = Annotated[Decimal, BeforeValidator(_money_or_zero)]
PersonalData = Annotated[
    dict[str, Annotated[str, Field(max_length=MAX_TEXT_CHARS)]], Field(max_length=MAX_BORROWER_KEYS)
]


# ---- commands ---------------------------------------------------------------
class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    if TYPE_CHECKING:  # each command declares its own Literal; a field here would reorder the fingerprint
        type: str

    loan_id: Ident
    idempotency_key: Reference
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
        # Only a field that holds something needs the copy: blanking an absent one changes no byte.
        personal = {name: None for name in PERSONAL_FIELDS if self.__dict__.get(name) is not None}  # fields live there
        fingerprinted = self.model_copy(update=personal) if personal else self
        return hashlib.sha256(fingerprinted.model_dump_json().encode()).hexdigest()

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
    borrower: PersonalData | None = None


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
    bank_ref: Reference
    amount: Money
    value_date: CalendarDate


class Repaid(_Command):
    type: Literal["repaid"]
    amount: Money
    bank_ref: Reference
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
    reverses: Reference
    reason: Note


class Assigned(_Command):
    type: Literal["assigned"]
    agency: Text
    value_date: CalendarDate


class Recalled(_Command):
    type: Literal["recalled"]
    value_date: CalendarDate


class Waived(_Command):
    type: Literal["waived"]
    amount: Money
    component: Literal["penalty", "interest", "fee", "principal"]
    value_date: CalendarDate
    reason: Note


class Refunded(_Command):
    type: Literal["refunded"]
    amount: Money
    bank_ref: Reference
    value_date: CalendarDate


class Remitted(_Command):
    """The settlement with the funding bank for a day (``ledger settle``), one loan's part of it.

    Not part of the wire format: only the settlement job makes it, with a key derived from
    (bank, day, loan); the amounts are worked out from the loan's facts when it is applied.
    """

    type: Literal["remitted"]
    bank: Ident
    value_date: CalendarDate


Command = Annotated[
    Applied
    | Scored
    | Funded
    | Repaid
    | Overdue
    | Collected
    | WrittenOff
    | Reversed
    | Assigned
    | Recalled
    | Waived
    | Refunded,
    Field(discriminator="type"),
]
# In the order of a loan's life (docs/contract.md lists them so, and its examples append in it).
COMMAND_TYPES = (
    "applied",
    "scored",
    "funded",
    "repaid",
    "overdue",
    "assigned",
    "collected",
    "recalled",
    "written_off",
    "reversed",
    "waived",
    "refunded",
)
_command = TypeAdapter(Command)


# ---- decoding -----------------------------------------------------------------
def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number the ledger accepts")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()  # a repeat: name the first key seen twice, in line order
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice in one object")
        seen.add(key)
    raise AssertionError("unreachable: fewer keys than pairs means a repeat")  # pragma: no cover


def decode_json(text: str) -> Any:
    """json.loads, with fractions kept as text, NaN/Infinity and repeated keys refused."""
    return json.loads(text, parse_float=JsonFloat, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)


def parse_command(line: str | bytes, *, max_amount: Decimal = DEFAULT_MAX_AMOUNT) -> _Command:
    """One JSON Lines line to a validated command, or InvalidCommand saying what is wrong."""
    if len(line) > MAX_LINE_BYTES or (isinstance(line, str) and len(line.encode("utf-8", "replace")) > MAX_LINE_BYTES):
        raise InvalidCommand(f"line is longer than the limit of {MAX_LINE_BYTES} bytes")
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidCommand(f"line is not UTF-8 (byte 0x{line[e.start]:02x} at offset {e.start})") from None
    try:
        data = decode_json(line)
    except RecursionError:
        raise InvalidCommand("not valid JSON: nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, and what the hooks above raise
        raise InvalidCommand(f"not valid JSON: {e}") from None
    return command_from_dict(data, max_amount=max_amount, _text_is_safe=text_is_safe(line))


def text_is_safe(text: str) -> bool:
    """No string decoded from this JSON text (a line, a request's body) can hold an unsafe character.

    Without a backslash every decoded string is a slice of the text as written, so one search of
    the whole text answers for all of them (a hit, even between tokens, checks each string). The
    line ends a file's line or a body may carry are outside every string."""
    return "\\" not in text and not _UNSAFE_CHARS.search(text.rstrip("\r\n"))


def command_from_dict(data: Any, *, max_amount: Decimal = DEFAULT_MAX_AMOUNT, _text_is_safe: bool = False) -> _Command:
    if not isinstance(data, dict):
        raise InvalidCommand(f"expected a JSON object, got {_json_kind(data)}")
    _check_shape(data, _text_is_safe)
    kind = data.get("type")
    if kind not in COMMAND_TYPES:
        raise InvalidCommand(f"type: {_echo(kind)} is not one of {', '.join(COMMAND_TYPES)}", "type")
    try:
        return _command.validate_python(data, context={"max_amount": max_amount})
    except ValidationError as e:
        raise InvalidCommand(_describe(e, data), _first_field(e, data)) from None


def _check_shape(data: dict[str, Any], text_is_safe: bool = False) -> None:
    """Flat objects of scalars (only ``borrower`` holds an object, itself of strings), safe text.

    Checked before the models see the data, so the error names the field however
    deep or strange the value is, and nothing unencodable reaches the store.
    ``text_is_safe``: the caller already found no unsafe character in any string,
    so only lengths are left to check here.
    """
    for key, value in data.items():
        if (len(key) > MAX_TEXT_CHARS or not text_is_safe) and _bad_text(key):
            _check_text(key, "a field name", _field(key))  # (a field's name is worked out only for its error)
        if key == "borrower" and isinstance(value, dict):
            if len(value) > MAX_BORROWER_KEYS:
                raise InvalidCommand(
                    f"borrower: {len(value)} keys is over the limit of {MAX_BORROWER_KEYS}", "borrower"
                )
            for name, item in value.items():
                _check_text(name, "borrower: a key", "borrower")
                if not isinstance(item, str):
                    raise InvalidCommand(
                        f"borrower.{name}: personal data values must be strings, got {_json_kind(item)}", "borrower"
                    )
                _check_text(item, f"borrower.{name}", "borrower")
        elif isinstance(value, (dict, list)):
            raise InvalidCommand(
                f"{_field(key)}: nested values are not accepted here, got {_json_kind(value)}", _field(key)
            )
        elif isinstance(value, str) and (len(value) > MAX_TEXT_CHARS or not text_is_safe) and _bad_text(value):
            _check_text(value, _field(key), _field(key))


def _bad_text(text: str) -> bool:
    return len(text) > MAX_TEXT_CHARS or _UNSAFE_CHARS.search(text) is not None


def _check_text(text: str, where: str, field: str | None = None) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidCommand(f"{where}: {len(text)} characters is over the limit of {MAX_TEXT_CHARS}", field)
    bad = _UNSAFE_CHARS.search(text)
    if bad:
        char = bad.group()
        kind = "invisible format character" if unicodedata.category(char) == "Cf" else "control character"
        raise InvalidCommand(f"{where}: {kind} {_echo(char)} (U+{ord(char):04X}) is not accepted", field)


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, (int, JsonFloat)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _echo(value: Any) -> str:
    """Input quoted back to the user: escaped, so no input can forge a line of output."""
    text = repr(value)
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _field(name: str) -> str:
    return name if re.fullmatch(r"[a-z_]{1,32}", name) else _echo(name)


def _first_field(error: ValidationError, data: dict[str, Any]) -> str | None:
    """The field of the first error, as ``_describe`` names it (None when it is the whole command)."""
    for item in error.errors(include_url=False, include_input=False):
        loc = [str(p) for p in item["loc"] if p != data.get("type")]
        return ".".join(_field(p) for p in loc) or None
    return None


def _describe(error: ValidationError, data: dict[str, Any]) -> str:
    loan = data.get("loan_id")
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        loc = [str(p) for p in item["loc"] if p != data.get("type")]
        field = ".".join(_field(p) for p in loc) or "command"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        parts.append(f"{field}: {message}")
    kind = data["type"]  # one of COMMAND_TYPES: checked before validation
    named = isinstance(loan, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", loan)
    prefix = f"{kind} for loan {loan}: " if named else f"{kind}: "
    return prefix + "; ".join(parts)
