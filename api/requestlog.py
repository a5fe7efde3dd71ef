"""One JSON line per request on stderr, and the last word on errors.

Never a token, a body or personal data in a line: the token's name, the method, path, status and
duration. An exception nothing else handled is answered 500 with the request id and logged with its
traceback; a client that left before its body was in is logged as a disconnect, with no traceback
and no answer (there is no one to read it).
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
import traceback
from typing import Any, TextIO

from starlette.types import Message, Receive, Scope, Send

from api.body import ClientLeft

log = logging.getLogger("ledger.api")
_random = random.Random()


class _Stderr(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time (a test's capture, a redirected stream)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def setup_logging() -> None:
    if not log.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class RequestLog:
    """One JSON line per request (never a token, a body or personal data), and the last word on errors:
    an exception nothing else handled is answered 500 with the request id and logged with its traceback."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"{_random.getrandbits(64):016x}"  # an id to find a line by, not a secret: no urandom per request
        info: dict[str, Any] = {"request_id": request_id, "token": None}
        scope["ledger.log"] = info
        status, started, t0 = 500, False, time.perf_counter()

        async def send_logged(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except ClientLeft as e:
            status = 499  # nginx's word for it: the client closed the request
            info["disconnect"] = str(e)
        except Exception:
            log.error(json.dumps({"request_id": request_id, "event": "error", "traceback": traceback.format_exc()}))
            if not started:
                error = {"code": "internal", "message": "internal error", "field": None}
                body = json.dumps({"error": error, "request_id": request_id}).encode()
                await send_logged(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "token": info["token"],
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - t0) * 1000, 2),
                        **({"event": "disconnect", "detail": info["disconnect"]} if "disconnect" in info else {}),
                    }
                )
            )
