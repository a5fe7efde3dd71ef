"""``GET /v1/banks/{bank}/settlements/{date}``: a bank-day's settlement, as `ledger settle` recorded it.

A bank's token reads its own bank-days; the platform's (no party) any bank's; anyone else is told
there is no such settlement (404), never that it exists.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from api import params, schemas
from api.auth import Reader
from api.errors import NOT_FOUND, ApiError, json_response
from api.params import strict_query
from api.services import services
from domain.money import fmt
from ledger.settle import recorded_settlement
from projections.lists import MAX_LIMIT, decode_cursor, encode_cursor
from projections.settlements import settlement_lines

router = APIRouter(tags=["settlements"], dependencies=[Depends(strict_query)])

_BANK = r"^[A-Za-z0-9_-]{1,64}$"


@router.get(
    "/v1/banks/{bank}/settlements/{date}",
    summary="A bank-day's settlement: the recorded totals and digest, and its lines a page of loans at a time",
    responses={
        200: {"model": schemas.Settlement},
        **schemas.errors(401, 403, 422),
        404: {"model": schemas.Error, "description": "no settlement of that bank for that day (or not the token's)"},
    },
)
async def get_settlement(
    request: Request,
    caller: Reader,
    bank: str = Path(..., pattern=_BANK, description="The funding bank"),
    date: str = Path(..., description="The day settled (YYYY-MM-DD)", pattern=params.DATE_PATTERN),
    limit: int = Query(MAX_LIMIT, ge=1, le=MAX_LIMIT, description=f"At most this many loans (default {MAX_LIMIT})."),
    cursor: str | None = Query(None, max_length=256, description="The next_cursor of the page before."),
) -> Response:
    svc = services(request)
    day = params.day(date, "date")
    party = caller.token.party
    not_found = ApiError(404, NOT_FOUND, "no settlement of that bank for that day", "date")
    if day is None or (party is not None and (party.kind != "bank" or party.name != bank)):
        raise not_found
    after = params.cursor("settlement", cursor)
    after_loan = None if after is None else decode_cursor("settlement", after)

    def read() -> dict[str, Any] | None:
        fact = recorded_settlement(svc.ledger, bank, day)
        if fact is None:
            return None
        lines, last = settlement_lines(svc.caught_up_views(), bank, day, after=after_loan, limit=limit)
        return {
            "bank": bank,
            "value_date": day,
            "recorded_at": fact.timestamp,
            "loans_settled": fact.loans,
            "principal": fmt(fact.principal),
            "interest": fmt(fact.interest),
            "compensation": fmt(fact.compensation),
            "total": fmt(fact.total),
            "lines_sha256": fact.lines_sha256,
            "lines": [{"loan_id": loan_id, "kind": kind, "amount": fmt(amount)} for loan_id, kind, amount in lines],
            "next_cursor": None if last is None else encode_cursor("settlement", last),
        }

    answer = await svc.blocking(read)
    if answer is None:
        raise not_found
    return json_response(200, answer)
