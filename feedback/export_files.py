"""Export files: JSON Lines or Parquet, rows holding only TRL's columns.

JSON Lines carries no metadata (the HTTP route sends it in headers, the CLI prints it); Parquet
keeps it in the file's schema metadata under `flywheel.*` keys, which `datasets` ignores.
pyarrow (a dependency of `datasets`) is imported only when Parquet is asked for.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import IO, Any

from feedback.exports import COLUMNS, Export

KINDS = ("jsonl", "parquet")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
METADATA_PREFIX = "flywheel."


def jsonl_lines(rows: list[dict[str, Any]]) -> Iterator[bytes]:
    """One JSON object per line, UTF-8, keys in the format's column order."""
    for row in rows:
        yield json.dumps(row, ensure_ascii=False).encode() + b"\n"


def arrow_schema(fmt: str, metadata: dict[str, str] | None = None):
    """Explicit types, so an empty export and every message list have the same schema."""
    import pyarrow as pa

    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    types = {"label": pa.bool_()}
    fields = [pa.field(name, types.get(name, messages)) for name in COLUMNS[fmt]]
    return pa.schema(fields, metadata=metadata)


def parquet_bytes(export: Export) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    metadata = {METADATA_PREFIX + k: v for k, v in export.metadata().items()}
    table = pa.Table.from_pylist(export.rows, schema=arrow_schema(export.format, metadata))
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def parquet_metadata(data: bytes | str) -> dict[str, str]:
    """The `flywheel.*` metadata of a Parquet export (bytes or a path), without the prefix."""
    import pyarrow.parquet as pq

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    raw = pq.read_schema(source).metadata or {}
    return {
        k.decode()[len(METADATA_PREFIX) :]: v.decode()
        for k, v in raw.items()
        if k.decode().startswith(METADATA_PREFIX)
    }


def write_export(export: Export, out: IO[bytes], kind: str = "jsonl") -> None:
    """Write the rows to a binary stream as `jsonl` or `parquet`."""
    if kind == "jsonl":
        for line in jsonl_lines(export.rows):
            out.write(line)
    elif kind == "parquet":
        out.write(parquet_bytes(export))
    else:
        raise ValueError(f"unknown file kind {kind!r}: use one of {', '.join(KINDS)}")
