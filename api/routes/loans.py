"""``GET /v1/loans`` (a page of the book), ``GET /v1/loans/{loan_id}`` (`loan show`) and
``GET /v1/loans/{loan_id}/events``: each as the caller's party may see them."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api import params, schemas
from api.auth import Reader
from api.errors import LOAN_NOT_FOUND, ApiError, json_response
from api.params import strict_query
from api.routes import DAMAGED_LOAN, NO_SUCH_LOAN
from api.services import services
from projections.lists import DEFAULT_LIMIT, MAX_LIMIT, decode_number_cursor, encode_cursor, loan_page
from projections.loan_view import event_record, show_loan, today_in_shanghai
from projections.parties import LoanScope, assigned_to, owned, sent_by

router = APIRouter(tags=["loans"], dependencies=[Depends(strict_query)])

MAX_LOAN_ID = 64  # longer is no loan id (ledger.commands): unknown without asking the store

State = Literal["funded", "overdue", "repaid", "written_off"]
Bucket = Literal["current", "M1", "M2", "M3", "M3+"]
Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"At most this many (default {DEFAULT_LIMIT}).")


def _not_found(loan_id: str, moment: Any = None) -> ApiError:
    known = f" known at {moment.isoformat()}" if moment else ""
    return ApiError(404, LOAN_NOT_FOUND, f"no loan {loan_id[:MAX_LOAN_ID]}{known}", "loan_id")


@router.get(
    "/v1/loans",
    summary="Funded loans from the book, in loan id order, a page at a time (the `ledger loan list --json` rows)",
    responses={200: {"model": schemas.LoanList}, **schemas.errors(401, 403, 422)},
)
async def list_loans(
    request: Request,
    caller: Reader,
    state: State | None = None,
    bucket: Bucket | None = None,
    bank: str | None = Query(None, max_length=64),
    channel: str | None = Query(None, max_length=256),
    agency: str | None = Query(None, max_length=256),
    as_of: str | None = params.date_query("Value date; default today in Asia/Shanghai"),
    limit: int = Limit,
    cursor: str | None = Query(None, max_length=256, description="The next_cursor of the page before."),
) -> Response:
    svc = services(request)
    day = params.day(as_of, "as_of") or today_in_shanghai()
    scopes: list[LoanScope] = caller.scopes()
    if channel is not None:
        scopes.append(sent_by(channel))
    if agency is not None:
        scopes.append(assigned_to(agency))
    after = params.cursor("loan", cursor)

    def read() -> tuple[list[dict[str, Any]], str | None]:
        db = svc.caught_up_views()
        conditions = [s.condition for s in scopes]
        return loan_page(
            db, day, state=state, bucket=bucket, bank=bank, where_loans=conditions, cursor=after, limit=limit
        )

    rows, next_cursor = await svc.blocking(read)
    return json_response(200, {"as_of": day, "loans": rows, "next_cursor": next_cursor})


@router.get(
    "/v1/loans/{loan_id}",
    summary="One loan as of a value date, as known at a time (the `ledger loan show --json` shape)",
    responses={
        200: {"model": schemas.LoanView},
        **NO_SUCH_LOAN,
        **DAMAGED_LOAN,
        **schemas.errors(401, 403, 422),
    },
)
async def get_loan(
    request: Request,
    loan_id: str,
    caller: Reader,
    as_of: str | None = params.date_query("Value date; default today in Asia/Shanghai"),
    known_at: str | None = params.moment_query("Only what the ledger had recorded by then"),
) -> Response:
    svc = services(request)
    day = params.day(as_of, "as_of") or today_in_shanghai()
    moment = params.moment(known_at, "known_at")
    scopes = caller.scopes()
    if len(loan_id) > MAX_LOAN_ID:
        raise _not_found(loan_id, moment)
    view = await svc.blocking(show_loan, svc.ledger, loan_id, day, moment, lambda loan: owned(scopes, loan))
    if view is None:
        raise _not_found(loan_id, moment)
    return json_response(200, view)


@router.get(
    "/v1/loans/{loan_id}/events",
    summary="A loan's events in version order, a page at a time (as known at a time)",
    responses={
        200: {"model": schemas.LoanEvents},
        **NO_SUCH_LOAN,
        **DAMAGED_LOAN,
        **schemas.errors(401, 403, 422),
    },
)
async def get_loan_events(
    request: Request,
    loan_id: str,
    caller: Reader,
    known_at: str | None = params.moment_query("Only what the ledger had recorded by then"),
    limit: int = Limit,
    cursor: str | None = Query(None, max_length=256, description="The next_cursor of the page before."),
) -> Response:
    svc = services(request)
    moment = params.moment(known_at, "known_at")
    scopes = caller.scopes()
    checked = params.cursor("event", cursor, number=True)
    after = decode_number_cursor("event", checked) if checked else 0
    if len(loan_id) > MAX_LOAN_ID:
        raise _not_found(loan_id, moment)

    def read() -> list[dict[str, Any]] | None:
        loan, events = svc.ledger.loan_with_events(loan_id, moment)  # one read, as `loan show`
        if loan is None or not owned(scopes, loan):
            return None
        return [event_record(e) for e in events if e.originator_version > after][: limit + 1]

    records = await svc.blocking(read)
    if records is None:
        raise _not_found(loan_id, moment)
    page = records[:limit]
    next_cursor = encode_cursor("event", page[-1]["version"]) if len(records) > limit else None
    return json_response(200, {"loan_id": loan_id, "known_at": moment, "events": page, "next_cursor": next_cursor})
