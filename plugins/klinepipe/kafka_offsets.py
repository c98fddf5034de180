"""``etl.kafka_offsets``: the loader's next offset per (consumer, topic, partition), stored with the rows it loaded.

Written in the same transaction as the candles, so a batch commits its rows and its offsets together
(exactly-once into PostgreSQL without trusting Kafka commits). Each offset carries the topic's id.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


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
