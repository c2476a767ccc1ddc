"""A safetensors header, read by hand and checked against the file before anything else reads it.

Not `safetensors.safe_open`: it gives names, dtypes and shapes but not the offsets that the
adapter checks read raw floats by (serve/adapter_checks.py `_check_values`), and reading bf16
values through it needs torch (numpy has no bf16), which the gateway never imports (~200 MiB of
resident memory).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MAX_HEADER_BYTES = 16 << 20  # a safetensors header lists names and offsets: ~100 B per tensor
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


def read_header(file: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (dtype, shape) from a safetensors header, checked against the file size.

    Raises ValueError naming what is wrong: a header longer than the file, offsets past the
    end, overlapping or missing bytes, a byte count that disagrees with dtype and shape.
    """
    return dtypes_and_shapes(tensor_layout(file))


def dtypes_and_shapes(layout) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {name: (dtype, shape) for name, (dtype, shape, _) in layout[1].items()}


def tensor_layout(file: Path) -> tuple[int, dict[str, tuple[str, tuple[int, ...], int]]]:
    """(where the data section starts, name -> (dtype, shape, offset in it)), checked as above."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"the file is {size} bytes, shorter than the 8-byte header length")
        length = int.from_bytes(head, "little")
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"it declares a {length}-byte header in a {size}-byte file")
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"its header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    data_bytes = size - 8 - length
    tensors, spans = {}, []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, offsets = entry_fields(entry)
        if dtype not in DTYPE_BYTES or shape is None or offsets is None or len(offsets) != 2:
            raise ValueError(f"the header entry of {name!r} is malformed")
        start, end = offsets
        if not start <= end <= data_bytes:
            raise ValueError(
                f"{name!r} lies at bytes {start}..{end} of a {data_bytes}-byte data section"
            )
        if end - start != math.prod(shape) * DTYPE_BYTES[dtype]:
            raise ValueError(f"{name!r} holds {end - start} bytes, not what {dtype} {shape} needs")
        tensors[name] = (dtype, tuple(shape), start)
        spans.append((start, end))
    position = 0
    for start, end in sorted(spans):
        if start != position:
            raise ValueError(f"its tensors overlap or leave a gap at byte {position}")
        position = end
    if position != data_bytes:
        raise ValueError(f"{data_bytes - position} bytes after the last tensor belong to none")
    return 8 + length, tensors


def entry_fields(entry: Any) -> tuple[Any, list[int] | None, list[int] | None]:
    if not isinstance(entry, dict):
        return None, None, None

    def counts(value: Any) -> list[int] | None:
        ok = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
        )
        return value if ok else None

    return entry.get("dtype"), counts(entry.get("shape")), counts(entry.get("data_offsets"))
