"""``GET /v1/journal``: the journal's lines by value date, a page at a time, of the caller's party's loans."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api import params, schemas
from api.auth import Reader
from api.errors import INVALID_PARAMETER, ApiError, json_response
from api.params import strict_query
from api.services import services
from projections.lists import DEFAULT_LIMIT, MAX_LIMIT, journal_page

router = APIRouter(tags=["journal"], dependencies=[Depends(strict_query)])


@router.get(
    "/v1/journal",
    summary="Journal lines posting in a value-date range, in the order they were recorded, a page at a time",
    responses={200: {"model": schemas.Journal}, **schemas.errors(401, 403, 422)},
)
async def get_journal(
    request: Request,
    caller: Reader,
    date_from: str = params.date_query("First value date", alias="from", required=True),
    date_to: str = params.date_query("Last value date, included", alias="to", required=True),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"At most this many (default {DEFAULT_LIMIT})."),
    cursor: str | None = Query(None, max_length=256, description="The next_cursor of the page before."),
) -> Response:
    svc = services(request)
    first, last = params.day(date_from, "from"), params.day(date_to, "to")
    if first is None or last is None or last < first:
        raise ApiError(422, INVALID_PARAMETER, f"to: {date_to} is before from: {date_from}", "to")
    after = params.cursor("line", cursor, number=True)
    where = [s.condition for s in caller.scopes()]

    def read() -> dict[str, Any]:
        db = svc.caught_up_views()
        lines, next_cursor = journal_page(db, first, last, where_loans=where, cursor=after, limit=limit)
        return {"from": first, "to": last, "lines": [line.as_json() for line in lines], "next_cursor": next_cursor}

    return json_response(200, await svc.blocking(read))
