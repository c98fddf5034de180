"""The live sidecar against the fake Binance (websocket + REST) and the real Kafka-API broker.

Each test runs the real ``run_live`` (connections, pipeline, ledger, REST backfill, idempotent
producer) in this process, scripts faults on the fake stream server, then reads the topic back and
compares the closed candles with the ones the fake market actually closed.
"""

from __future__ import annotations

import asyncio

import aiohttp
import msgspec
import pytest
from confluent_kafka import KafkaError

from streaming.config import StreamingSettings
from streaming.errors import DeliveryError, UnknownSymbolsError
from streaming.kafka_sink import KafkaSink
from streaming.live_sidecar import LiveParts, resolve_symbols, run_live
from streaming.rest import BinanceRest
from tests.fake_binance import FakeBinance
from tests.helpers import read_topic
from tests.live_sidecar import SYMBOLS, assert_exactly_once, fakes, live_settings, make_sink, run_sidecar, settle, until

pytestmark = pytest.mark.integration


def test_reconnect_storm_leaves_every_closed_candle_in_the_topic_exactly_once(kafka_bootstrap, topic):
    rest, ws = fakes()
    series = [(s, i) for s in SYMBOLS for i in ("1s", "1m", "5m")]

    async def storm(parts: LiveParts) -> None:
        await until(lambda: ws.clients() == 1)
        for _ in range(20):
            await asyncio.sleep(0.3)
            await asyncio.to_thread(ws.drop, 0.15)  # down for 0.15 s: candles close meanwhile
            await until(lambda: ws.clients() == 1)
        await asyncio.sleep(0.5)
        await settle(parts, ws, series)

    try:
        sink = make_sink(kafka_bootstrap, topic)
        run_sidecar(live_settings(ws, rest), sink, storm)
        messages = read_topic(kafka_bootstrap, topic)
        assert_exactly_once(messages, ws, series)
    finally:
        ws.stop()
        rest.stop()
    assert sink.stats.reconnects == 20 and ws.connections_total == 21  # 503 answers are not connections
    assert sink.stats.backfilled > 0  # the drops did lose closing events, and REST filled them in
    sources = {h["source"] for _, _, h in messages}
    assert sources == {"binance", "gap_fill"}
    backfilled = [msgspec.json.decode(v)["k"] for _, v, h in messages if h["source"] == "gap_fill"]
    rest_rows = {(b["s"], b["i"], b["t"]): b for b in backfilled}
    for (symbol, interval, t), k in list(rest_rows.items())[:50]:
        row = next(r for r in rest.state.market.klines(symbol, interval, t, t, 1))
        assert (k["o"], k["h"], k["l"], k["c"], k["v"], k["T"]) == (row[1], row[2], row[3], row[4], row[5], row[6])


def test_rotation_before_the_24h_cut_overlaps_with_no_gap_and_no_duplicate(kafka_bootstrap, topic):
    rest, ws = fakes(max_lifetime=1.5)  # the fake cuts every connection after 1.5 s, like Binance at 24 h
    series = [(s, i) for s in SYMBOLS for i in ("1s", "1m", "5m")]

    async def rotate(parts: LiveParts) -> None:
        await until(lambda: parts.feed.stats.rotations.get("age", 0) >= 6)
        await settle(parts, ws, series)

    try:
        sink = make_sink(kafka_bootstrap, topic)
        run_sidecar(live_settings(ws, rest, rotate_after=0.6), sink, rotate)
        assert_exactly_once(read_topic(kafka_bootstrap, topic), ws, series)
    finally:
        ws.stop()
        rest.stop()
    assert sink.stats.rotations["age"] >= 6 and sink.stats.reconnects == 0
    assert sink.stats.backfilled == 0  # the overlap alone covered every candle
    assert sink.stats.duplicates > 0  # both connections delivered some closing frames; one copy was kept


def test_server_shutdown_garbage_and_error_frames(kafka_bootstrap, topic):
    rest, ws = fakes()
    series = [(s, i) for s in SYMBOLS for i in ("1s", "1m")]
    garbage = [b"not json", b'{"e":"kline","E":1,"s":"BTCUSDT"}', b'{"e":"trade","E":1,"s":"BTCUSDT","t":1}',
               b'{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":"x"}}}']

    async def script(parts: LiveParts) -> None:
        await until(lambda: ws.clients() == 1)
        for frame in garbage:
            await asyncio.to_thread(ws.garbage, frame)
        await asyncio.to_thread(ws.garbage, b'{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":99}')
        await asyncio.sleep(0.3)
        await asyncio.to_thread(ws.shutdown, 0.5)
        await asyncio.sleep(1.0)
        await settle(parts, ws, series)

    try:
        sink = make_sink(kafka_bootstrap, topic)
        run_sidecar(live_settings(ws, rest, intervals=("1s", "1m")), sink, script)
        assert_exactly_once(read_topic(kafka_bootstrap, topic), ws, series)
        dead = read_topic(kafka_bootstrap, f"{topic}.dlq")
    finally:
        ws.stop()
        rest.stop()
    assert [v for _, v, _ in dead] == garbage
    assert all(h["error"] and h["source"] == "binance" for _, _, h in dead)
    assert "not a kline event" in dead[2][2]["error"]
    assert sink.stats.rotations == {"serverShutdown": 1} and sink.stats.reconnects == 0
    assert sink.stats.control_errors == 1


