"""market.candles / market.features partitioned by open_time (sql/030): the migration from the plain tables loses
nothing and can be re-run, a candle for a month without a partition is kept (DEFAULT partition) and moved out by
the maintenance step, and bounded-time reads touch only the partitions of their range (EXPLAIN)."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from klinepipe.candle_store import stage_and_merge
from klinepipe.db import SQL_DIR, apply_migrations, make_engine, raw_transaction
from klinepipe.feature_store import compute_pending_features
from klinepipe.kline import parse_kline_event
from klinepipe.partitions import ensure_partitions, ensure_partitions_ahead
from tests.conftest import _fresh_database
from tests.helpers import closed_events, partitions_dropped_after, sample_rows

MIGRATION = "030_partitioned_history.sql"
MONTH_MS = 31 * 24 * 3600 * 1000


def _events(rows, shift_ms=0, symbol="BTCUSDT"):
    """Closed 1m candles of the bundled sample, their times moved by ``shift_ms``."""
    moved = [[str(int(r[0]) + shift_ms), *r[1:6], str(int(r[6]) + shift_ms), *r[7:]] for r in rows]
    return [parse_kline_event(e) for e in closed_events(moved, symbol=symbol)]


def _merge(engine, klines, source="replay"):
    with raw_transaction(engine) as cur:
        return stage_and_merge(cur, [(k, source) for k in klines])


def _checksums(conn) -> dict[str, str]:
    """md5 of every row (ingested_at and computed_at aside: they say when a row was written) in key order."""
    out = {}
    for table, skip in (("market.candles", "ingested_at"), ("market.features", "computed_at"),
                        ("market.series_summary", "")):
        cols = [c for c, in conn.exec_driver_sql(
            f"SELECT attname FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attnum > 0"
            f" AND NOT attisdropped AND attname <> '{skip}' ORDER BY attname")]
        row = ", ".join(f"t.{c}::text" for c in cols)
        out[table] = conn.exec_driver_sql(
            f"SELECT count(*) || ':' || md5(coalesce(string_agg(concat_ws('|', {row}), E'\\n'"
            f" ORDER BY t.symbol, t.interval{', t.open_time' if 'open_time' in cols else ''}), '')) FROM {table} t").scalar()
    return out


def _schema(conn, table: str) -> dict:
    """What the migration must keep of a table: columns (type, NOT NULL, default, comment), constraints, indexes
    (name and definition), triggers, the table's comment, and the functions taking its row type."""
    oid = f"'{table}'::regclass"
    q = {
        "columns": f"SELECT attname, format_type(atttypid, atttypmod), attnotnull, pg_get_expr(d.adbin, d.adrelid),"
                   f" col_description(attrelid, attnum) FROM pg_attribute a LEFT JOIN pg_attrdef d"
                   f" ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                   f" WHERE attrelid = {oid} AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        "constraints": f"SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = {oid}"
                       f" AND contype <> 'n' ORDER BY 1",
        "indexes": f"SELECT c.relname, regexp_replace(pg_get_indexdef(i.indexrelid), ' ON (ONLY )?', ' ON '),"
                   f" obj_description(c.oid, 'pg_class') FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                   f" WHERE i.indrelid = {oid} ORDER BY 1",
        "triggers": f"SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = {oid} AND NOT tgisinternal"
                    f" ORDER BY 1",
        "comment": f"SELECT obj_description({oid}, 'pg_class')",
        "functions": f"SELECT p.oid::regprocedure::text FROM pg_proc p WHERE (SELECT reltype FROM pg_class"
                     f" WHERE oid = {oid}) = ANY(p.proargtypes::oid[]) ORDER BY 1",
    }
    return {k: [tuple(r) for r in conn.exec_driver_sql(v)] for k, v in q.items()}


@pytest.fixture
def plain_database(pg_admin_url, tmp_path):
    """A database migrated up to (not including) 030, and the directory with every migration. 032 (the summary's
    newest open time and open candles, which today's merge keeps) is applied too: it does not depend on 030."""
    before = tmp_path / "before"
    before.mkdir()
    for p in SQL_DIR.glob("[0-9][0-9][0-9]_*.sql"):
        if p.name < MIGRATION or p.name == "032_series_newest.sql":
            shutil.copy(p, before / p.name)
    eng = make_engine(_fresh_database(pg_admin_url, "kp_partitions"))
    apply_migrations(eng, before)
    yield eng
    eng.dispose()


