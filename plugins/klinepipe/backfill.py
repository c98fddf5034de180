"""Fill holes in ``market.candles`` from Binance REST klines (python-binance), or from local kline files.

- ``find_gaps``: missing closed candles between stored closed candles of a series (SQL ``lead()``).
- ``fetch_klines``: ``GET /api/v3/klines`` through a python-binance ``Client`` (injected), paged 1,000
  at a time, slowing down when the used weight nears the limit, and honouring ``Retry-After`` on 429/418.
- ``load_klines``: the guarded merge of the ingest path, with ``source = 'backfill'``.
The still-open bar that a range reaching "now" returns is never stored as closed.
"""

from __future__ import annotations

import logging
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from klinepipe.binance.finality import is_final_row
from klinepipe.binance.intervals import INTERVAL_MS, VARIABLE_LENGTH
from klinepipe.binance.times import datetime_to_ms, now_ms as wall_ms
from klinepipe.binance_files import read_klines_from_file
from klinepipe.candle_store import Conflict, copy_buffer, insert_conflicts, merge_copy
from klinepipe.errors import BinanceUnreachable, KlineParseError, KlinepipeFatalError, KlinepipeRetryableError
from klinepipe.kline import Kline, in_conflict, newest, row_to_kline
from klinepipe.partitions import ensure_partitions

log = logging.getLogger(__name__)

PAGE = 1000
WEIGHT_LIMIT = 6000  # REQUEST_WEIGHT per minute (exchangeInfo rateLimits); slow down at 80 %
MAX_RETRY_AFTER_S = 300.0

_GAPS = """
SELECT open_time, next_open FROM (
    SELECT open_time, lead(open_time) OVER (ORDER BY open_time) AS next_open FROM market.candles
    WHERE symbol = %(s)s AND interval = %(i)s AND is_closed AND open_time >= %(since)s AND open_time < %(until)s) c
WHERE next_open - open_time > %(step)s * interval '1 millisecond'
ORDER BY open_time
"""


@dataclass(frozen=True)
class Gap:
    symbol: str
    interval: str
    start_ms: int  # first missing open time
    end_ms: int  # last missing open time

    @property
    def missing(self) -> int:
        return (self.end_ms - self.start_ms) // INTERVAL_MS[self.interval] + 1


def find_gaps(engine: Engine, symbol: str, interval: str, since: datetime, until: datetime) -> list[Gap]:
    if interval in VARIABLE_LENGTH:
        return []
    step = INTERVAL_MS[interval]
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.execute(_GAPS, {"s": symbol, "i": interval, "since": since, "until": until, "step": step})
            rows = cur.fetchall()
        raw.rollback()
    finally:
        raw.close()
    return [Gap(symbol, interval, datetime_to_ms(a) + step, datetime_to_ms(b) - step) for a, b in rows]


def series(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql("SELECT DISTINCT symbol, interval FROM market.candles ORDER BY 1, 2")]


def fetch_klines(client, symbol: str, interval: str, start_ms: int, end_ms: int, *,
                 now_ms: Callable[[], int] = wall_ms,
                 sleep: Callable[[float], None] = time.sleep) -> Iterator[Kline]:
    """Closed candles with open time in [start_ms, end_ms], page by page (oldest first)."""
    cursor = start_ms
    while cursor <= end_ms:
        rows = _call(client, sleep, symbol=symbol, interval=interval, startTime=cursor, endTime=end_ms, limit=PAGE)
        if not rows:
            return
        if not isinstance(rows, list):
            raise KlineParseError(f"klines {symbol} {interval}: Binance answered {type(rows).__name__}, not a list of rows")
        fetched_at = now_ms()
        klines = []
        for n, row in enumerate(rows):
            try:
                klines.append(row_to_kline(row, symbol, interval, fetched_at))
            except KlineParseError as exc:  # the task fails naming the row; nothing of the range is guessed
                raise KlineParseError(f"klines {symbol} {interval} from {cursor}: row {n}: {exc}") from None
        yield from (k for k in klines if is_final_row(k.close_time, fetched_at))  # the bar being built is not stored
        cursor = klines[-1].open_time + INTERVAL_MS[interval]
        _pace(client, sleep)
        if len(rows) < PAGE:
            return


FIRST_CONTACT_ATTEMPTS = 3  # a host that never answered this client: a few quick tries, then fail with the cause
ATTEMPTS = 6  # a host that answered before (a blip mid-load, a 5xx): back off up to 16 s, then let Airflow retry


