"""The numpy binary-COPY encoder against real PostgreSQL: exact numerics, NULL runs, timestamps, text."""

import io
from decimal import Decimal

import numpy as np
import pytest

from klinepipe.pgbinary import (Float8, Numeric, Text, Timestamp, copy_stream, decode_rows, encode_rows,
                                pg_time_to_ms, row_dtype)
from tests.helpers import rolled_back

pytestmark = pytest.mark.integration

UNITS = [0, 1, 99_999_999, 100_000_000, 6_119_600_000_000, 4_669_206_000_000, 12_345_678_901_234_567, 8_999_999_999_999_999_999]
SCALES = [0, 8, 8, 0, 2, 8, 8, 8]


def _copy_in(engine, ddl: str, fields) -> list[tuple]:
    with rolled_back(engine) as cur:
        cur.execute(f"CREATE TEMP TABLE t ({ddl})")
        cur.copy_expert("COPY t FROM STDIN (FORMAT binary)", io.BytesIO(copy_stream(encode_rows(fields))))
        cur.execute("SELECT * FROM t")
        return cur.fetchall()


def test_numerics_are_exact_with_their_scale(engine):
    units, scales = np.array(UNITS), np.array(SCALES)
    rows = _copy_in(engine, "c numeric, s text", [Numeric(units, scales), Text(b"x")])
    want = [(Decimal(u) / 10**8).quantize(Decimal(1).scaleb(-s)) for u, s in zip(UNITS, SCALES)]
    assert [r[0] for r in rows] == want
    assert [str(r[0]) for r in rows] == [str(w) for w in want]  # "61196.00", "0.00000001", …


def test_nan_is_null_in_any_pattern_and_row_order_is_kept(engine):
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=500), rng.normal(size=500)
    a[rng.random(500) < 0.3] = np.nan
    b[:50] = np.nan
    times = np.arange(500, dtype=np.int64) * 60_000 + 1_700_000_000_000
    rows = _copy_in(engine, "sym text, t timestamptz, a float8, b float8",
                    [Text(b"BTCUSDT"), Timestamp(times), Float8(a), Float8(b)])
    assert [r[0] for r in rows] == ["BTCUSDT"] * 500
    assert [int(r[1].timestamp() * 1000) for r in rows] == times.tolist()
    for got, want in ((np.array([r[2] for r in rows], dtype=float), a), (np.array([r[3] for r in rows], dtype=float), b)):
        np.testing.assert_array_equal(got, want)  # None -> nan: NULL exactly where NaN was, values bit-identical


def test_numeric_rejects_what_it_cannot_represent():
    with pytest.raises(ValueError, match="8 decimals"):
        encode_rows([Numeric(np.array([1]), np.array([9]))])
    with pytest.raises(ValueError, match="8 decimals"):
        encode_rows([Numeric(np.array([-1]), np.array([2]))])


def test_decode_reads_fixed_rows_and_refuses_nulls(engine):
    with rolled_back(engine) as cur:
        out = io.BytesIO()
        cur.copy_expert("COPY (SELECT timestamptz '2024-03-01 00:01:00+00', 1.5::float8, 7::int8) TO STDOUT (FORMAT binary)", out)
        rows = decode_rows(out.getvalue(), row_dtype(">i8", ">f8", ">i8"))
        assert pg_time_to_ms(rows["v0"]).tolist() == [1_709_251_260_000]
        assert (rows["v1"].tolist(), rows["v2"].tolist()) == ([1.5], [7])
        out = io.BytesIO()
        cur.copy_expert("COPY (SELECT now(), NULL::float8, 7::int8) TO STDOUT (FORMAT binary)", out)
        with pytest.raises(ValueError, match="NULL"):
            decode_rows(out.getvalue(), row_dtype(">i8", ">f8", ">i8"))