@pytest.mark.parametrize("form", ["combined", "raw", "subscribe"])
def test_all_16_intervals_in_every_url_form_split_across_connections(kafka_bootstrap, topic, form):
    intervals = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
    rest, ws = fakes()

    async def script(parts: LiveParts) -> None:
        await until(lambda: ws.clients() == 4 and parts.feed.stats.frames > 200)
        conns = await asyncio.to_thread(ws.subscriptions)
        assert sorted(len(c) for c in conns) == [1, 5, 5, 5]

    try:
        sink = make_sink(kafka_bootstrap, topic)
        run_sidecar(live_settings(ws, rest, symbols=("BTCUSDT",), intervals=intervals, url_form=form,
                                  streams_per_connection=5), sink, script)
        keys = {k for k, _, _ in read_topic(kafka_bootstrap, topic)}
    finally:
        ws.stop()
        rest.stop()
    assert keys == {f"BTCUSDT:{i}".encode() for i in intervals}
    assert sink.dead_lettered == 0


def test_live_subscribe_and_unsubscribe(kafka_bootstrap, topic):
    rest, ws = fakes()

    async def script(parts: LiveParts) -> None:
        await until(lambda: parts.feed.stats.frames > 20)
        await parts.feed.subscribe(["ethusdt@kline_1m"])
        await parts.feed.unsubscribe(["btcusdt@kline_1m"])
        assert await asyncio.to_thread(ws.subscriptions) == [["ethusdt@kline_1m"]]
        before = parts.feed.stats.frames
        await until(lambda: parts.feed.stats.frames > before + 20)

    try:
        sink = make_sink(kafka_bootstrap, topic)
        run_sidecar(live_settings(ws, rest, intervals=("1m",), symbols=("BTCUSDT",), url_form="subscribe"), sink, script)
        keys = [k for k, _, _ in read_topic(kafka_bootstrap, topic)]
    finally:
        ws.stop()
        rest.stop()
    assert set(keys) == {b"BTCUSDT:1m", b"ETHUSDT:1m"}


def test_symbols_are_checked_against_exchange_info_and_a_universe_can_be_selected():
    with FakeBinance() as rest:
        for symbol, base, quote in (("BTCUSDT", "BTC", "USDT"), ("ETHUSDT", "ETH", "USDT"), ("ETHBTC", "ETH", "BTC")):
            rest.add_symbol(symbol, base, quote)

        async def go(**kw):
            async with aiohttp.ClientSession() as session:
                return await resolve_symbols(BinanceRest(session, rest.url),
                                             StreamingSettings(rest_url=rest.url, metrics_port=0, **kw))

        assert asyncio.run(go(symbols="BTCUSDT,ETHBTC")) == ("BTCUSDT", "ETHBTC")
        assert asyncio.run(go(universe="USDT")) == ("BTCUSDT", "ETHUSDT")
        with pytest.raises(UnknownSymbolsError, match="FOOUSDT, BARUSDT"):
            asyncio.run(go(symbols="BTCUSDT,FOOUSDT,BARUSDT"))


def test_pings_are_answered_and_a_silent_connection_is_replaced_then_backfilled(kafka_bootstrap, topic):
    rest, ws = fakes(ping_interval=0.1, ping_timeout=0.5)  # the fake drops a client that misses pongs for 0.5 s
    series = [("BTCUSDT", "1s"), ("BTCUSDT", "1m")]

    async def script(parts: LiveParts) -> None:
        await asyncio.sleep(2.0)  # ~20 pings answered
        pinged_through = parts.feed.stats.reconnects == 0
        await asyncio.to_thread(ws.silence, 3.0)  # open, pinging, but no data: the watchdog (1 s) must act
        await until(lambda: parts.feed.stats.reconnects >= 1)
        await asyncio.sleep(3.0)
        await settle(parts, ws, series)
        assert pinged_through

    try:
        sink = make_sink(kafka_bootstrap, topic)
        run_sidecar(live_settings(ws, rest, symbols=("BTCUSDT",), intervals=("1s", "1m"), silence_timeout=1.0), sink, script)
        assert_exactly_once(read_topic(kafka_bootstrap, topic), ws, series)
    finally:
        ws.stop()
        rest.stop()
    assert sink.stats.reconnects >= 1 and sink.stats.backfilled > 0


def test_a_sink_that_failed_for_good_stops_the_sidecar_even_while_the_feed_is_quiet():
    """A delivery refused for good (here an ACL), reported while no frame arrives (so only the sink's poller
    sees it), stops the sidecar with the error instead of leaving it streaming into a producer that never delivers."""
    class Refusing:
        def __init__(self) -> None:
            self.reports: list = []
            self.armed = False

        def produce(self, topic, value=None, key=None, headers=None, timestamp=0, on_delivery=None):
            self.reports.append(on_delivery)

        def poll(self, _timeout=0):
            if not self.armed:
                return 0
            reports, self.reports = self.reports, []
            for report in reports:
                report(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), None)
            return len(reports)

        def __len__(self):
            return len(self.reports)

    rest, ws = fakes()
    producer = Refusing()
    sink = KafkaSink(producer, "k", "k.dlq")

    async def main() -> None:
        async with aiohttp.ClientSession() as session:
            live = asyncio.create_task(run_live(live_settings(ws, rest), sink, session, asyncio.Event()))
            await until(lambda: sink.published > 20)
            await asyncio.to_thread(ws.silence, 600.0)
            await asyncio.sleep(0.3)  # frames already sent are read; then nothing comes
            producer.armed = True
            await asyncio.wait_for(live, 60)  # a budget against a hang, not a timing assertion

    try:
        with pytest.raises(DeliveryError, match="TOPIC_AUTHORIZATION_FAILED"):
            asyncio.run(main())
    finally:
        ws.stop()
        rest.stop()
