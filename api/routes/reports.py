"""``GET /v1/reports/models``: the risk models' report card, the ``ledger report models --json`` shape.

It is computed from every application's training row, so it covers the whole book: a party's token
(a bank, a channel, an agency) is refused rather than shown other parties' applications.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api import params, schemas
from api.auth import Reader
from api.errors import INVALID_PARAMETER, MISSING_SCOPE, ApiError, json_response
from api.params import strict_query
from api.services import services
from projections.dataset import rows
from projections.model_report import PERIODS, model_report

router = APIRouter(tags=["reports"], dependencies=[Depends(strict_query)])


@router.get(
    "/v1/reports/models",
    summary="Risk-model monitoring per version, overall and per period (the `ledger report models --json` shape)",
    responses={200: {"model": schemas.ModelReport}, **schemas.errors(401, 403, 422)},
)
async def get_model_report(
    request: Request,
    caller: Reader,
    as_of: str = params.date_query("The report's date: applications up to it, outcomes as of it", required=True),
    known_at: str | None = params.moment_query("Only what the ledger had recorded by then; default now"),
    period: str = Query("month", description="Periods of application", json_schema_extra={"enum": list(PERIODS)}),
) -> Response:
    if caller.token.party is not None:
        raise ApiError(
            403, MISSING_SCOPE, f"token {caller.token.name!r} is a party's: the model report covers the whole book"
        )
    svc = services(request)
    day = params.day(as_of, "as_of")
    if day is None:  # never: FastAPI answers 422 without as_of
        raise ApiError(422, INVALID_PARAMETER, "as_of: required (YYYY-MM-DD)", "as_of")
    moment = params.moment(known_at, "known_at") or datetime.now(UTC)
    if period not in PERIODS:
        raise ApiError(422, INVALID_PARAMETER, f"period: {period[:64]!r} is not one of {', '.join(PERIODS)}", "period")

    def read() -> dict[str, Any]:
        return model_report(rows(svc.ledger, day, moment), day, moment, period)

    return json_response(200, await svc.blocking(read))
