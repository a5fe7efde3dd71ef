"""JSON Lines in, outcomes out: the one path every writer (CLI, simulator, benchmarks) appends through.

Lines are validated one by one and appended in batches of ``batch_size``
commands per transaction; a bad line is reported in its place and never stops
the valid lines around it. Input may be bytes (a file, stdin) or text: each
line is decoded on its own, so one line that is not UTF-8 is refused alone, and
a line over the length limit is skipped without ever being held whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from domain.errors import InvalidCommand
from ledger.app import REJECTED, Ledger, Outcome
from ledger.commands import MAX_LINE_BYTES, _Command, parse_command

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class LineOutcome:
    line: int
    outcome: Outcome


class OverlongLine(bytes):
    """The first bytes of a line that was longer than MAX_LINE_BYTES (the rest was skipped)."""


def read_lines(stream: BinaryIO, max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Lines of a binary stream, each at most ``max_bytes`` (+ newline) held in memory at once."""
    first = True
    while True:
        line = stream.readline(max_bytes + 2)  # room for CR LF after a line of exactly max_bytes
        if not line:
            return
        if first and line.startswith(_BOM):  # a UTF-8 byte order mark from some editors: not data
            line = line[len(_BOM) :]
        first = False
        if len(line.rstrip(b"\r\n")) > max_bytes:
            head = line[:200]
            while not line.endswith(b"\n"):  # skip the rest of it, a bounded piece at a time
                line = stream.readline(max_bytes)
                if not line:
                    break
            yield OverlongLine(head)
        else:
            yield line


def append_lines(app: Ledger, lines: Iterable[str | bytes]) -> Iterator[LineOutcome]:
    """Yield one LineOutcome per non-blank line, in line order."""
    pending: list[tuple[int, _Command]] = []
    max_amount = app.settings.max_amount

    def flush() -> Iterator[LineOutcome]:
        if pending:
            for (line_no, _), outcome in zip(pending, app.append([cmd for _, cmd in pending]), strict=True):
                yield LineOutcome(line_no, outcome)
            pending.clear()

    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            if isinstance(line, OverlongLine):
                raise InvalidCommand(f"line is longer than the limit of {MAX_LINE_BYTES} bytes")
            pending.append((line_no, parse_command(line, max_amount=max_amount)))
        except InvalidCommand as e:
            yield from flush()  # keep the report in line order
            yield LineOutcome(line_no, Outcome(REJECTED, _loan_id_of(line), str(e)))
            continue
        if len(pending) >= app.settings.batch_size:
            yield from flush()
    yield from flush()


def _loan_id_of(line: str | bytes) -> str | None:
    """Best effort, so the report of an invalid line can still name its loan (only a well-formed id)."""
    try:
        value = json.loads(line).get("loan_id")
    except (ValueError, AttributeError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if (
        isinstance(value, str)
        and 0 < len(value) <= 64
        and value.isascii()
        and value.replace("-", "").replace("_", "").isalnum()
    ):
        return value
    return None
