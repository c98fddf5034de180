"""Bulk, guarded upsert of candles and the loader's offsets, in one PostgreSQL transaction.

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
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from klinepipe.db import COPY_CHUNK
from klinepipe.kline import CONTENT_FIELDS, Kline, content_json

log = logging.getLogger(__name__)

_STAGING_DDL = """
CREATE TEMP TABLE IF NOT EXISTS candles_staging (
    symbol text, interval text, open_time bigint, close_time bigint,
    open numeric, high numeric, low numeric, close numeric, volume numeric,
    quote_volume numeric, trades bigint, taker_buy_base_volume numeric, taker_buy_quote_volume numeric,
    is_closed boolean, event_time bigint, source text
) ON COMMIT DROP
"""

def _content(x: str) -> str:
    """The content of a candle row ``x`` as ``kline.content_order`` compares it: (value, scale) per money field."""
    parts = []
    for name in CONTENT_FIELDS:
        if name == "close_time":
            parts.append(f"{x}.close_time")
        elif name == "trades":
            parts.append(f"coalesce({x}.trades, -1)")
        else:
            parts.append(f"coalesce({x}.{name}, -1), coalesce(scale({x}.{name}), -1)")
    return ", ".join(parts)


def _beats(b: str, a: str) -> str:
    """SQL of ``kline.beats(b, a)``, ties broken by the greater source (code-point order: COLLATE "C")."""
    return (f"(({b}.is_closed AND NOT {a}.is_closed) OR ({b}.is_closed = {a}.is_closed AND ({b}.event_time > {a}.event_time"
            f' OR ({b}.event_time = {a}.event_time AND ({_content(b)}, {b}.source COLLATE "C")'
            f' > ({_content(a)}, {a}.source COLLATE "C")))))')


def _version(x: str) -> str:
    """A candle row as ``kline.content_json`` records it."""
    ms = "(extract(epoch FROM {}) * 1000)::bigint"
    fields = ", ".join(f"'{n}', {ms.format(x + '.' + n) if n == 'close_time' else x + '.' + n + ('' if n == 'trades' else '::text')}"
                       for n in CONTENT_FIELDS)
    return f"jsonb_build_object({fields}, 'event_time', {ms.format(x + '.event_time')}, 'source', {x}.source)"


# The guarded merge (the conflict rule of ``kline.beats``). In the same statement, so in the same snapshot and
# transaction: two closed versions that differ are recorded in etl.candle_conflicts with the winner; the closed
# candles it changed are queued per series for compute_features (etl.features_pending); it returns how many
# candles it changed.
_MERGE = f"""
WITH incoming AS (
SELECT symbol, interval,
       timestamptz 'epoch' + open_time * interval '1 millisecond' AS open_time,
       timestamptz 'epoch' + close_time * interval '1 millisecond' AS close_time,
       open, high, low, close, volume, quote_volume, trades,
       taker_buy_base_volume, taker_buy_quote_volume, is_closed,
       timestamptz 'epoch' + event_time * interval '1 millisecond' AS event_time,
       source
FROM candles_staging
), conflicts AS (
INSERT INTO etl.candle_conflicts (symbol, interval, open_time, earlier, later, earlier_event_time, later_event_time, won)
SELECT i.symbol, i.interval, i.open_time, {_version("c")}, {_version("i")}, c.event_time, i.event_time,
       CASE WHEN {_beats("i", "c")} THEN 'later' ELSE 'earlier' END
FROM incoming i JOIN market.candles c ON c.symbol = i.symbol AND c.interval = i.interval AND c.open_time = i.open_time
WHERE i.is_closed AND c.is_closed AND ({_content("i")}) IS DISTINCT FROM ({_content("c")})
), merged AS (
INSERT INTO market.candles AS c (
    symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume, trades,
    taker_buy_base_volume, taker_buy_quote_volume, is_closed, event_time, source, ingested_at)
SELECT symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume, trades,
       taker_buy_base_volume, taker_buy_quote_volume, is_closed, event_time, source, now()
FROM incoming
ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
    close_time = EXCLUDED.close_time, open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
    close = EXCLUDED.close, volume = EXCLUDED.volume, quote_volume = EXCLUDED.quote_volume,
    trades = EXCLUDED.trades, taker_buy_base_volume = EXCLUDED.taker_buy_base_volume,
    taker_buy_quote_volume = EXCLUDED.taker_buy_quote_volume, is_closed = EXCLUDED.is_closed,
    event_time = EXCLUDED.event_time, source = EXCLUDED.source, ingested_at = EXCLUDED.ingested_at
WHERE {_beats("EXCLUDED", "c")}
RETURNING symbol, interval, open_time, is_closed
), queued AS (
INSERT INTO etl.features_pending (symbol, interval, first_open_time, last_open_time)
SELECT symbol, interval, min(open_time), max(open_time) FROM merged WHERE is_closed GROUP BY symbol, interval
)
SELECT count(*) FROM merged
"""


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two closed versions of one candle that differ, met in one batch (``earlier`` arrived first)."""

    earlier: Kline
    earlier_source: str
    later: Kline
    later_source: str
    later_won: bool


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes | None
    error: str


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
    cur.execute(_MERGE)
    changed = cur.fetchone()[0]
    cur.execute("TRUNCATE candles_staging")
    return changed


def insert_dead_letters(cur, dead: list[DeadLetter]) -> None:
    if not dead:
        return
    cur.executemany(
        'INSERT INTO etl.dead_letters (topic, partition, "offset", key, raw, error) VALUES (%s, %s, %s, %s, %s, %s)',
        [(d.topic, d.partition, d.offset, d.key, d.raw, d.error) for d in dead],
    )


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


def read_offsets(cur, consumer: str, topic: str, partitions: list[int] | None = None, *, lock: bool = False,
                 topic_id: str | None = None, warn: bool = True) -> dict[int, int]:
    """The loader's next offset per partition (only ``partitions`` when given).

    With the topic's current ``topic_id``, an offset stored for another incarnation of the topic is left out:
    its log is gone (the topic was deleted and created again), so that partition is read from its start
    (logged unless ``warn`` is false: a second read in the same batch)."""
    cur.execute(
        "SELECT partition, next_offset, topic_id FROM etl.kafka_offsets WHERE consumer = %s AND topic = %s"
        " AND (%s::int[] IS NULL OR partition = ANY(%s::int[])) ORDER BY partition" + (" FOR UPDATE" if lock else ""),
        (consumer, topic, partitions, partitions),
    )
    offsets = {}
    for partition, offset, stored_id in cur.fetchall():
        if topic_id and stored_id and stored_id != topic_id:
            if warn:
                log.warning("%s partition %s: offset %s was stored for an earlier incarnation of the topic (id %s, now %s):"
                            " reading the new one from its start", topic, partition, offset, stored_id, topic_id)
            continue
        offsets[partition] = offset
    return offsets


def write_offsets(cur, consumer: str, topic: str, offsets: dict[int, int], topic_id: str | None = None) -> None:
    cur.executemany(
        "INSERT INTO etl.kafka_offsets (consumer, topic, partition, next_offset, topic_id) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (consumer, topic, partition) DO UPDATE"
        " SET next_offset = EXCLUDED.next_offset, topic_id = EXCLUDED.topic_id, updated_at = now()",
        [(consumer, topic, p, o, topic_id) for p, o in sorted(offsets.items())],
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
