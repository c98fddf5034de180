"""Bulk, guarded upsert of candles (and the conflicts it meets), inside the caller's PostgreSQL transaction.

Rows are COPY-ed into a temporary staging table, then merged with one ``INSERT … ON CONFLICT`` whose
guard keeps the newest state of each candle by the conflict rule of ``kline.beats``: an in-progress update
never overwrites a closed candle, an older event never overwrites a newer one, and at equal event times the
greater content (then source) wins, so the result does not depend on how messages were batched. The same
statement records two closed versions that differ (``etl.candle_conflicts``) and queues the closed candles it
changed for ``compute_features`` (``etl.features_pending``): both commit with the candles.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass

from klinepipe.db import COPY_CHUNK
from klinepipe.kline import CONTENT_FIELDS, MONEY_FIELDS, Kline, content_json

_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS candles_staging (
    symbol text, interval text, open_time bigint, close_time bigint,
    open numeric, high numeric, low numeric, close numeric, volume numeric,
    quote_volume numeric, trades bigint, taker_buy_base_volume numeric, taker_buy_quote_volume numeric,
    is_closed boolean, event_time bigint, source text
) ON COMMIT DROP
"""

_NOT_NULL = ("close_time", "open", "high", "low", "close", "volume")


def _values(x: str) -> str:
    """The values of a candle row ``x`` in the rule's order (numeric: 1.5 = 1.50)."""
    return ", ".join(f"{x}.{name}" for name in CONTENT_FIELDS)


def _ordered_values(x: str) -> str:
    """The values as ``kline.content_order`` compares them (a missing one as -1)."""
    return ", ".join(f"{x}.{n}" if n in _NOT_NULL else f"coalesce({x}.{n}, -1)" for n in CONTENT_FIELDS)


def _scales_and_source(x: str) -> str:
    """The money scales as ``kline.content_order`` compares them, then the source (code points: COLLATE "C")."""
    scales = ", ".join(f"scale({x}.{n})" if n in _NOT_NULL else f"coalesce(scale({x}.{n}), -1)" for n in MONEY_FIELDS)
    return f'{scales}, {x}.source COLLATE "C"'


def _guard(b: str = "EXCLUDED", a: str = "c") -> str:
    """SQL of ``kline.beats(b, a)`` (ties by source) for the ON CONFLICT guard: whether ``b`` replaces ``a``.
    Cheap for the common cases (an in-progress update, the same closed candle again); a closed candle meeting a
    stored closed one with other values goes through etl.record_candle_conflict, which records both and
    returns the verdict it is given."""
    later_time = f"{b}.event_time > {a}.event_time"
    greater_values = f"({_ordered_values(b)}) > ({_ordered_values(a)})"
    distinct = f"({_values(b)}) IS DISTINCT FROM ({_values(a)})"
    return f"""CASE
    WHEN {b}.is_closed <> {a}.is_closed THEN {b}.is_closed
    WHEN {b}.event_time <> {a}.event_time THEN
        CASE WHEN {a}.is_closed AND {distinct} THEN etl.record_candle_conflict({a}, {b}, {later_time}) ELSE {later_time} END
    WHEN {distinct} THEN
        CASE WHEN {a}.is_closed THEN etl.record_candle_conflict({a}, {b}, {greater_values}) ELSE {greater_values} END
    ELSE ({_scales_and_source(b)}) > ({_scales_and_source(a)})
END"""


