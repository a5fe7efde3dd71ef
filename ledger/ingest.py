"""JSON Lines in, outcomes out: the one path every writer (CLI, simulator, benchmarks) appends through.

Lines are validated one by one and appended in batches of ``batch_size``
lines per transaction (an invalid line counts, and is answered in its place
without cutting the batch or stopping the valid lines around it). Input may be bytes (a file, stdin) or text: each
line is decoded on its own, so one line that is not UTF-8 is refused alone, and
a line over the length limit is skipped without ever being held whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from domain.errors import BrokenInvariant, InvalidCommand
from ledger.app import INVALID_COMMAND, REJECTED, Ledger, Outcome
from ledger.commands import MAX_LINE_BYTES, _Command, loan_id_of, parse_command

_BOM = b"\xef\xbb\xbf"
_Line = str | bytes
_L = TypeVar("_L", bound=str | bytes)


@dataclass(frozen=True)
class LineOutcome:
    line: int
    outcome: Outcome


class OverlongLine(bytes):
    """The first bytes of a line that was longer than MAX_LINE_BYTES (the rest was skipped)."""


class UnreadableInput(Exception):
    """The input cannot be read on (an I/O error), or is no JSON Lines at all (a line running past
    MAX_RUNAWAY_BYTES without a newline, as /dev/zero does): reading stops there."""


MAX_RUNAWAY_BYTES = 1024 * MAX_LINE_BYTES  # 64 MiB: past this, one "line" is not a line of a file


def read_lines(stream: BinaryIO, max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Lines of a binary stream, each at most ``max_bytes`` (+ newline) held in memory at once.

    A line over ``max_bytes`` is skipped a bounded piece at a time and yielded as an OverlongLine
    (answered rejected in its place); one that runs on past MAX_RUNAWAY_BYTES, or a read that
    fails, raises UnreadableInput.
    """
    first = True
    number = 0
    while True:
        line = _read(stream, max_bytes + 2, number + 1)  # room for CR LF after a line of exactly max_bytes
        if not line:
            return
        number += 1
        if first and line.startswith(_BOM):  # a UTF-8 byte order mark from some editors: not data
            line = line[len(_BOM) :]
        first = False
        if len(line.rstrip(b"\r\n")) > max_bytes:
            head, skipped = line[:200], len(line)
            while not line.endswith(b"\n"):  # skip the rest of it, a bounded piece at a time
                if skipped > MAX_RUNAWAY_BYTES:
                    raise UnreadableInput(
                        f"line {number} runs on past {MAX_RUNAWAY_BYTES // 2**20} MiB without a newline: "
                        "the input is not JSON Lines"
                    )
                line = _read(stream, max_bytes, number)
                skipped += len(line)
                if not line:
                    break
            yield OverlongLine(head)
        else:
            yield line


def _read(stream: BinaryIO, size: int, number: int) -> bytes:
    try:
        return stream.readline(size)
    except OSError as e:
        raise UnreadableInput(f"reading line {number} failed: {e.strerror or e}") from None


def append_lines(app: Ledger, lines: Iterable[str | bytes]) -> Iterator[LineOutcome]:
    """Yield one LineOutcome per non-blank line, in line order."""
    return append_numbered(app, numbered_batches(lines, app.settings.batch_size))


def numbered_batches(lines: Iterable[_L], size: int) -> Iterator[list[tuple[int, _L]]]:
    """The non-blank lines with their line numbers, ``size`` lines a batch.

    A batch is counted in lines of the file, valid or not, so where one ends depends on the file alone.
    """
    batch: list[tuple[int, _L]] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        batch.append((line_no, line))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def append_numbered(app: Ledger, batches: Iterable[Sequence[tuple[int, _Line]]]) -> Iterator[LineOutcome]:
    """Each batch of numbered lines parsed and appended in one ``app.append``; one LineOutcome per
    line, in the given order. An invalid line is answered in its place and never cuts a batch."""
    max_amount = app.settings.max_amount
    for batch in batches:
        answers: list[LineOutcome | None] = []
        parsed: list[tuple[int, _Command]] = []  # (index in answers, command)
        for line_no, line in batch:
            try:
                if isinstance(line, OverlongLine):
                    raise InvalidCommand(f"line is longer than the limit of {MAX_LINE_BYTES} bytes")
                parsed.append((len(answers), parse_command(line, max_amount=max_amount)))
                answers.append(None)
            except InvalidCommand as e:
                answers.append(
                    LineOutcome(line_no, Outcome(REJECTED, loan_id_of(line), str(e), INVALID_COMMAND, e.field))
                )
        if parsed:
            for (i, _), outcome in zip(parsed, app.append([cmd for _, cmd in parsed]), strict=True):
                answers[i] = LineOutcome(batch[i][0], outcome)
        for line_no, answer in zip((n for n, _ in batch), answers, strict=True):
            if answer is None:
                raise BrokenInvariant(f"line {line_no} was given no answer")
            yield answer
