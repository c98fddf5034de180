"""Rebuild ``market.candles`` from the Kafka topic, from offset 0, into a fresh database; and the table's checksum.

``python -m klinepipe.rebuild from-topic`` (composition root): ``DATABASE_URL`` names the fresh database (it is
migrated, and must hold no candles), ``KAFKA_BOOTSTRAP_SERVERS`` / ``KAFKA_TOPIC`` the log. The loader's own
exactly-once batches run until the topic is drained; the candles are then what the loader made of the log the
first time (the merge keeps the newest state of each candle whatever the batching). It refuses a topic whose
log no longer starts at offset 0 (retention deleted its head): that rebuild would silently lack the oldest candles.
``python -m klinepipe.rebuild checksum`` prints the checksum of ``DATABASE_URL``'s candles, to compare.
"""

from __future__ import annotations

import argparse
import sys

import sqlalchemy as sa
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy.engine import Engine

from klinepipe.db import apply_migrations, make_engine
from klinepipe.errors import KlinepipeConfigError, KlinepipeError
from klinepipe.ingest import CONSUMER, ingest_batch
from klinepipe.kafka_batch import list_partitions

# Every column but ingested_at (when this database wrote the row), every row in key order.
CHECKSUM_SQL = """
SELECT count(*), md5(coalesce(string_agg(concat_ws('|', symbol, interval, open_time, close_time, open, high, low,
       close, volume, quote_volume, trades, taker_buy_base_volume, taker_buy_quote_volume, is_closed, event_time,
       source), E'\\n' ORDER BY symbol, interval, open_time), ''))
FROM market.candles
"""


def candles_checksum(engine: Engine) -> tuple[int, str]:
    """(rows, md5 over every row of market.candles but its ingested_at, in key order)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TIME ZONE 'UTC'")
        rows, digest = conn.exec_driver_sql(CHECKSUM_SQL).one()
    return rows, digest


def log_starts(kafka_config: dict, topic: str) -> dict[int, int]:
    """The first offset the broker still holds, per partition of ``topic``."""
    c = Consumer({**kafka_config, "group.id": "klinepipe-rebuild", "enable.auto.commit": False})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0]
                for p in list_partitions(kafka_config, topic)}
    finally:
        c.close()


def rebuild_from_topic(engine: Engine, kafka_config: dict, topic: str, max_messages: int = 500_000) -> int:
    """Load every message of ``topic`` from offset 0 into the empty ``market.candles`` of ``engine``; the batches run."""
    trimmed = {p: o for p, o in log_starts(kafka_config, topic).items() if o > 0}
    if trimmed:
        raise KlinepipeError(f"topic {topic!r} no longer starts at offset 0 (partition: first offset {trimmed}): "
                             "retention removed its oldest messages, the log cannot rebuild the table")
    with engine.connect() as conn:
        if conn.exec_driver_sql("SELECT EXISTS (SELECT FROM market.candles)").scalar() or conn.execute(
                sa.text("SELECT EXISTS (SELECT FROM etl.kafka_offsets WHERE consumer = :c)"), {"c": CONSUMER}).scalar():
            raise KlinepipeConfigError("DATABASE_URL: the database to rebuild into must be fresh "
                                       "(it holds candles or loader offsets already)")
    batches = 0
    while True:
        result = ingest_batch(engine, kafka_config, topic=topic, max_messages=max_messages)
        batches += 1
        if result.messages == 0:
            return batches


def main(argv: list[str] | None = None) -> int:
    from klinepipe.airflow_conn import kafka_config
    from klinepipe.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m klinepipe.rebuild", description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["from-topic", "checksum"])
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if not settings.database_url:
            raise KlinepipeConfigError("DATABASE_URL is not set")
        engine = make_engine(settings.database_url)
        try:
            if args.what == "from-topic":
                apply_migrations(engine)
                batches = rebuild_from_topic(engine, kafka_config(settings), settings.kafka_topic)
                print(f"klinepipe.rebuild: {settings.kafka_topic} loaded from offset 0 in {batches} batch(es)")
            rows, digest = candles_checksum(engine)
        finally:
            engine.dispose()
    except KlinepipeError as exc:
        print(f"klinepipe.rebuild: {exc}", file=sys.stderr)
        return 2
    print(f"market.candles: {rows} rows, checksum {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