# The guarded merge (the conflict rule of ``kline.beats``, see ``_guard``). The same statement queues, per series,
# the range of closed candles it changed for compute_features (etl.features_pending), keeps the series' summary
# (market.series_summary: candles added, open candles, newest open time, newest write, newest live arrival; a row is
# new when the statement's snapshot, taken before the insert, lacks its key (PostgreSQL 16 cannot return xmax from a
# partitioned table), and was open when that version is; the lookup is a LATERAL ... LIMIT 1, so it stays one key
# lookup per row: as a join (NOT EXISTS) the planner could hash it against every partition of the history;
# ``summary_kept`` tells the table's trigger that this statement kept it, see sql/020),
# and returns how many candles it changed.
_MERGE = f"""
WITH merged AS (
INSERT INTO market.candles AS c (
    symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume, trades,
    taker_buy_base_volume, taker_buy_quote_volume, is_closed, event_time, source, ingested_at)
SELECT symbol, interval,
       timestamptz 'epoch' + open_time * interval '1 millisecond',
       timestamptz 'epoch' + close_time * interval '1 millisecond',
       open, high, low, close, volume, quote_volume, trades,
       taker_buy_base_volume, taker_buy_quote_volume, is_closed,
       timestamptz 'epoch' + event_time * interval '1 millisecond',
       source, now()
FROM candles_staging
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
    close_time = EXCLUDED.close_time, open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
    close = EXCLUDED.close, volume = EXCLUDED.volume, quote_volume = EXCLUDED.quote_volume,
    trades = EXCLUDED.trades, taker_buy_base_volume = EXCLUDED.taker_buy_base_volume,
    taker_buy_quote_volume = EXCLUDED.taker_buy_quote_volume, is_closed = EXCLUDED.is_closed,
    event_time = EXCLUDED.event_time, source = EXCLUDED.source, ingested_at = EXCLUDED.ingested_at
WHERE {_guard()}
RETURNING symbol, interval, open_time, is_closed, source, ingested_at, close_time
), queued AS (
INSERT INTO etl.features_pending (symbol, interval, first_open_time, last_open_time)
SELECT symbol, interval, min(open_time), max(open_time) FROM merged WHERE is_closed GROUP BY symbol, interval
), summarised AS (
INSERT INTO market.series_summary AS s (symbol, interval, candles, newest_ingested_at, last_live_ingested_at,
                                        newest_open_time, open_candles)
SELECT m.symbol, m.interval, count(*) FILTER (WHERE o.is_closed IS NULL), max(m.ingested_at),
       max(m.ingested_at) FILTER (WHERE market.arrived_live(m.source, m.ingested_at, m.close_time)), max(m.open_time),
       count(*) FILTER (WHERE NOT m.is_closed) - count(*) FILTER (WHERE NOT o.is_closed)
FROM merged m  -- o: the stored version before this statement (a CTE's writes are not seen), by key lookup per row
LEFT JOIN LATERAL (SELECT is_closed FROM market.candles o WHERE o.symbol = m.symbol AND o.interval = m.interval
                   AND o.open_time = m.open_time LIMIT 1) o ON true
GROUP BY m.symbol, m.interval
ON CONFLICT (symbol, interval) DO UPDATE SET
    candles = s.candles + EXCLUDED.candles,
    open_candles = s.open_candles + EXCLUDED.open_candles,
    newest_ingested_at = greatest(s.newest_ingested_at, EXCLUDED.newest_ingested_at),
    last_live_ingested_at = greatest(s.last_live_ingested_at, EXCLUDED.last_live_ingested_at),
    newest_open_time = greatest(s.newest_open_time, EXCLUDED.newest_open_time)
)
SELECT (SELECT count(*) FROM merged), set_config('klinepipe.summary_kept', statement_timestamp()::text, true)
"""


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two closed versions of one candle that differ, met in one batch (``earlier`` arrived first)."""

    earlier: Kline
    earlier_source: str
    later: Kline
    later_source: str
    later_won: bool


def stage_and_merge(cur, rows: Iterable[tuple[Kline, str]]) -> int:
    """COPY ``(kline, source)`` rows into staging and merge them; return the rows changed."""
    return merge_copy(cur, copy_buffer(rows))


def merge_copy(cur, buffer: io.StringIO) -> int:
    """COPY a ``copy_buffer`` into staging and merge it; return the rows changed.

    May be called several times in one transaction (the staging table is emptied after each merge);
    the guard makes the merged state the newest per candle whatever the order of the calls. Only
    PostgreSQL works here (psycopg2 releases the GIL), so a worker thread can run it beside a parser.
    """
    cur.execute(_STAGING_DDL)
    cur.copy_expert("COPY candles_staging FROM STDIN", buffer, COPY_CHUNK)
    # The prior-version lookup must be a key lookup whatever the statistics say. A partition the planner believes
    # empty (a fresh database, a new month, statistics older than the load's own transaction) got a sequential
    # scan per merged row, over the pages the statement itself was filling: quadratic (300k candles into a fresh
    # database: 10 minutes instead of 4 s).
    cur.execute("SELECT current_setting('enable_seqscan'), set_config('enable_seqscan', 'off', true)")
    before = cur.fetchone()[0]
    cur.execute(_MERGE)
    changed = cur.fetchone()[0]
    cur.execute("SELECT set_config('enable_seqscan', %s, true)", (before,))
    cur.execute("TRUNCATE candles_staging")
    return changed


def insert_conflicts(cur, conflicts: list[Conflict]) -> None:
    """Record conflicts found inside a batch (the merge records those with stored candles itself)."""
    if not conflicts:
        return
    cur.executemany(
        "INSERT INTO etl.candle_conflicts (symbol, interval, open_time, earlier, later, earlier_event_time,"
        " later_event_time, won) VALUES (%s, %s, timestamptz 'epoch' + %s * interval '1 millisecond', %s, %s,"
        " timestamptz 'epoch' + %s * interval '1 millisecond', timestamptz 'epoch' + %s * interval '1 millisecond', %s)",
        [(c.later.symbol, c.later.interval, c.later.open_time, json.dumps(content_json(c.earlier, c.earlier_source)),
          json.dumps(content_json(c.later, c.later_source)), c.earlier.event_time, c.later.event_time,
          "later" if c.later_won else "earlier") for c in conflicts],
    )


def copy_buffer(rows: Iterable[tuple[Kline, str]]) -> io.StringIO:
    """COPY text rows. Symbols are letters and digits (checked when parsed); sources are escaped."""
    sources: dict[str, str] = {}
    lines = []
    for k, source in rows:
        src = sources.get(source) or sources.setdefault(source, _text(source))
        trades = "\\N" if k.trades is None else k.trades
        lines.append(
            f"{k.symbol}\t{k.interval}\t{k.open_time}\t{k.close_time}\t{k.open}\t{k.high}\t{k.low}\t{k.close}\t{k.volume}"
            f"\t{_opt(k.quote_volume)}\t{trades}\t{_opt(k.taker_buy_base_volume)}\t{_opt(k.taker_buy_quote_volume)}"
            f"\t{'t' if k.is_closed else 'f'}\t{k.event_time}\t{src}\n"
        )
    return io.StringIO("".join(lines))


def _opt(value: str | None) -> str:
    return "\\N" if value is None else value


def _text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
