"""One exactly-once micro-batch: Kafka topic -> ``market.candles`` (used by ``dags/ingest_klines``).

1. read (and lock) the loader's next offsets in ``etl.kafka_offsets``;
2. read the topic from there to the end of each partition (bounded by rows and seconds);
3. parse every message; the invalid ones become dead letters, never dropped;
4. keep the newest state per candle (the one conflict rule, ``kline.beats``); COPY + guarded merge (in
   sub-batches, overlapping the reading); dead letters; conflicting closed versions; new offsets;
5. commit once, after checking that no other loader moved the offsets meanwhile.

A crash anywhere before the commit leaves the offsets where they were, so the next run reads the
same messages again; a crash after it leaves nothing to redo.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from confluent_kafka import Message
from sqlalchemy.engine import Engine

from klinepipe import KLINES_TOPIC
from klinepipe.candle_store import Conflict, copy_buffer, insert_conflicts, merge_copy
from klinepipe.dead_letters import DeadLetter, insert_dead_letters
from klinepipe.errors import KlineParseError, KlinepipeRetryableError
from klinepipe.kafka_batch import BatchRead, message_source, read_chunks, topic_id
from klinepipe.kafka_offsets import read_offsets, write_offsets
from klinepipe.kline import Kline, beats, in_conflict, parse_kline_event

log = logging.getLogger(__name__)

CONSUMER = "ingest_klines"


@dataclass(frozen=True)
class IngestResult:
    messages: int
    candles: int
    changed: int
    closed: int
    dead_letters: int
    next_offsets: dict[int, int]

    def as_dict(self) -> dict:
        return {**self.__dict__, "next_offsets": {str(p): o for p, o in self.next_offsets.items()}}


def ingest_batch(
    engine: Engine,
    kafka_config: dict,
    *,
    topic: str = KLINES_TOPIC,
    consumer: str = CONSUMER,
    max_messages: int = 500_000,
    max_seconds: float = 30.0,
    partitions: list[int] | None = None,
    merge_every: int = 25_000,
    checkpoint: Callable[[str], None] = lambda stage: None,
) -> IngestResult:
    """Run one bounded micro-batch and commit it with its offsets; return what it did.

    ``partitions`` limits the batch to some partitions (one mapped task each); ``checkpoint`` is called
    with ``"staged"`` (rows merged, not committed) and ``"committed"``: the seam crash drills use.

    Big batches are merged in sub-batches of ``merge_every`` changed candles: this thread builds each
    sub-batch's COPY buffer and hands it to a worker thread that only waits on PostgreSQL (no GIL), while
    this one reads and parses on. PostgreSQL's COPY and merge run on one core while Python parses on the
    other. Everything is still one transaction, committed with the offsets.
    """
    raw = engine.raw_connection()
    merging: Future | None = None
    try:
        with raw.cursor() as cur, ThreadPoolExecutor(1, thread_name_prefix="merge") as pool, _no_gc_pauses():
            incarnation = topic_id(kafka_config, topic)
            stored = read_offsets(cur, consumer, topic, partitions, lock=True, topic_id=incarnation)
            read = BatchRead(topic)
            latest: dict[tuple[str, str, int], tuple[Kline, Message]] = {}
            pending: dict[tuple[str, str, int], tuple[Kline, Message]] = {}
            dead: list[DeadLetter] = []
            conflicts: list[Conflict] = []
            changed = 0
            try:
                for chunk in read_chunks(kafka_config, topic, stored, read, max_messages=max_messages,
                                         max_seconds=max_seconds, partitions=partitions):
                    parse_into(chunk, topic, latest, dead, pending, conflicts)
                    if len(pending) >= merge_every:
                        buffer = _buffer(pending)
                        changed += merging.result() if merging else 0
                        merging, pending = pool.submit(merge_copy, cur, buffer), {}
                changed += merging.result() if merging else 0
                merging = None
                changed += merge_copy(cur, _buffer(pending)) if pending else 0
            finally:
                if merging is not None:  # an error while a merge runs: let it finish before the rollback
                    wait([merging])
            if read_offsets(cur, consumer, topic, partitions, lock=True, topic_id=incarnation, warn=False) != stored:
                raise KlinepipeRetryableError(f"offsets of {consumer}/{topic} moved during the batch: another loader ran")
            insert_dead_letters(cur, dead)
            insert_conflicts(cur, conflicts)
            write_offsets(cur, consumer, topic, read.next_offsets, incarnation)
            checkpoint("staged")
        raw.commit()
        checkpoint("committed")
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()
    result = IngestResult(
        messages=read.messages,
        candles=len(latest),
        changed=changed,
        closed=sum(1 for k, _ in latest.values() if k.is_closed),
        dead_letters=len(dead),
        next_offsets=read.next_offsets,
    )
    log.info("ingested %s", result)
    return result


def _buffer(rows: dict[tuple[str, str, int], tuple[Kline, Message]]):
    return copy_buffer((k, message_source(m)) for k, m in rows.values())


@contextlib.contextmanager
def _no_gc_pauses():
    """No cyclic-GC passes during a batch: it allocates hundreds of thousands of small acyclic objects,
    which would otherwise trigger a full young-generation scan every 700 allocations (~30 % of parse time)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_into(chunk: list[Message], topic: str, latest: dict, dead: list[DeadLetter], changed: dict | None = None,
               conflicts: list[Conflict] | None = None) -> None:
    """Parse messages; keep the newest state per candle in ``latest`` (and in ``changed`` when given,
    for the next sub-batch merge); the invalid go to ``dead``; two closed versions that differ to ``conflicts``."""
    for msg in chunk:
        value, key = msg.value(), msg.key()
        try:
            if value is None:
                raise KlineParseError("empty message value")
            kline = parse_kline_event(value)
            if key is not None and key != f"{kline.symbol}:{kline.interval}".encode():
                raise KlineParseError(f"key {key!r} does not match the event's series {kline.key!r}")
        except KlineParseError as exc:
            dead.append(DeadLetter(topic, msg.partition(), msg.offset(), key, value, str(exc)))
            continue
        pk = (kline.symbol, kline.interval, kline.open_time)
        seen = latest.get(pk)
        if seen is not None and not _wins(kline, msg, seen, conflicts, changed is not None and pk not in changed):
            continue
        entry = latest[pk] = (kline, msg)
        if changed is not None:
            changed[pk] = entry


def _wins(kline: Kline, msg: Message, seen: tuple[Kline, Message], conflicts: list[Conflict] | None, merged: bool) -> bool:
    """Whether ``kline`` replaces the state ``seen`` earlier in the batch (the rule of ``kline.beats``, ties by
    source as in the merge guard); a conflict is noted unless the merge will meet it (``seen`` was merged
    already and ``kline`` goes to the merge)."""
    held, held_msg = seen
    wins = beats(kline, held)
    if wins is None:  # the same candle state: the greater source, as the merge guard does
        wins = message_source(msg) > message_source(held_msg)
    if conflicts is not None and in_conflict(held, kline) and not (wins and merged):
        conflicts.append(Conflict(held, message_source(held_msg), kline, message_source(msg), wins))
    return wins
