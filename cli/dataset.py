"""`ledger dataset export`: training rows for the risk model, as of a date and as known at a time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import click

from cli.common import Problem, echo_json, open_ledger, parse_day, parse_moment, store_options
from projections.dataset import rows
from projections.dataset_writers import write


@click.group()
def dataset() -> None:
    """Risk-model training datasets."""


@dataset.command("export")
@click.option("--as-of", "as_of", metavar="DATE", required=True, help="Outcome windows are judged as of this date.")
@click.option(
    "--known-at",
    "known_at",
    metavar="TIMESTAMP",
    help="Only what the ledger had recorded by then (default: now). Give it to make an export reproducible.",
)
@click.option("--out", required=True, type=click.Path(writable=True), help="A file (spark: a new directory).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@click.option(
    "--engine",
    type=click.Choice(["local", "spark"]),
    default="local",
    show_default=True,
    help="spark: compute the rows with Spark from `ledger events export --format parquet` (needs --events).",
)
@click.option(
    "--events", "events_dir", metavar="DIR", help="spark: the Parquet event log (a path or an object-store URL)."
)
@click.option(
    "--master",
    metavar="URL",
    help="spark: the master, e.g. local[2] (default: what spark-submit or the Spark configuration gives).",
)
@click.option(
    "--partitions",
    type=click.IntRange(1, 100_000),
    default=8,
    show_default=True,
    help="spark: how many groups of borrowers the rows are computed in (spark.sql.shuffle.partitions).",
)
@store_options
def export(
    as_of: str,
    known_at: str | None,
    out: str,
    fmt: str,
    engine: str,
    events_dir: str | None,
    master: str | None,
    partitions: int,
    db_url: str | None,
    as_json: bool,
) -> None:
    """One row per application: features known before the decision, labels once matured."""
    day = parse_day(as_of, "--as-of")
    if day is None:  # --as-of is required: click refuses its absence first
        raise click.BadParameter("is required", param_hint="--as-of")
    moment = parse_moment(known_at, "--known-at") or datetime.now(UTC)
    if engine == "spark":
        n = _spark(events_dir, out, fmt, day, moment, master, partitions)
        fmt = "parquet directory"
    else:
        if events_dir or master:
            raise click.BadParameter("--events and --master are for --engine spark", param_hint="--engine")
        app = open_ledger(db_url)
        n = write(rows(app, day, moment), out, fmt, day, moment)
    if as_json:
        echo_json({"out": out, "format": fmt, "rows": n, "as_of": day, "known_at": moment, "engine": engine})
    else:
        click.echo(f"wrote {n} rows to {out} ({fmt}; as of {day}, known at {moment.isoformat()})")


def _spark(
    events_dir: str | None, out: str, fmt: str, day: date, moment: datetime, master: str | None, partitions: int
) -> int:
    """The Spark engine: every refusal before Spark starts is a usage error (exit 2)."""
    if not events_dir:
        raise click.BadParameter("--engine spark reads the Parquet event log: give --events DIR", param_hint="--events")
    if fmt != "parquet":
        raise click.BadParameter("--engine spark writes Parquet only", param_hint="--format")
    local = "://" not in events_dir
    if local and not Path(events_dir).is_dir():
        raise click.BadParameter(
            f"{events_dir} is not a directory written by `ledger events export --format parquet`",
            param_hint="--events",
        )
    if "://" not in out and Path(out).exists():
        raise click.BadParameter(f"{out} exists; the Spark engine writes a new directory", param_hint="--out")
    from projections import spark_dataset

    try:
        return spark_dataset.export(events_dir, out, day, moment, master, partitions)
    except spark_dataset.SparkMissing as e:
        raise click.UsageError(str(e)) from None
    except spark_dataset.SparkFailed as e:
        raise Problem(str(e)) from None
