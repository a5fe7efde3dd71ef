"""``GET /v1/projections`` and ``GET /healthz``: for operators and load balancers."""

from __future__ import annotations

import json
import logging
import traceback

import anyio
from anyio import to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api import schemas
from api.auth import Reader
from api.errors import json_response
from api.params import strict_query
from api.services import services
from projections import runner

router = APIRouter(tags=["operations"], dependencies=[Depends(strict_query)])
log = logging.getLogger("ledger.api")

HEALTH_SECONDS = 5  # /healthz answers within this, whatever the store does
# Threads probing the store at once: a probe the store leaves hanging is abandoned at the limit and
# ends when its connection attempt does; while two hang, the next probe waits for a slot and is 503.
_probes = anyio.CapacityLimiter(2)


@router.get(
    "/v1/projections",
    summary="Position, head and lag of each projection",
    responses={200: {"model": list[schemas.ProjectionStatus]}, **schemas.errors(401, 403, 422)},
)
async def get_projections(request: Request, caller: Reader) -> Response:
    svc = services(request)
    rows = await svc.blocking(runner.status, svc.ledger)
    return json_response(200, [{"name": s.name, "position": s.position, "head": s.head, "lag": s.lag} for s in rows])


@router.get(
    "/healthz",
    summary="200 when the store answers, else 503 (no token needed)",
    responses={200: {"model": schemas.Health}, 503: {"model": schemas.Health}, **schemas.errors(422)},
)
async def healthz(request: Request) -> Response:
    svc = services(request)
    try:
        with anyio.fail_after(HEALTH_SECONDS):
            # one attempt, not the reads' retry window (30 s by default): a store that does not answer
            # now is what a load balancer asks about, and a thread cannot be cancelled, only left behind
            await to_thread.run_sync(svc.ledger.recorder.max_notification_id, abandon_on_cancel=True, limiter=_probes)
    except Exception:
        log.warning(json.dumps({"event": "health_check_failed", "traceback": traceback.format_exc()}))
        return json_response(503, {"status": "unavailable"})
    return json_response(200, {"status": "ok"})
