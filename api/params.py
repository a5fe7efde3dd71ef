"""Query parameters, strictly: a name the route does not take, or one given twice, is 422 (a typo like
``asof`` must not silently answer for today); dates and times are read by the wire format's parsers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import Query, Request

from api.errors import INVALID_PARAMETER, UNKNOWN_PARAMETER, ApiError
from ledger.commands import parse_date, parse_timestamp
from projections.lists import BadCursor, decode_cursor, decode_number_cursor

_allowed: dict[int, frozenset[str]] = {}

# What the OpenAPI document says of a date or a timestamp parameter (a fuzzer generates from it): the
# form, and the years the ledger takes (2000-2100); the parsers below still judge every value.
_YEAR = r"(20[0-9]{2}|2100)"
DATE_PATTERN = rf"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_DAY = rf"{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
MOMENT_PATTERN = (
    rf"^{_DAY}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{{1,6}})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def date_query(description: str, *, alias: str | None = None, required: bool = False) -> Any:
    """A date query parameter, documented as one."""
    return Query(
        ... if required else None,
        alias=alias,
        description=f"{description} (YYYY-MM-DD)",
        json_schema_extra={"format": "date", "pattern": DATE_PATTERN},
    )


def moment_query(description: str) -> Any:
    return Query(
        None,
        description=f"{description} (RFC 3339 with an offset)",
        json_schema_extra={"format": "date-time", "pattern": MOMENT_PATTERN},
    )


async def strict_query(request: Request) -> None:
    """A dependency of every route: refuse query parameters the route does not declare.

    ``async`` though it never awaits: FastAPI runs a plain ``def`` dependency in a worker thread, one
    thread hop on every request for a few dictionary lookups (issue 29: no per-request hops)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed = _allowed.get(id(route))
    if allowed is None:
        allowed = _allowed[id(route)] = frozenset(_query_names(dependant))
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name not in allowed:
            takes = f"it takes {', '.join(sorted(allowed))}" if allowed else "it takes none"
            raise ApiError(
                422, UNKNOWN_PARAMETER, f"unknown query parameter {name[:64]!r} ({takes})", name[:64] or None
            )
        if name in seen:
            raise ApiError(422, INVALID_PARAMETER, f"{name}: given more than once", name)
        seen.add(name)


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return parse_date(value)
    except ValueError as e:
        raise ApiError(422, INVALID_PARAMETER, f"{name}: {e}", name) from None


def moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    # an unencoded '+' in a query string arrives as a space: read "...T10:00:00 08:00" as meant
    text = value[:19] + value[19:].replace(" ", "+")
    try:
        return parse_timestamp(text)
    except ValueError as e:
        raise ApiError(422, INVALID_PARAMETER, f"{name}: {e}", name) from None


def cursor(kind: str, value: str | None, *, number: bool = False) -> str | None:
    """The cursor, checked here (the list reads its key again where it cuts the page); 422 for a
    cursor the ledger did not hand out for this list."""
    if value is None:
        return None
    try:
        decode_number_cursor(kind, value) if number else decode_cursor(kind, value)
    except BadCursor as e:
        raise ApiError(422, INVALID_PARAMETER, f"cursor: {e}", "cursor") from None
    return value
