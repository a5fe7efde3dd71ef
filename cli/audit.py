"""`ledger verify`, `ledger checkpoint`: an auditor's proof that the history was not edited.

How the chain works and what each check means: docs/audit.md.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import sys
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import psycopg
from eventsourcing.persistence import PersistenceError

from cli.common import EXIT_PROBLEM, echo_json, open_ledger, parse_moment, printable, store_options
from eventstore.verify_runs import record_verify_run
from ledger.verify import BadCheckpoint, check_checkpoint, make_checkpoint
from ledger.verify import verify as verify_store
from projections.audit_trail import COLUMNS, export_rows
from projections.jsonable import to_jsonable

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

PROGRESS_FROM = 50_000  # events: below this a run takes a second or two and needs no bar


def _progress(total: int, label: str, quiet: bool) -> AbstractContextManager[ProgressBar[int] | None]:
    if quiet or total < PROGRESS_FROM:
        return nullcontext(None)
    return click.progressbar(length=total, label=label, file=sys.stderr)


MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024  # about 4 million loans' heads at ~120 bytes each
_READ_CHUNK = 1024 * 1024
# what `ledger checkpoint` writes: JSON in printable ASCII (ids, hex, digits, a timestamp)
_CHECKPOINT_TEXT = re.compile(rb"[\x20-\x7e\t\r\n]*")


def _read_checkpoint(path: str) -> dict[str, Any]:
    """The checkpoint at ``path``, read a bounded piece at a time: a device (/dev/zero), a huge or
    binary file is refused after its first chunk that could not be part of a checkpoint, or at
    the size limit, before it can fill memory. Any fault is a usage error (exit 2)."""

    def bad(why: str) -> click.BadParameter:
        return click.BadParameter(
            f"{path} is not a checkpoint written by `ledger checkpoint`: {why}", param_hint="--checkpoint"
        )

    chunks: list[bytes] = []
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_READ_CHUNK):
                size += len(chunk)
                if size > MAX_CHECKPOINT_BYTES:
                    raise bad(f"it is over {MAX_CHECKPOINT_BYTES // 2**20} MiB")
                if not _CHECKPOINT_TEXT.fullmatch(chunk):
                    raise bad(f"it holds bytes that are not text near offset {size - len(chunk)}")
                chunks.append(chunk)
    except OSError as e:
        raise click.BadParameter(f"cannot read {path}: {e.strerror or e}", param_hint="--checkpoint") from None
    try:
        data = json.loads(b"".join(chunks).decode("ascii"))
    except (ValueError, RecursionError) as e:
        raise bad(f"it is not JSON ({str(e)[:120]})") from None
    try:
        return check_checkpoint(data)
    except BadCheckpoint as e:
        raise bad(str(e)) from None


def _where(p: dict[str, Any]) -> str:
    if p.get("version") is None:
        if p.get("loan_id") or p.get("stream"):
            return f"loan {p.get('loan_id') or p.get('stream')}"
        return f"notification {p['notification_id']}" if p.get("notification_id") is not None else "log"
    versions = f"versions {p['version']}..{p['through']}" if "through" in p else f"version {p['version']}"
    if not (p.get("loan_id") or p.get("stream")) and p.get("notification_id") is not None:
        return f"notification {p['notification_id']} ({versions})"
    return f"loan {p['loan_id'] or p.get('stream', '?')} {versions}"


@click.command()
@click.option(
    "--checkpoint",
    "checkpoint_file",
    metavar="FILE",
    help="Also check that nothing the checkpoint covered was removed or changed.",
)
@store_options
def verify(checkpoint_file: str | None, db_url: str | None, as_json: bool) -> None:
    """Recompute every loan's hash chain; exit 1 naming each edited, removed, inserted or reordered event."""
    checkpoint = _read_checkpoint(checkpoint_file) if checkpoint_file else None
    app = open_ledger(db_url)
    total = app.recorder.max_notification_id() or 0
    started = datetime.now(UTC)
    with _progress(total, "verifying", as_json) as bar:
        report = verify_store(app.recorder, checkpoint, progress=bar.update if bar else None)
    head = checkpoint["head"] if checkpoint else None
    # for the web view's "latest verify"; the run's answer stands whether or not it is recorded. A role
    # that may only read and insert history (LEDGER_SETUP_STORE=no) creates no table: its runs are not recorded
    if app.settings.setup_store:
        try:
            record_verify_run(app, started, report.ok, report.events, report.streams, report.total, head)
        except (PersistenceError, psycopg.Error, sqlite3.Error) as e:
            message = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            click.echo(f"warning: this run was not recorded for the web view: {message}", err=True)
    if as_json:
        echo_json(report.as_json())
    elif report.ok:
        click.echo(
            f"ok: {report.events} events in {report.streams} loans verified"
            + (f", checkpoint at {checkpoint['head']} matches" if checkpoint else "")
        )
    else:
        for p in report.problems:
            click.echo(printable(f"{_where(p)}: {p['problem']}" + (f" ({p['detail']})" if p.get("detail") else "")))
        more = report.total - len(report.problems)
        click.echo(
            f"{report.total} problem(s) in {report.events} events of {report.streams} loans"
            + (f" (the first {len(report.problems)} listed; {more} more)" if more else "")
        )
    if not report.ok:
        sys.exit(EXIT_PROBLEM)


