"""`ledger dataset export --engine spark`: the training rows computed by Spark from the Parquet event log.

The rows are the single-machine export's, by the same function: each borrower's events are grouped
on a Spark worker (repartitioned by borrower and sorted by borrower, loan and version, then
``mapInArrow``), decoded into loan histories by ``LoanHistory.decode`` (projections/dataset_facts.py)
and turned into rows by ``borrower_rows`` (projections/dataset.py), exactly as ``rows()`` does from
the store.
``rows_from_events`` below is the one seam between the two: events in, rows out. The events come
from ``ledger events export --format parquet``, whose ``data`` column is each event's stored JSON,
byte for byte, so decimals and times reach the row function as they would from the store.

pyspark (and pandas) are an optional extra (``pip install 'loan-ledger[spark]'``), imported here
only, when the Spark engine is asked for.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from eventsourcing.persistence import Notification

from domain.loan import loan_uuid
from projections.dataset import COLUMNS, borrower_rows
from projections.dataset_facts import LoanHistory
from projections.dataset_writers import arrow_types

INSTALL = "pip install 'loan-ledger[spark]'"
ROWS_PER_BATCH = 10_000  # rows handed back to Spark at a time
EVENT_COLUMNS = ("notification_id", "loan_id", "borrower_id", "version", "topic", "data")


class SparkMissing(RuntimeError):
    """pyspark (or pandas, or a Java runtime) is not installed: the Spark engine is an optional extra."""


class SparkFailed(RuntimeError):
    """The Spark job started and failed: unreadable events, an event the row function does not know."""


def _first_line(error: BaseException) -> str:
    """Spark's errors carry JVM stack traces: the first line that says something, bounded."""
    for line in str(error).splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "File ", "^")):
            return line[:500]
    return type(error).__name__


def rows_from_events(batches: Iterator[Any], as_of: date, known_at: datetime) -> Iterator[Any]:
    """Arrow batches of events, sorted by borrower, loan and version -> Arrow batches of their rows.

    The seam between Spark and the row function: each borrower's events (a run of consecutive rows,
    which may cross batches) become loan histories (``LoanHistory.decode``) and then rows
    (``borrower_rows``), as ``rows()`` does from the store. Plain Python per event and one Arrow
    conversion per batch of rows: a pandas frame per borrower cost ~20 ms of CPU a borrower.
    """
    import pyarrow as pa

    schema = arrow_schema()
    out: list[dict[str, Any]] = []
    loans: dict[str, list[Notification]] = {}
    borrower: str | None = None

    def finish() -> None:
        out.extend(borrower_rows([LoanHistory.decode(stored) for stored in loans.values()], as_of, known_at))

    for batch in batches:
        columns = batch.to_pydict()
        for nid, loan_id, borrower_id, version, topic, data in zip(*(columns[c] for c in EVENT_COLUMNS), strict=True):
            if borrower_id != borrower:
                if borrower is not None:
                    finish()
                loans, borrower = {}, borrower_id
                if len(out) >= ROWS_PER_BATCH:
                    yield from pa.Table.from_pylist(out, schema).to_batches()
                    out = []
            loans.setdefault(loan_id, []).append(
                Notification(
                    originator_id=loan_uuid(loan_id),
                    originator_version=version,
                    topic=topic,
                    state=data.encode(),
                    id=nid,
                )
            )
    if borrower is not None:
        finish()
    if out:
        yield from pa.Table.from_pylist(out, schema).to_batches()


def arrow_schema() -> Any:
    """The single-machine file's types (projections/dataset_writers.py), for the batches handed to Spark."""
    import pyarrow as pa

    kinds = arrow_types()
    return pa.schema([pa.field(c.name, kinds[c.kind]) for c in COLUMNS])


def spark_schema() -> Any:
    from pyspark.sql import types as T

    kinds = {
        "string": T.StringType(),
        "date": T.DateType(),
        "timestamp": T.TimestampType(),
        "int": T.IntegerType(),
        "bool": T.BooleanType(),
        "money": T.DecimalType(14, 2),
        "rate": T.DecimalType(18, 12),  # the single-machine export's types, column by column
        "float": T.DoubleType(),
    }
    return T.StructType([T.StructField(c.name, kinds[c.kind], True, {"description": c.description}) for c in COLUMNS])


def session(master: str | None, partitions: int) -> Any:
    """A Spark session (the caller's own, on a cluster: ``master`` None leaves it to spark-submit)."""
    try:
        import pandas  # noqa: F401
        from pyspark.sql import SparkSession
    except ImportError as e:
        raise SparkMissing(f"the Spark engine needs pyspark and pandas ({e.name} is missing): {INSTALL}") from None
    if not master or master.startswith("local"):
        # Local workers must run this interpreter (its packages), not whatever python3 is first on
        # PATH. On a cluster the executors' Python is the cluster's (spark.pyspark.python).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("loan-ledger dataset")
    if master:
        builder = builder.master(master)
    try:
        return _configured(builder, partitions)
    except Exception as e:  # no Java, a bad master URL: Spark did not start
        raise SparkMissing(
            f"Spark did not start ({_first_line(e)}); it needs a Java 17+ runtime (e.g. apt-get install "
            f"default-jre-headless) and {INSTALL}"
        ) from None


def _configured(builder: Any, partitions: int) -> Any:
    return (
        builder.config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(partitions))
        # the rows are Python work, not bytes: keep the partitions asked for rather than let adaptive
        # execution merge a small shuffle into one task on one core
        .config("spark.sql.adaptive.coalescePartitions.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )


def dataset_frame(spark: Any, events_dir: str, as_of: date, known_at: datetime) -> Any:
    """The training rows as a Spark DataFrame, from the Parquet event log at ``events_dir``."""

    def rows_of(batches: Iterator[Any]) -> Iterator[Any]:
        return rows_from_events(batches, as_of, known_at)

    events = spark.read.parquet(events_dir).select(*EVENT_COLUMNS)
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    by_borrower = events.repartition(partitions, "borrower_id").sortWithinPartitions(
        "borrower_id", "loan_id", "version"
    )
    return by_borrower.mapInArrow(rows_of, schema=spark_schema())


def export(
    events_dir: str, out: str, as_of: date, known_at: datetime, master: str | None = None, partitions: int = 8
) -> int:
    """Write the rows as Parquet under the directory ``out`` (Spark's part files); return how many."""
    spark = session(master, partitions)
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        dataset_frame(spark, events_dir, as_of, known_at).write.mode("errorifexists").parquet(out)
        return int(spark.read.parquet(out).count())  # from the files' footers: the rows are not computed twice
    except (PySparkException, Py4JError) as e:
        worker = _worker_error(str(e))
        raise SparkFailed(f"the Spark job failed: {worker or _first_line(e)}") from None


def _worker_error(text: str) -> str | None:
    """The row function's own error (e.g. UnknownEvent) from a worker's Python traceback, if there is one."""
    found = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("projections.", "domain.")) and ": " in line:  # "module.Error: message"
            found = line[:500]
    return found