def _call(client, sleep: Callable[[float], None], **params) -> list:
    """``client.get_klines(**params)``; 429/418 wait out ``Retry-After``; other 4xx fail at once (``KlinepipeFatalError``);
    network errors and 5xx are retried — briefly while the host has never answered this client (then
    ``BinanceUnreachable``), longer once it has (then ``KlinepipeRetryableError``)."""
    from binance.exceptions import BinanceAPIException, BinanceRequestException  # the adapter's own errors

    started, cause = time.monotonic(), ""
    attempt = 0
    while True:
        attempts = ATTEMPTS if getattr(client, "response", None) is not None else FIRST_CONTACT_ATTEMPTS
        try:
            return client.get_klines(**params)
        except BinanceAPIException as exc:
            if exc.status_code in (429, 418):
                wait = float(exc.response.headers.get("Retry-After", 60)) if exc.response is not None else 60.0
                if wait > MAX_RETRY_AFTER_S:
                    raise KlinepipeRetryableError(f"Binance asks to wait {wait:.0f}s (HTTP {exc.status_code});"
                                                  " giving up this run") from None
                log.warning("HTTP %s from Binance: waiting %.0fs (Retry-After)", exc.status_code, wait)
                sleep(wait)
                continue
            if exc.status_code < 500:
                raise KlinepipeFatalError(f"klines {params['symbol']} {params['interval']}: HTTP {exc.status_code}"
                                          f" {exc.code} {exc.message}") from None
            cause, attempts = f"HTTP {exc.status_code} {exc.message}", ATTEMPTS
        except (BinanceRequestException, OSError) as exc:
            cause = network_cause(exc)
        attempt += 1
        if attempt >= attempts:
            break
        log.warning("klines %s %s from %s: %s; retry %d of %d", params["symbol"], params["interval"], rest_base(client),
                    cause, attempt, attempts - 1)
        sleep(min(30.0, 2.0 ** (attempt - 1)))
    took = f"{attempt} attempts in {time.monotonic() - started:.1f} s"
    if getattr(client, "response", None) is None:
        raise BinanceUnreachable(f"cannot reach {rest_base(client)}: {cause} ({took})")
    raise KlinepipeRetryableError(f"klines {params['symbol']} {params['interval']} from {rest_base(client)}: {cause} ({took})")


def rest_base(client) -> str:
    """The REST base URL a python-binance client talks to, e.g. ``https://api.binance.com``."""
    url = str(getattr(client, "API_URL", "") or "")
    return url[: -len("/api")] if url.endswith("/api") else url


def network_cause(exc: BaseException) -> str:
    """What went wrong underneath requests/urllib3, in words: "name resolution failed", "connection refused" ..."""
    import requests

    chain, seen, todo = [], set(), [exc]
    while todo:  # requests wraps urllib3's MaxRetryError, whose .reason is the socket-level error
        e = todo.pop(0)
        if e is None or id(e) in seen or not isinstance(e, BaseException):
            continue
        seen.add(id(e))
        chain.append(e)
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__, *[a for a in e.args if isinstance(a, BaseException)]]
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain)
    if "NameResolutionError" in names or any(isinstance(e, socket.gaierror) for e in chain) \
            or "Name or service not known" in text or "Temporary failure in name resolution" in text:
        return "name resolution failed"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return "connection refused"
    if any(isinstance(e, requests.exceptions.ConnectTimeout) for e in chain):
        return "connection timed out"
    if any(isinstance(e, requests.exceptions.ReadTimeout) for e in chain):
        return "no answer in time (read timeout)"
    if any(isinstance(e, requests.exceptions.SSLError) for e in chain):
        return "TLS handshake failed"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _pace(client, sleep: Callable[[float], None]) -> None:
    """Sleep to the next minute when this minute's used weight passed 80 % of the limit."""
    headers = getattr(getattr(client, "response", None), "headers", None) or {}
    used = int(headers.get("x-mbx-used-weight-1m", headers.get("X-MBX-USED-WEIGHT-1M", 0)) or 0)
    if used > 0.8 * WEIGHT_LIMIT:
        wait = 60 - time.time() % 60
        log.info("used weight %s of %s this minute: pausing %.0fs", used, WEIGHT_LIMIT, wait)
        sleep(wait)


