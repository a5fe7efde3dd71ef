"""JSON Lines in, outcomes out: the one path every writer (CLI, simulator, benchmarks) appends through.

Lines are validated one by one and appended in batches of ``batch_size``
commands per transaction; a bad line is reported in its place and never stops
the valid lines around it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from domain.errors import InvalidCommand
from ledger.app import REJECTED, Ledger, Outcome
from ledger.commands import _Command, parse_command


@dataclass(frozen=True)
class LineOutcome:
    line: int
    outcome: Outcome


def append_lines(app: Ledger, lines: Iterable[str]) -> Iterator[LineOutcome]:
    """Yield one LineOutcome per non-blank line, in line order."""
    pending: list[tuple[int, _Command]] = []

    def flush() -> Iterator[LineOutcome]:
        if pending:
            for (line_no, _), outcome in zip(pending, app.append([cmd for _, cmd in pending]), strict=True):
                yield LineOutcome(line_no, outcome)
            pending.clear()

    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            pending.append((line_no, parse_command(line)))
        except InvalidCommand as e:
            yield from flush()  # keep the report in line order
            yield LineOutcome(line_no, Outcome(REJECTED, _loan_id_of(line), str(e)))
            continue
        if len(pending) >= app.settings.batch_size:
            yield from flush()
    yield from flush()


def _loan_id_of(line: str) -> str | None:
    """Best effort, so the report of an invalid line can still name its loan."""
    try:
        value = json.loads(line).get("loan_id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
