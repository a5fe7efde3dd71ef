"""Request bodies: read with a cap while they stream in, decoded by the ledger's own JSON reader
(no JSON number ever becomes a float) and validated by the same ``command_from_dict`` as
``ledger append``. A batch's decoding and validation run in a worker thread: a 9 MB batch takes
a CPU-second or more, and the event loop keeps answering other requests meanwhile."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from fastapi import Request
from starlette.requests import ClientDisconnect

from api.errors import BATCH_TOO_LARGE, BODY_TOO_LARGE, INVALID_BODY, INVALID_JSON, ApiError
from domain.errors import InvalidCommand
from ledger.app import INVALID_COMMAND, REJECTED, Outcome
from ledger.commands import _Command, command_from_dict, decode_json, loan_id_of, text_is_safe

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_BATCH = 10_000

log = logging.getLogger("ledger.api")


class ClientLeft(Exception):
    """The client closed the connection before its body was in: there is no one to answer."""


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes the cap (before anything is parsed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, BODY_TOO_LARGE, f"body is over {MAX_BODY_BYTES} bytes (10 MiB)")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ApiError(413, BODY_TOO_LARGE, f"body is over {MAX_BODY_BYTES} bytes (10 MiB)")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientLeft(f"after {size} bytes of the body") from None
    return b"".join(chunks)


def body_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, INVALID_JSON, f"body is not UTF-8 (byte {e.start})") from None


def parse_json_text(text: str) -> Any:
    try:
        return decode_json(text)
    except RecursionError:
        raise ApiError(400, INVALID_JSON, "body is not valid JSON: nested too deeply") from None
    except ValueError as e:
        raise ApiError(400, INVALID_JSON, f"body is not valid JSON: {e}") from None


def single_command(data: Any, text: str, max_amount: Decimal) -> _Command:
    """``command_from_dict`` of a single's decoded body: its strings searched for unsafe characters
    once, in the body's text, when that search answers for all of them (as ``ledger append`` does
    a line): a search per string and field name was a tenth of a request's time on the event loop."""
    return command_from_dict(data, max_amount=max_amount, _text_is_safe=text_is_safe(text))


def rejected(item: Any, e: InvalidCommand) -> Outcome:
    return Outcome(REJECTED, loan_id_of(item), str(e), INVALID_COMMAND, e.field)


def decode_batch(body: bytes, max_amount: Decimal) -> list[_Command | Outcome]:
    """A batch body to its commands, each item validated alone (an invalid one answered in its place).
    Blocking and CPU-bound: called in a worker thread."""
    text = body_text(body)
    data = parse_json_text(text)
    if not isinstance(data, dict) or set(data) != {"commands"} or not isinstance(data["commands"], list):
        raise ApiError(422, INVALID_BODY, 'the body must be {"commands": [...]} and nothing else', "commands")
    items = data["commands"]
    if len(items) > MAX_BATCH:
        raise ApiError(413, BATCH_TOO_LARGE, f"{len(items)} commands; a batch holds at most {MAX_BATCH}", "commands")
    safe = text_is_safe(text)  # one search of the body for every item's strings, when it can answer for them
    checked: list[_Command | Outcome] = []
    for item in items:
        try:
            checked.append(command_from_dict(item, max_amount=max_amount, _text_is_safe=safe))
        except InvalidCommand as e:
            checked.append(rejected(item, e))
    return checked
