"""``make status`` / ``python -m devstack status``: each part of the running stack, and the data's newest rows.

Found through the connection file ``make run`` writes (``klinepipe/connection_file.py``), or through
``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS`` when they are set (a stack run some other way, e.g. compose).
Per process: running or not, since when, restarts. Then PostgreSQL and Kafka (answering or not), the
newest candle of each series, the newest feature and the newest order, and the loader's consumer lag.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

import psutil

from klinepipe import connection_file
from klinepipe.airflow_conn import klines_topic
from klinepipe.ingest import CONSUMER

PROCESSES = ("tansu", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
             "streaming", "trader")  # as make run's supervisor names them


@dataclass
class Line:
    part: str
    state: str  # running | stopped | answering | not answering | ...
    detail: str = ""


def _iso(at: datetime | None) -> str:
    if at is None:
        return "-"
    return at.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _age(at: datetime | None, now: datetime) -> str:
    if at is None:
        return ""
    seconds = (now - at).total_seconds()
    if seconds < 0:
        return f"{-seconds:.0f} s ahead"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def processes(found: dict[str, str] | None) -> list[Line]:
    """The stack's own processes, by the pids the connection file holds."""
    if found is None:
        return [Line(name, "unknown", "no make-run stack found (no connection file)") for name in PROCESSES]
    lines = [Line("make run", *_process(found.get("KLINEPIPE_STACK_PID"), 0))]
    for name in PROCESSES:
        key = connection_file.part_key(name)
        state, detail = _process(found.get(f"KLINEPIPE_PID_{key}"), int(found.get(f"KLINEPIPE_RESTARTS_{key}", "0")))
        lines.append(Line(name, state, detail))
    return lines


def _process(pid: str | None, restarts: int) -> tuple[str, str]:
    if not pid:
        return "not started", ""
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise psutil.NoSuchProcess(int(pid))
        since = datetime.fromtimestamp(proc.create_time(), timezone.utc)
    except (psutil.NoSuchProcess, ValueError):
        return "stopped", f"pid {pid}, restarts {restarts}"
    return "running", f"pid {pid}, since {_iso(since)}, restarts {restarts}"


def database(url: str, now: datetime) -> tuple[list[Line], dict[int, int]]:
    """PostgreSQL's lines, and the loader's stored next offset per partition (for the consumer lag)."""
    import sqlalchemy as sa

    from klinepipe.db import make_engine

    try:
        engine = make_engine(url)
        with engine.connect() as c:
            started = c.exec_driver_sql("SELECT pg_postmaster_start_time()").scalar()
            series = c.exec_driver_sql(
                "SELECT symbol, interval, max(open_time), count(*) FROM market.candles GROUP BY symbol, interval"
                " ORDER BY symbol, interval").fetchall()
            feature = c.exec_driver_sql("SELECT symbol, interval, open_time FROM market.features"
                                        " ORDER BY open_time DESC LIMIT 1").fetchone()
            order = c.exec_driver_sql("SELECT mode, symbol, side, quantity, status, created_at FROM trading.orders"
                                      " ORDER BY created_at DESC LIMIT 1").fetchone()
            offsets = dict(c.execute(sa.text("SELECT partition, next_offset FROM etl.kafka_offsets"
                                             " WHERE consumer = :c AND topic = :t"),
                                     {"c": CONSUMER, "t": klines_topic()}).fetchall())
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 (status says what is wrong instead of failing)
        return [Line("postgres", "not answering", _short(exc))], {}
    out = [Line("postgres", "answering", f"since {_iso(started)}")]
    if not series:
        out.append(Line("newest candle", "none", "market.candles is empty"))
    for symbol, interval, newest, count in series:
        out.append(Line("newest candle", f"{symbol} {interval}", f"opened {_iso(newest)} ({_age(newest, now)}), {count} candles"))
    out.append(Line("newest feature", "none" if feature is None else f"{feature[0]} {feature[1]}",
                    "" if feature is None else f"opened {_iso(feature[2])} ({_age(feature[2], now)})"))
    out.append(Line("newest order", "none" if order is None else f"{order[0]} {order[1]} {order[2]}",
                    "" if order is None else f"{order[3].normalize()} {order[4]} at {_iso(order[5])} ({_age(order[5], now)})"))
    return out, offsets


def kafka(bootstrap: str, offsets: dict[int, int], cap: int = 1_000_000) -> list[Line]:
    """Kafka's lines. The lag is counted by reading from the loader's stored offsets to the end of each partition:
    the embedded tansu broker's ListOffsets(latest) answers the last record batch's base offset + 1, not the end."""
    from klinepipe.errors import BrokerUnavailableError
    from klinepipe.kafka_batch import BatchRead, list_partitions, read_chunks

    topic, config = klines_topic(), {"bootstrap.servers": bootstrap, "group.id": "klinepipe-status",
                                     "socket.timeout.ms": 5000}
    try:
        parts = list_partitions(config, topic, timeout=5)
        read = BatchRead(topic)
        for _ in read_chunks(config, topic, offsets, read, max_messages=cap, max_seconds=15, timeout=5):
            pass
    except BrokerUnavailableError as exc:
        return [Line("kafka", "not answering", f"{bootstrap}: {_short(exc)}")]
    if not parts:
        return [Line("kafka", "answering", f"{bootstrap}; topic {topic} not created yet")]
    lag = f"{'at least ' if read.messages >= cap else ''}{read.messages} messages"
    return [Line("kafka", "answering", f"{bootstrap}; topic {topic}, {len(parts)} partitions"),
            Line("consumer lag", lag, f"{CONSUMER}: in the topic, not yet loaded into PostgreSQL")]


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def gather(now: datetime | None = None) -> tuple[list[Line], str]:
    """Every line of the status, and where the settings came from."""
    now = now or datetime.now(timezone.utc)
    found = connection_file.read()
    running = found is not None and connection_file.is_running(found)
    where = str(connection_file.path()) if running else "the environment"
    if found is not None and not running:
        where += f" ({connection_file.path()} is stale: pid {found.get('KLINEPIPE_STACK_PID')} is gone)"
    settings = found if running else {}
    url = os.environ.get("DATABASE_URL") or settings.get("DATABASE_URL")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or settings.get("KAFKA_BOOTSTRAP_SERVERS")
    lines = processes(found)
    offsets: dict[int, int] = {}
    if url:
        db_lines, offsets = database(url, now)
        lines += db_lines
    else:
        lines.append(Line("postgres", "unknown", "DATABASE_URL is not set and no make-run stack is running"))
    if bootstrap:
        lines += kafka(bootstrap, offsets)
    else:
        lines.append(Line("kafka", "unknown", "KAFKA_BOOTSTRAP_SERVERS is not set and no make-run stack is running"))
    return lines, where


def render(lines: list[Line], where: str) -> str:
    width = max(len(line.part) for line in lines)
    state_width = max(len(line.state) for line in lines)
    out = [f"klinepipe status (settings from {where})"]
    out += [f"  {line.part:<{width}}  {line.state:<{state_width}}  {line.detail}".rstrip() for line in lines]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    lines, where = gather()
    print(render(lines, where))
    running = {line.part: line.state for line in lines}
    return 0 if running.get("postgres") == "answering" else 1


if __name__ == "__main__":
    sys.exit(main())