def load_klines(engine: Engine, klines: Iterable[Kline], source: str = "backfill", chunk: int = 50_000) -> int:
    """Upsert candles (guarded merge, chunked; the newest state per candle within a chunk); return rows changed.

    Each chunk is committed on its own. This thread builds a chunk's COPY buffer while a worker thread, which
    only waits on PostgreSQL (psycopg2 releases the GIL), merges the previous one: Python on one core,
    PostgreSQL on the other. Chunks are committed in order; an error stops at the chunk that failed."""
    changed, batch, conflicts = 0, {}, []
    merging: Future | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="merge") as pool:
        try:
            for k in klines:
                key = (k.symbol, k.interval, k.open_time)
                seen = batch.get(key)
                if seen is not None and in_conflict(seen, k):
                    conflicts.append(Conflict(seen, source, k, source, newest(seen, k) is k))
                batch[key] = k if seen is None else newest(seen, k)
                if len(batch) >= chunk:
                    buffer = copy_buffer((v, source) for v in batch.values())
                    changed += merging.result() if merging else 0
                    merging, batch, conflicts = pool.submit(_merge, engine, buffer, conflicts), {}, []
            changed += merging.result() if merging else 0
            merging = None
        finally:
            if merging is not None:  # an error while a merge runs: let it finish (it commits on its own)
                wait([merging])
    return changed + (_merge(engine, copy_buffer((v, source) for v in batch.values()), conflicts) if batch else 0)


def _merge(engine: Engine, buffer, conflicts: list[Conflict]) -> int:
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            changed = merge_copy(cur, buffer)
            insert_conflicts(cur, conflicts)
        raw.commit()
        return changed
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


Progress = Callable[[str, int, int], None]  # (task, done, total): a CLI draws bars; the DAG passes nothing


def _no_progress(task: str, done: int, total: int) -> None:
    pass


def _counted(klines: Iterable[Kline], task: str, total: int, progress: Progress, every: int = PAGE) -> Iterator[Kline]:
    """Pass the candles through, reporting ``progress(task, seen, total)`` every ``every`` candles and at the end."""
    seen = 0
    for k in klines:
        yield k
        seen += 1
        if seen % every == 0:
            progress(task, seen, max(total, seen))
    progress(task, total if seen <= total else seen, max(total, seen))


def import_files(engine: Engine, paths: Iterable[Path], progress: Progress = _no_progress) -> dict[str, int]:
    """Load data.binance.vision kline zips/CSVs; return rows changed per file."""
    now = wall_ms()
    paths = list(paths)
    done = {}
    for i, p in enumerate(paths):
        done[str(p)] = load_klines(engine, read_klines_from_file(p, now), source="file")
        ensure_partitions(engine)  # the file's months: its rows move out of the default partition
        progress("files", i + 1, len(paths))
    return done


def fill_gaps(engine: Engine, client, since: datetime, until: datetime, progress: Progress = _no_progress,
              **fetch_kw) -> list[dict]:
    """Find and fill the gaps of every stored series between ``since`` and ``until``."""
    report = []
    for symbol, interval in series(engine):
        for gap in find_gaps(engine, symbol, interval, since, until):
            fetched = fetch_klines(client, symbol, interval, gap.start_ms, gap.end_ms, **fetch_kw)
            changed = load_klines(engine, _counted(fetched, f"{symbol} {interval} gap", gap.missing, progress))
            report.append({"symbol": symbol, "interval": interval, "from": gap.start_ms, "to": gap.end_ms,
                           "missing": gap.missing, "filled": changed})
            log.info("gap %s %s %s..%s: %d missing, %d filled", symbol, interval, gap.start_ms, gap.end_ms, gap.missing, changed)
    return report


def load_history(engine: Engine, client, symbols: list[str], interval: str, start: datetime, end: datetime,
                 progress: Progress = _no_progress, **fetch_kw) -> dict[str, int]:
    """Initial history load: every closed candle of ``symbols`` × ``interval`` in [start, end).

    ``progress(f"{symbol} {interval}", candles fetched, candles expected)`` after every page."""
    if interval not in INTERVAL_MS:
        raise KlinepipeFatalError(f"unknown interval {interval!r}")
    first, last = datetime_to_ms(start), datetime_to_ms(end) - 1
    expected = max(0, (last - first) // INTERVAL_MS[interval] + 1)
    ensure_partitions(engine, start, end)
    out = {}
    for s in symbols:
        fetched = fetch_klines(client, s.upper(), interval, first, last, **fetch_kw)
        out[s] = load_klines(engine, _counted(fetched, f"{s.upper()} {interval}", expected, progress))
    return out
