"""``GET /v1/balances``: portfolio balances and the trial balance, of the caller's party's loans."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api import params, schemas
from api.auth import Reader
from api.errors import INVALID_PARAMETER, ApiError, json_response
from api.params import strict_query
from api.routes import DAMAGED_LOAN
from api.services import services
from domain.money import fmt
from projections.balances import GROUPINGS, bank_payables, bank_payables_json, portfolio, trial_balance
from projections.loan_view import today_in_shanghai

router = APIRouter(tags=["balances"], dependencies=[Depends(strict_query)])


@router.get(
    "/v1/balances",
    summary="Portfolio balances and the trial balance (the `ledger balances --json` shape)",
    responses={
        200: {"model": schemas.Balances},
        **DAMAGED_LOAN,
        **schemas.errors(401, 403, 422),
    },
)
async def get_balances(
    request: Request,
    caller: Reader,
    as_of: str | None = params.date_query("Value date; default today in Asia/Shanghai"),
    by: str = Query(
        "bank", description=f"Group by one of {', '.join(GROUPINGS)}", json_schema_extra={"enum": list(GROUPINGS)}
    ),
    known_at: str | None = params.moment_query("Only what the ledger had recorded by then"),
) -> Response:
    svc = services(request)
    day = params.day(as_of, "as_of") or today_in_shanghai()
    moment = params.moment(known_at, "known_at")
    if by not in GROUPINGS:
        raise ApiError(422, INVALID_PARAMETER, f"by: {by[:64]!r} is not one of {', '.join(GROUPINGS)}", "by")
    where = [s.condition for s in caller.scopes()]  # a party's balances hold its own loans only

    def read() -> dict[str, Any]:
        db = svc.caught_up_views()  # answer from everything appended so far, as the CLI does
        groups = portfolio(db, day, by, moment, where_loans=where)
        out: dict[str, Any] = {
            "as_of": day,
            "by": by,
            "groups": [{"key": g.key, "loans": g.loans, **{k: fmt(v) for k, v in g.amounts.items()}} for g in groups],
            "trial_balance": fmt(trial_balance(db, day, moment, where_loans=where)),
        }
        if moment:
            out["known_at"] = moment
        if by == "bank":  # what each bank advanced, was remitted and is still owed (issue 26)
            out["banks"] = bank_payables_json(bank_payables(db, day, moment, where_loans=where))
        return out

    return json_response(200, await svc.blocking(read))
