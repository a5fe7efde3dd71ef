"""The HTTP API: the CLI's application code, over HTTP. ``create_app`` assembles it.

Routes live in ``api/routes/`` (one router per resource: commands, loans, balances, journal,
operations); who may call in ``api/auth.py`` and ``api/parties.py``; the one error shape in
``api/errors.py``; bodies in ``api/body.py``; the request log in ``api/requestlog.py``. Appends
go through ``Ledger.append`` (idempotency, rules, conflict retries) via the process's write lane
(``api/writer.py``); reads reuse ``loan show``'s view and the book's projections.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from api import errors, schemas, ui
from api.body import MAX_BATCH, MAX_BODY_BYTES
from api.errors import ApiError, json_response
from api.requestlog import RequestLog, setup_logging
from api.routes import balances, commands, journal, loans, ops, reports, settlements
from api.services import Services
from api.writer import WriteLane
from ledger.app import Ledger
from ledger.config import Settings, settings_from_env

__all__ = ["MAX_BATCH", "MAX_BODY_BYTES", "ApiError", "create_app", "create_app_from_env", "json_response"]

# Every router of the API, in the order their paths are matched; a new resource adds its router here.
ROUTERS: list[APIRouter] = [
    commands.router,
    loans.router,
    balances.router,
    journal.router,
    reports.router,
    settlements.router,
    ops.router,
]


def create_app(settings: Settings) -> FastAPI:
    setup_logging()
    ledger = Ledger(settings)
    svc = Services(settings, ledger, WriteLane(ledger))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await svc.lane.close()  # in-flight appends are answered before the store closes
        ledger.close()

    app = FastAPI(
        title="loan-ledger",
        version="1",
        description="Append commands to the ledger and read loans, lists, balances and the journal. "
        'See docs/api.md. Every error is {"error": {"code", "message", "field"}}.',
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = svc
    app.state.ledger = ledger
    app.state.lane = svc.lane
    app.add_middleware(commands.DirectSingle)  # inside the request log (added after it is outer)
    app.add_middleware(RequestLog)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(ui.router)  # the auditor's web view (api/ui.py): pages, outside the OpenAPI document
    app.mount("/ui/static", ui.static, name="ui-static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = doc.setdefault("components", {}).setdefault("schemas", {})
        components.update(schemas.command_schemas())
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
        doc["paths"]["/healthz"]["get"]["security"] = []
        for path in doc["paths"].values():
            for operation in path.values():
                # FastAPI's own 422 is the validation error it would answer; ours is the one error shape
                answer = operation.get("responses", {}).get("422")
                if answer and "HTTPValidationError" in json_dumps(answer):
                    answer["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                    answer["description"] = "an invalid parameter, an unknown one, or one given twice"
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = doc
    return app.openapi_schema


def json_dumps(value: Any) -> str:
    import json

    return json.dumps(value)


def create_app_from_env() -> FastAPI:
    """The factory `ledger serve` hands to uvicorn (each worker process builds its own)."""
    return create_app(settings_from_env())
