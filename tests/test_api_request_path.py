"""The API's request path stays lean (issue 29): what a single request costs the server beyond its append."""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute

from api import ui
from api.app import ROUTERS


def _dependencies(dependant):
    for dep in dependant.dependencies:
        yield dep.call
        yield from _dependencies(dep)


def test_no_route_dependency_costs_a_worker_thread_hop():
    """FastAPI runs a plain ``def`` dependency in a worker thread: a hop on every request for work that
    never blocks (checking the query string, the bearer token's scope). Every dependency is ``async``."""
    routes = [r for router in [*ROUTERS, ui.router] for r in router.routes if isinstance(r, APIRoute)]
    assert any(r.path == "/v1/commands" for r in routes)
    found = [(r.path, call) for r in routes for call in _dependencies(r.dependant) if call is not None]
    assert len(found) >= len(routes), "every route checks at least its query string: the walk is broken"
    sync = sorted({f"{path}: {call.__qualname__}" for path, call in found if not inspect.iscoroutinefunction(call)})
    assert sync == []