@click.command()
@click.option("--out", required=True, metavar="FILE", help="Where to write it; keep it outside the database.")
@store_options
def checkpoint(out: str, db_url: str | None, as_json: bool) -> None:
    """Write the log's head and a digest over everything up to it, for `verify --checkpoint`."""
    app = open_ledger(db_url)
    total = app.recorder.max_notification_id() or 0
    with _progress(total, "checkpoint", as_json) as bar:
        data = make_checkpoint(app.recorder, progress=bar.update if bar else None)
    target = Path(out)
    partial = target.with_name(target.name + ".partial")
    try:
        partial.write_text(json.dumps(data) + "\n", encoding="utf-8")
        os.replace(partial, target)  # never a half-written checkpoint under the real name
    except OSError as e:
        raise click.BadParameter(f"cannot write {out}: {e}", param_hint="--out") from None
    summary = {k: data[k] for k in ("head", "digest", "at", "events", "streams")}
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"checkpoint at notification {data['head']} ({data['events']} events) written to {out}")


@click.group()
def events() -> None:
    """The stored events themselves."""


@events.command("export")
@click.option("--loan", "loan_id", metavar="ID", help="Only this loan's events.")
@click.option("--from", "recorded_from", metavar="TIMESTAMP", help="Recorded at or after (ISO 8601 with offset).")
@click.option("--to", "recorded_to", metavar="TIMESTAMP", help="Recorded before (ISO 8601 with offset).")
@click.option("--out", required=True, metavar="FILE", help="Where to write the rows (parquet: a directory).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), default="jsonl", show_default=True)
@click.option(
    "--after-id",
    "after_id",
    type=click.IntRange(min=0),
    metavar="N",
    help="parquet: only events after this notification id (default: after the last one already in --out).",
)
@store_options
def export(
    loan_id: str | None,
    recorded_from: str | None,
    recorded_to: str | None,
    out: str,
    fmt: str,
    after_id: int | None,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Write the audit trail: recorded time (UTC), occurred time, value date, amount and hashes per event.

    With --format parquet, the log of loan events for Spark (docs/scaling.md): a directory partitioned
    by borrower bucket and month, appended to incrementally by notification id."""
    if fmt == "parquet":
        _export_parquet(loan_id or recorded_from or recorded_to, out, after_id, db_url, as_json)
        return
    if after_id is not None:
        raise click.BadParameter("only with --format parquet", param_hint="--after-id")
    start, end = parse_moment(recorded_from, "--from"), parse_moment(recorded_to, "--to")
    if start and end and end <= start:
        raise click.BadParameter(f"{recorded_to} is not after --from {recorded_from}", param_hint="--to")
    app = open_ledger(db_url)
    target = Path(out)
    partial = target.with_name(target.name + ".partial")
    written = 0
    try:
        with partial.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS) if fmt == "csv" else None
            if writer:
                writer.writeheader()
            for row in export_rows(app, loan_id, start, end):
                row = to_jsonable(row)
                if writer:
                    writer.writerow({**row, "data": json.dumps(row["data"], ensure_ascii=False, sort_keys=True)})
                else:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
                written += 1
        os.replace(partial, target)
    except OSError as e:
        raise click.BadParameter(f"cannot write {out}: {e}", param_hint="--out") from None
    if as_json:
        echo_json({"out": out, "format": fmt, "events": written})
    else:
        click.echo(f"{written} events written to {out} ({fmt})")


def _export_parquet(narrowed: str | None, out: str, after_id: int | None, db_url: str | None, as_json: bool) -> None:
    from projections.event_export import ExportDirError, export_parquet

    if narrowed:
        raise click.BadParameter(
            "--format parquet exports the whole log incrementally; --loan, --from and --to are for jsonl and csv",
            param_hint="--format",
        )
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise click.BadParameter(f"{out} is a file; --format parquet writes a directory", param_hint="--out")
    app = open_ledger(db_url)
    try:
        report = export_parquet(app, target, after_id)
    except ExportDirError as e:
        raise click.BadParameter(str(e), param_hint="--out") from None
    except OSError as e:
        raise click.BadParameter(f"cannot write {out}: {e}", param_hint="--out") from None
    summary = {
        "out": out,
        "format": "parquet",
        "after_id": report.after_id,
        "through": report.head,
        "events": report.events,
        "files": report.files,
    }
    if as_json:
        echo_json(summary)
    else:
        click.echo(
            f"{report.events} events after notification {report.after_id} through {report.head} "
            f"written to {out} in {report.files} new file(s) (parquet)"
        )