def test_the_migration_partitions_both_tables_keeping_every_row_index_trigger_and_the_summary(plain_database):
    eng = plain_database
    _merge(eng, _events(sample_rows(120)) + _events(sample_rows(60), shift_ms=2 * MONTH_MS))  # two months apart
    _merge(eng, _events(sample_rows(5), symbol="ETHUSDT"))
    compute_pending_features(eng)
    with eng.begin() as conn:
        conn.exec_driver_sql("COMMENT ON INDEX market.candles_open IS 'the bars being built'")
        before = {t: _schema(conn, t) for t in ("market.candles", "market.features")}
        sums = _checksums(conn)
        assert conn.exec_driver_sql("SELECT relkind FROM pg_class WHERE oid = 'market.candles'::regclass").scalar() == "r"

    assert apply_migrations(eng)[0] == MIGRATION  # then any later ones (031_trading_protection.sql ...)

    with eng.begin() as conn:
        assert {t: _schema(conn, t) for t in before} == before
        assert _checksums(conn) == sums
        kinds = dict(conn.exec_driver_sql(
            "SELECT c.relname, c.relkind FROM pg_class p JOIN pg_inherits i ON i.inhparent = p.oid"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE p.oid = 'market.candles'::regclass").all())
        assert kinds == {"candles_default": "r", "candles_p20240301": "r", "candles_p20240401": "r", "candles_p20240501": "r"}
        assert conn.exec_driver_sql("SELECT count(*) FROM market.candles_default").scalar() == 0
        conn.connection.cursor().execute((SQL_DIR / MIGRATION).read_text())  # re-run: already partitioned, nothing changes
        assert {t: _schema(conn, t) for t in before} == before and _checksums(conn) == sums
        conn.exec_driver_sql("SELECT market.rebuild_series_summary()")
        assert _checksums(conn)["market.series_summary"] == sums["market.series_summary"]
        # a feature spec adds its column at run time: the partitions get it too
        conn.exec_driver_sql("ALTER TABLE market.features ADD COLUMN IF NOT EXISTS spec_test double precision")
        assert conn.exec_driver_sql("SELECT count(spec_test) FROM market.features_default").scalar() == 0

    # the merge still works on the partitioned table: new rows, a conflicting closed version recorded, summary kept
    first = sample_rows(1)[0]
    conflicting = parse_kline_event(closed_events([[*first[:5], "99999999", *first[6:]]])[0])  # a greater volume
    assert _merge(eng, [conflicting] + _events(sample_rows(130))[120:]) == 11
    with eng.begin() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM etl.candle_conflicts").scalar() == 1
        assert conn.exec_driver_sql("SELECT count(*) FROM market.series_summary_stale").scalar() == 0
        kept = _checksums(conn)["market.series_summary"]
        conn.exec_driver_sql("SELECT market.rebuild_series_summary()")
        assert _checksums(conn)["market.series_summary"] == kept


@pytest.fixture
def own_partitions(engine):
    """Drop the partitions a test made (the session's database is shared: other tests' plans stay as they were)."""
    with partitions_dropped_after(engine):
        yield engine


def _partition_of(engine, table: str, open_time_ms: int) -> str:
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            f"SELECT tableoid::regclass::text FROM {table} WHERE open_time = timestamptz 'epoch' + {open_time_ms}"
            " * interval '1 millisecond'").scalar()


def test_a_candle_for_a_month_without_a_partition_is_kept_and_then_moved_into_its_own(own_partitions):
    engine = own_partitions
    far = 50 * 12 * MONTH_MS  # ~51 years after the sample: no partition there
    klines = _events(sample_rows(3), shift_ms=far)
    assert _merge(engine, klines) == 3  # no partition for that month: the batch still succeeds
    assert _partition_of(engine, "market.candles", klines[0].open_time) == "market.candles_default"
    compute_pending_features(engine)
    assert _partition_of(engine, "market.features", klines[2].open_time) == "market.features_default"

    assert ensure_partitions(engine) == 2  # the month's partition of each table; the rows move into them
    month = datetime.fromtimestamp(klines[0].open_time / 1000, timezone.utc).strftime("%Y%m01")
    assert _partition_of(engine, "market.candles", klines[0].open_time) == f"market.candles_p{month}"
    assert _partition_of(engine, "market.features", klines[2].open_time) == f"market.features_p{month}"
    assert ensure_partitions(engine) == 0  # idempotent
    later = _events(sample_rows(4), shift_ms=far)  # the same three again and a fourth: into the partition
    assert _merge(engine, later) == 1
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM market.candles_default").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM market.candles").scalar() == 4


def test_partitions_are_made_ahead_for_this_month_and_the_next_two(own_partitions):
    engine = own_partitions
    now = datetime(2071, 11, 20, tzinfo=timezone.utc)
    ensure_partitions_ahead(engine, now)
    with engine.connect() as conn:
        names = {n for n, in conn.exec_driver_sql(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ '^candles_p207[12]'")}
    assert names == {"candles_p20711101", "candles_p20711201", "candles_p20720101"}
    assert ensure_partitions_ahead(engine, now) == 0
