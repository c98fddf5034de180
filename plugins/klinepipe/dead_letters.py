"""``etl.dead_letters``: messages the loader rejected, with the reason, written in the batch's transaction."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes | None
    error: str


def insert_dead_letters(cur, dead: list[DeadLetter]) -> None:
    if not dead:
        return
    cur.executemany(
        'INSERT INTO etl.dead_letters (topic, partition, "offset", key, raw, error) VALUES (%s, %s, %s, %s, %s, %s)',
        [(d.topic, d.partition, d.offset, d.key, d.raw, _storable(d.error)) for d in dead],
    )


def _storable(text: str) -> str:
    """Text PostgreSQL takes whatever a reason quotes: no NUL, no lone surrogate (a reject must never fail the batch)."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "backslashreplace").decode("utf-8")
