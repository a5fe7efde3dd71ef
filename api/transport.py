"""The server's transport for `ledger serve`: connections and bodies, below the API's handlers.

uvicorn (pinned) drops an idle keep-alive connection, but not one that never finishes its
headers or its body, and it has no cap on connections that keeps room for new clients: 1,100
connections that sent nothing held the server until they left, and `GET /healthz` got an
empty reply. Here:

- ``GuardedHttpTools``, the protocol ``ledger serve`` hands to uvicorn (``http=``): a request's
  headers must arrive within ``header_timeout`` of the connection (or of the request's first
  byte on a kept-alive one), its body within ``body_timeout`` of its headers; at
  ``max_connections`` a new connection makes room by closing the one that has waited longest
  for a request's headers, and is itself refused with 503 only when every connection is busy
  with a request. Each drop is one JSON line on stderr (never an address, a header or a body).
- ``AnswerAfterBody``, an ASGI middleware around the whole application: when the application
  answers before it has read the request's body (413 for a body over 10 MiB, 401 for a bad token),
  the rest of the body is read and discarded first, up to ``DRAIN_BYTES``, so a client that sends
  its whole body before reading (Python's urllib) reads the answer instead of a connection reset.

The limits reach each worker process through the environment (``ledger serve`` sets them).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_ENV = "LEDGER_SERVE_HEADER_TIMEOUT"
BODY_TIMEOUT_ENV = "LEDGER_SERVE_BODY_TIMEOUT"
MAX_CONNECTIONS_ENV = "LEDGER_SERVE_MAX_CONNECTIONS"  # per worker process
DRAIN_BYTES = 64 * 1024 * 1024  # the most of a request body read only to be discarded
# allocations between two collections of the youngest generation (Python's default: 700)
YOUNG_COLLECTION_THRESHOLD = 10_000

log = logging.getLogger("ledger.api.transport")


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 1000

    @classmethod
    def from_env(cls) -> Limits:
        default = cls()
        return cls(
            header_timeout=float(os.environ.get(HEADER_TIMEOUT_ENV, default.header_timeout)),
            body_timeout=float(os.environ.get(BODY_TIMEOUT_ENV, default.body_timeout)),
            max_connections=int(os.environ.get(MAX_CONNECTIONS_ENV, default.max_connections)),
        )


_limits: Limits | None = None


def limits() -> Limits:
    global _limits
    if _limits is None:
        _limits = Limits.from_env()
    return _limits


def log_drop(reason: str, **details: Any) -> None:
    """One JSON line per connection the server drops or refuses."""
    if not log.handlers and not logging.getLogger("ledger.api").handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.warning(json.dumps({"event": "connection_dropped", "reason": reason, **details}))


# what a connection is waiting for
HEADERS, BODY, ANSWER = "headers", "body", "answer"


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, a body timeout and a connection cap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits = limits()
        self._waiting_for = HEADERS
        self._since = self.loop.time()
        self._deadline: asyncio.TimerHandle | None = None

    # -- connections -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self._limits.max_connections and not self._make_room():
            super().connection_made(transport)
            self.connections.discard(self)
            body = b'{"error":"the server is at its connection limit; try again"}'
            transport.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            transport.close()
            log_drop("over_capacity", connections=len(self.connections))
            return
        super().connection_made(transport)
        self._expect(HEADERS, self._limits.header_timeout)

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a request's headers; False if none is."""
        idle = [c for c in self.connections if isinstance(c, GuardedHttpTools) and c._waiting_for == HEADERS]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._since)
        oldest._drop("evicted", waited_s=round(self.loop.time() - oldest._since, 3))
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _drop(self, reason: str, **details: Any) -> None:
        self._cancel()
        self.connections.discard(self)  # room now, not when the loop gets to connection_lost
        if not self.transport.is_closing():
            self.transport.close()
        log_drop(reason, connections=len(self.connections), **details)

    # -- deadlines -------------------------------------------------------------------------
    def _expect(self, what: str, seconds: float) -> None:
        self._cancel()
        self._waiting_for, self._since = what, self.loop.time()
        self._deadline = self.loop.call_later(seconds, self._timed_out, what, seconds)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self, what: str, seconds: float) -> None:
        self._deadline = None
        self._drop("header_timeout" if what == HEADERS else "body_timeout", limit_s=seconds)

    # -- the request's phases (httptools' callbacks) --------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the first byte of a next request on a kept-alive connection
            self._expect(HEADERS, self._limits.header_timeout)

    def on_headers_complete(self) -> None:
        self._expect(BODY, self._limits.body_timeout)  # cancelled at once below when there is none
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._cancel()
        self._waiting_for = ANSWER
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._waiting_for == ANSWER:
            self._waiting_for, self._since = HEADERS, self.loop.time()  # idle: uvicorn's keep-alive closes it
        super().on_response_complete()


class AnswerAfterBody:
    """Reads the rest of a request's body (up to DRAIN_BYTES) before an answer the application gave
    without reading it, and closes the connection after that answer."""

    def __init__(self, app: ASGIApp, drain_bytes: int = DRAIN_BYTES):
        self.app = app
        self.drain_bytes = drain_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        length = int(declared) if declared.isdigit() else None
        has_body = (length or 0) > 0 or b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        wants_continue = headers.get(b"expect", b"").lower() == b"100-continue"
        state = {"done": not has_body, "read": 0, "asked": False}

        def note(message: Message) -> Message:
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                state["done"] = state["done"] or not message.get("more_body", False)
            elif message["type"] == "http.disconnect":
                state["done"] = True
            return message

        async def receive_noted() -> Message:
            state["asked"] = True
            return note(await receive())

        async def send_after_body(message: Message) -> None:
            if message["type"] == "http.response.start" and not state["done"]:
                # A client told to wait for "100 Continue" that was never asked for the body has not sent
                # it: answer now. Otherwise read what it is sending, if the rest fits the bound.
                rest = None if length is None else length - state["read"]
                if (state["asked"] or not wants_continue) and (rest is None or rest <= self.drain_bytes):
                    drained = 0
                    while not state["done"] and drained <= self.drain_bytes:
                        drained += len(note(await receive()).get("body", b""))
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive_noted, send_after_body)


def create_served_app() -> Any:
    """The factory `ledger serve` hands to uvicorn: the API of api/app.py inside AnswerAfterBody."""
    from api.app import create_app_from_env

    app = AnswerAfterBody(create_app_from_env())
    settle_heap()
    return app


def settle_heap() -> None:
    """The collector told that the server's startup heap (the imported libraries, the routes, the
    models' validators: about 90,000 objects) is here to stay, once the application is built.

    Without this every full collection walked that heap again: 45-55 ms with the event loop stopped,
    three to four times in 4,000 single requests, each time freeing nothing; sixteen clients'
    requests waited out each pause, which was a p99 by itself (issue 29). Frozen, a full
    collection walks what came after (about 1 ms). The youngest generation is collected every
    10,000 allocations instead of 700: a single request allocates a few hundred containers, and
    each collection also promoted whatever requests were in flight, which made the next full
    collection come sooner. Cycles are still collected; only less often, and never the startup's.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
