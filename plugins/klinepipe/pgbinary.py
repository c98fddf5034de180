"""PostgreSQL binary COPY for fixed-width rows, built and parsed with numpy (no Python loop per row).

Binary COPY moves a million feature rows in well under a second, where text formatting in Python
would take many. Supported fields, enough for the feature store:

- ``Text(b"BTCUSDT")``: one constant ``text`` value for every row;
- ``Timestamp(ms)``: ``timestamptz`` from epoch milliseconds;
- ``Numeric(mantissa, scale)``: an exact ``numeric`` ``mantissa / 10**8`` (``0 <= mantissa < 2**63``),
  shown with ``scale`` (0..8) decimals; PostgreSQL strips the leading and trailing zero digit groups;
- ``Float8(values)``: ``double precision``, NaN sent as NULL.

Rows are cut into runs with the same NULL pattern; each run is one numpy structured array.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in Unix microseconds
NUMERIC_SCALE = 8  # Numeric mantissas are in units of 1e-8 (Binance prices and quantities have at most 8 decimals)
_NBASE = 10_000


@dataclass(frozen=True)
class Text:
    value: bytes


@dataclass(frozen=True)
class Timestamp:
    epoch_ms: np.ndarray


@dataclass(frozen=True)
class Numeric:
    mantissa: np.ndarray
    scale: np.ndarray


@dataclass(frozen=True)
class Float8:
    values: np.ndarray


Field = Text | Timestamp | Numeric | Float8


def encode_rows(fields: list[Field]) -> bytes:
    """Rows (no header or trailer) of binary COPY for the given columns, in row order."""
    n = _length(fields)
    floats = [i for i, f in enumerate(fields) if isinstance(f, Float8)]
    nulls = np.column_stack([np.isnan(fields[i].values) for i in floats]) if floats and n else np.zeros((n, 0), bool)
    pattern = nulls @ (1 << np.arange(nulls.shape[1], dtype=np.int64)) if nulls.shape[1] else np.zeros(n, np.int64)
    cuts = np.concatenate(([0], np.flatnonzero(pattern[1:] != pattern[:-1]) + 1, [n])) if n else np.array([0])
    return b"".join(_encode_run(fields, int(a), int(b), nulls[a]) for a, b in zip(cuts[:-1], cuts[1:]))


def copy_stream(rows: bytes) -> bytes:
    """A complete binary COPY stream around ``rows``."""
    return HEADER + rows + TRAILER


def _length(fields: list[Field]) -> int:
    for f in fields:
        if isinstance(f, Timestamp):
            return len(f.epoch_ms)
        if isinstance(f, Numeric):
            return len(f.mantissa)
        if isinstance(f, Float8):
            return len(f.values)
    raise ValueError("at least one column must be an array")


def _encode_run(fields: list[Field], a: int, b: int, null_row: np.ndarray) -> bytes:
    spec: list[tuple] = [("n", ">i2")]
    null = iter(null_row)
    skip = set()
    for i, f in enumerate(fields):
        spec.append((f"l{i}", ">i4"))
        if isinstance(f, Text):
            spec.append((f"v{i}", f"S{len(f.value)}"))
        elif isinstance(f, Timestamp):
            spec.append((f"v{i}", ">i8"))
        elif isinstance(f, Numeric):
            spec.append((f"v{i}", ">i2", (9,)))  # ndigits, weight, sign, dscale, 5 base-10000 digits
        elif next(null):
            skip.add(i)
        else:
            spec.append((f"v{i}", ">f8"))
    rows = np.empty(b - a, dtype=np.dtype(spec))
    rows["n"] = len(fields)
    for i, f in enumerate(fields):
        if i in skip:
            rows[f"l{i}"] = -1
        elif isinstance(f, Text):
            rows[f"l{i}"], rows[f"v{i}"] = len(f.value), f.value
        elif isinstance(f, Timestamp):
            rows[f"l{i}"], rows[f"v{i}"] = 8, np.asarray(f.epoch_ms[a:b], dtype=np.int64) * 1000 - PG_EPOCH_US
        elif isinstance(f, Numeric):
            rows[f"l{i}"], rows[f"v{i}"] = 18, _numeric_words(f.mantissa[a:b], f.scale[a:b])
        else:
            rows[f"l{i}"], rows[f"v{i}"] = 8, f.values[a:b]
    return rows.tobytes()


def _numeric_words(mantissa: np.ndarray, scale: np.ndarray) -> np.ndarray:
    m = np.asarray(mantissa, dtype=np.int64)
    if len(m) and (m.min() < 0 or np.asarray(scale).max() > NUMERIC_SCALE):
        raise ValueError("Numeric takes non-negative mantissas with at most 8 decimals")
    whole, frac = np.divmod(m, 10**NUMERIC_SCALE)
    words = np.empty((len(m), 9), dtype=np.int64)
    words[:, 0], words[:, 1], words[:, 2], words[:, 3] = 5, 2, 0, scale  # 3 integer + 2 fraction groups
    words[:, 4] = whole // _NBASE**2
    words[:, 5] = whole // _NBASE % _NBASE
    words[:, 6] = whole % _NBASE
    words[:, 7] = frac // _NBASE
    words[:, 8] = frac % _NBASE
    return words


def decode_rows(buf: bytes, dtype: np.dtype) -> np.ndarray:
    """Parse a binary COPY stream whose every row has the fixed layout ``dtype`` (``n``, then ``l0``, ``v0``, …)."""
    if not buf.startswith(HEADER[:11]):
        raise ValueError("not a PostgreSQL binary COPY stream")
    ext = struct.unpack(">i", buf[15:19])[0]
    start, end = 19 + ext, len(buf) - len(TRAILER)
    if (end - start) % dtype.itemsize:
        raise ValueError("unexpected NULL or field width in binary COPY stream")
    rows = np.frombuffer(buf, dtype=dtype, count=(end - start) // dtype.itemsize, offset=start)
    n_fields = sum(1 for name in dtype.names if name.startswith("l"))
    widths = [dtype[name.replace("l", "v", 1)].itemsize for name in dtype.names if name.startswith("l")]
    if len(rows) and (np.any(rows["n"] != n_fields)
                      or any(np.any(rows[f"l{i}"] != w) for i, w in enumerate(widths))):
        raise ValueError("unexpected NULL or field width in binary COPY stream")
    return rows


def row_dtype(*fields: str) -> np.dtype:
    """The dtype of fixed-width rows with the given big-endian field types (``">i8"``, ``">f8"``, …)."""
    spec: list[tuple] = [("n", ">i2")]
    for i, t in enumerate(fields):
        spec += [(f"l{i}", ">i4"), (f"v{i}", t)]
    return np.dtype(spec)


def named_columns(rows: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The value fields of ``decode_rows`` output by name: ``names`` as the COPY selected them, in order."""
    if len(names) != sum(1 for n in rows.dtype.names if n.startswith("v")):
        raise ValueError(f"{len(names)} names for rows of another width")
    return {name: rows[f"v{i}"] for i, name in enumerate(names)}


def pg_time_to_ms(pg_us: np.ndarray) -> np.ndarray:
    """``timestamptz`` microseconds since 2000-01-01 -> epoch milliseconds."""
    return (pg_us.astype(np.int64) + PG_EPOCH_US) // 1000
