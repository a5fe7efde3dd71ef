"""The training rows written out: Parquet (each column described in the file's schema) or CSV."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from projections.dataset import COLUMNS


def write(
    rows_in: Iterator[dict[str, Any]], path: str, fmt: str, as_of: date, known_at: datetime, batch_rows: int = 10_000
) -> int:
    """Stream rows to Parquet (each column described in the schema) or CSV; return how many."""
    if fmt == "csv":
        return _write_csv(rows_in, path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = arrow_types()
    schema = pa.schema(
        [
            pa.field(c.name, types[c.kind], metadata={"description": c.description, "kind": c.kind, "role": c.role})
            for c in COLUMNS
        ],
        metadata={
            "as_of": as_of.isoformat(),
            "known_at": known_at.isoformat(),
            "produced_by": "ledger dataset export (loan-ledger)",
            "dictionary": "docs/datasets.md",
        },
    )
    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        batch: list[dict[str, Any]] = []
        for row in rows_in:
            batch.append(row)
            if len(batch) >= batch_rows:
                writer.write_table(pa.Table.from_pylist(batch, schema))
                n += len(batch)
                batch = []
        writer.write_table(pa.Table.from_pylist(batch, schema))
        n += len(batch)
    return n


def arrow_types() -> dict[str, Any]:
    """Each column kind's Arrow type: the single-machine file's, and the batches handed to Spark."""
    import pyarrow as pa

    return {
        "string": pa.string(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "int": pa.int32(),
        "bool": pa.bool_(),
        "money": pa.decimal128(14, 2),
        "rate": pa.decimal128(18, 12),  # a command's rates carry at most 12 decimal places
        "float": pa.float64(),
    }


def _write_csv(rows_in: Iterator[dict[str, Any]], path: str) -> int:
    import csv

    n = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([c.name for c in COLUMNS])
        for row in rows_in:
            writer.writerow([_text(row[c.name], c.kind) for c in COLUMNS])
            n += 1
    return n


def _text(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "money":
        return f"{value:.2f}"
    if kind == "rate":
        return format(value, "f")  # never an exponent (str(Decimal("0.0000001")) is "1E-7")
    if kind == "timestamp":
        text: str = value.astimezone(UTC).isoformat()
        return text
    if kind == "date":
        day: str = value.isoformat()
        return day
    if kind == "bool":
        return "true" if value else "false"
    return str(value)
