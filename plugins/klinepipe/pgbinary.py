"""PostgreSQL binary COPY for fixed-width rows (one timestamptz + float8 columns), built with numpy.

Binary COPY moves a million feature rows in well under a second, where text formatting in Python
would take many. Only the shapes the feature store needs are supported: no NULLs (NaN travels as the
float8 NaN and is turned into NULL in SQL), every field fixed-width.
"""

from __future__ import annotations

import struct

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds


def _row_dtype(n_floats: int, first: str) -> np.dtype:
    fields = [("n", ">i2"), ("l0", ">i4"), ("v0", first)]
    for i in range(1, n_floats + 1):
        fields += [(f"l{i}", ">i4"), (f"v{i}", ">f8")]
    return np.dtype(fields)


def encode_time_floats(open_time_ms: np.ndarray, columns: list[np.ndarray]) -> bytes:
    """Rows of (timestamptz from epoch ms, float8 …) in binary COPY format."""
    rows = np.empty(len(open_time_ms), dtype=_row_dtype(len(columns), ">i8"))
    rows["n"] = 1 + len(columns)
    rows["l0"] = 8
    rows["v0"] = np.asarray(open_time_ms, dtype=np.int64) * 1000 - PG_EPOCH_US
    for i, col in enumerate(columns, start=1):
        rows[f"l{i}"] = 8
        rows[f"v{i}"] = col
    return HEADER + rows.tobytes() + TRAILER


def decode_time_floats(buf: bytes, n_floats: int) -> tuple[np.ndarray, np.ndarray]:
    """Parse a binary COPY of (timestamptz, float8 × n) with no NULLs: (epoch ms, 2-D float array)."""
    if not buf.startswith(HEADER[:11]):
        raise ValueError("not a PostgreSQL binary COPY stream")
    ext = struct.unpack(">i", buf[15:19])[0]
    start, end = 19 + ext, len(buf) - len(TRAILER)
    dtype = _row_dtype(n_floats, ">i8")
    rows = np.frombuffer(buf[start:end], dtype=dtype)
    if len(rows) and (np.any(rows["n"] != 1 + n_floats) or any(np.any(rows[f"l{i}"] != 8) for i in range(n_floats + 1))):
        raise ValueError("unexpected NULL or field width in binary COPY stream")
    times = (rows["v0"].astype(np.int64) + PG_EPOCH_US) // 1000
    values = np.column_stack([rows[f"v{i}"].astype(np.float64) for i in range(1, n_floats + 1)]) if len(rows) else np.empty((0, n_floats))
    return times, values
