"""The live sidecar in this process against the fake Binance (websocket + REST) and a real Kafka-API broker:
the fakes, the settings and sink pointed at them, ``run_sidecar`` to run it while a script scripts faults, and the
checks that every closed candle reached the topic exactly once (``test_streaming_live.py`` and the outage drills)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import msgspec

from streaming.config import KafkaSettings, StreamingSettings
from streaming.kafka_sink import KafkaSink, build_sink
from streaming.live_sidecar import LiveParts, run_live
from tests.fake_binance import FakeBinance
from tests.fake_binance.ws import FakeStreams

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def make_sink(bootstrap: str, topic: str, **kafka) -> KafkaSink:
    return build_sink(KafkaSettings(bootstrap_servers=bootstrap, topic=topic, dlq_topic=f"{topic}.dlq", **kafka))


def live_settings(ws: FakeStreams, rest: FakeBinance, **kw) -> StreamingSettings:
    base = dict(mode="live", symbols=SYMBOLS, intervals=("1s", "1m", "5m"), ws_url=ws.url, rest_url=rest.url,
                backoff_initial=0.05, backoff_max=0.2, silence_timeout=2.0, metrics_port=0)
    return StreamingSettings(**{**base, **kw})


def run_sidecar(settings: StreamingSettings, sink: KafkaSink, script: Callable[[LiveParts], Awaitable[None]]) -> LiveParts:
    """Run the live sidecar while ``script`` scripts the fakes; stop it, flush, return its parts."""
    async def main() -> LiveParts:
        stop, ready = asyncio.Event(), asyncio.get_running_loop().create_future()
        async with aiohttp.ClientSession() as session:
            task = asyncio.create_task(run_live(settings, sink, session, stop, ready=ready.set_result))
            parts = await ready
            try:
                await script(parts)
            finally:
                stop.set()
                await task
        return parts

    parts = asyncio.run(main())
    sink.close()
    return parts


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait (without asserting on time) until ``check()`` holds or ``timeout`` passes."""
    for _ in range(int(timeout / 0.05)):
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.05)


async def settle(parts: LiveParts, ws: FakeStreams, series: list[tuple[str, str]], timeout: float = 180.0) -> None:
    """Stop the fake clock (current candles are still pushed) and wait until the sidecar has every candle that closed.

    The wait is a budget, not a timed assertion: it ends as soon as the ledger is complete. After an
    outage the sidecar catches up through REST backfills and backpressure, which on a busy 2-core machine
    has taken more than 30 s; when the budget runs out the failure says which series are behind.
    """
    await asyncio.to_thread(ws.freeze)

    def behind() -> list[tuple[str, str]]:
        return [(s, i) for s, i in series if parts.ledger.last_closed(f"{s}:{i}".encode()) != (ws.closed(s, i) or [None])[-1]]

    await until(lambda: not behind(), timeout=timeout)
    lag = {f"{s}:{i}": (parts.ledger.last_closed(f"{s}:{i}".encode()), (ws.closed(s, i) or [None])[-1]) for s, i in behind()}
    assert not lag, f"the sidecar did not catch up within {timeout:.0f}s: (published, closed) {lag}; {parts.feed.stats}"
    if parts.backfiller:
        await parts.backfiller.idle()


def closed_by_series(messages) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Open times of the closing events per series, in topic order, and the first open time seen."""
    closed: dict[str, list[int]] = {}
    first: dict[str, int] = {}
    for key, value, _ in messages:
        k = msgspec.json.decode(value)["k"]
        first[key.decode()] = min(first.get(key.decode(), k["t"]), k["t"])
        if k["x"]:
            closed.setdefault(key.decode(), []).append(k["t"])
    return closed, first


def assert_exactly_once(messages, ws: FakeStreams, series: list[tuple[str, str]]) -> None:
    closed, first = closed_by_series(messages)
    for symbol, interval in series:
        key = f"{symbol}:{interval}"
        expected = [t for t in ws.closed(symbol, interval) if t >= first[key]]
        assert expected, key
        assert closed.get(key) == expected, key


def fakes(**ws_kw):
    rest = FakeBinance().start()
    for s in SYMBOLS:
        rest.add_symbol(s, s[:-4], "USDT")
    ws = FakeStreams(symbols=SYMBOLS, step_ms=5_000, tick=0.02, on_close=rest.seed_klines, **ws_kw).start()
    return rest, ws
