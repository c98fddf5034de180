"""User data stream: executionReport -> fill committed in ``trading.fills``, on the local fake Binance and an embedded
PostgreSQL, through the trader's own wiring (``trader.wiring.build_user_stream``: python-binance's ``AsyncClient`` on
the fake's WebSocket API, ``UserStream`` on its thread and connection). Goal (issue 16): within 1 s of the event.

``FILLS`` LIMIT BUYs (env ``BENCH_USER_STREAM_FILLS``, default 200) are placed over REST one at a time, each then filled
by one trade on the fake (``set_price``), which sends its ``executionReport``. Latency = the moment the stream's fill
line is emitted (after the commit) - the moment just before that trade, so it includes the fake producing the event.
The REST poll plays no part: nothing here polls.

Then ``PROTECTION_FILLS`` protection sets (env ``BENCH_USER_STREAM_PROTECTION_FILLS``, default 50): an OCO of a
``-PS`` STOP_LOSS SELL below and a ``-PT`` TAKE_PROFIT SELL above, placed over REST, then one trade through the stop:
the take-profit's ``EXPIRED`` event, the stop's ``TRADE`` (applied with the set's closing in one transaction) and the
``listStatus``. Latency = the stop's fill line emitted - the moment just before that trade.
"""

from __future__ import annotations

import os
import threading
import time
from decimal import Decimal

import numpy as np

FILLS = int(os.environ.get("BENCH_USER_STREAM_FILLS", "200"))
PROTECTION_FILLS = int(os.environ.get("BENCH_USER_STREAM_PROTECTION_FILLS", "50"))
GOAL_S = 1.0
MODE, SLEEVE = "testnet", "BTCUSDT:1m:sma_cross"


def _measure(database_url: str, fake) -> tuple[list[float], list[float]]:
    from tests.helpers import binance_client
    from trader import account_records, order_records, sleeve_records
    from trader.brokers.binance import BinanceBroker
    from trader.config import TraderSettings
    from trader.execution import Executor
    from trader.orders import OrderIntent
    from trader.transaction import Transaction
    from trader.wiring import build_user_stream, connector

    settings = TraderSettings(DATABASE_URL=database_url, mode=MODE, TRADER_BINANCE_REST_URL=fake.url,
                              BINANCE_API_KEY=fake.api_key, BINANCE_API_SECRET=fake.api_secret)
    connect = connector(settings)
    executor = Executor(lambda conn=connect(): Transaction(conn), BinanceBroker(binance_client(fake, signed=True), MODE),
                        sleep=lambda s: None)
    with executor._tx() as cur:
        sleeve_records.ensure_sleeve(cur, MODE, SLEEVE, "BTCUSDT", "1m", "sma_cross", Decimal("1000"))
        account_records.seed_balance(cur, MODE, "USDT", Decimal("1000000"))
    emitted: list[float] = []
    arrived = threading.Condition()

    def emit(line: str) -> None:
        with arrived:
            emitted.append(time.perf_counter())
            arrived.notify_all()

    def wait_for(condition, what: str) -> None:
        with arrived:
            if not arrived.wait_for(condition, timeout=60):
                raise RuntimeError(f"timed out waiting for {what}")

    runner = build_user_stream(settings, connect, emit)
    latencies = []
    with runner as stream:
        deadline = time.monotonic() + 60
        while stream.catch_ups < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the stream did not subscribe")
            time.sleep(0.01)
        for i in range(FILLS):
            intent = OrderIntent(sleeve=SLEEVE, symbol="BTCUSDT", side="BUY", quantity=Decimal("0.01"), open_time_ms=60_000 * (i + 1),
                                 type="LIMIT", price=Decimal("59000.00"), time_in_force="GTC", interval="1m", mode=MODE)
            with executor._tx() as cur:
                order_records.insert_order(cur, intent, MODE, Decimal("60000"))
            if executor.submit(intent).status != "NEW":
                raise RuntimeError(f"order {i} did not rest")
            started = time.perf_counter()
            fake.set_price("BTCUSDT", "58990.00")  # the trade: executionReport x=TRADE
            wait_for(lambda: len(emitted) > i, f"fill {i}")
            latencies.append(emitted[i] - started)
            fake.set_price("BTCUSDT", "60000.00")
        protection = []  # the entries above hold 2 BTC: each set sells 0.01 of it
        for i in range(PROTECTION_FILLS):
            legs = [OrderIntent(sleeve=SLEEVE, symbol="BTCUSDT", side="SELL", quantity=Decimal("0.01"), open_time_ms=60_000 * (i + 1),
                                type=type_, stop_price=Decimal(stop), intent=type_, interval="1m", mode=MODE,
                                stored_id=f"bench-{i:05d}{suffix}", list_id=f"bench-{i:05d}-PL")
                    for type_, stop, suffix in (("STOP_LOSS", "59000.00", "-PS"), ("TAKE_PROFIT", "61000.00", "-PT"))]
            with executor._tx() as cur:
                for leg in legs:
                    order_records.insert_order(cur, leg, MODE, Decimal("60000"))
            reports = executor.broker.place_protection(legs)
            with executor._tx() as cur:
                for leg, report in zip(legs, reports):
                    order_records.apply_report(cur, MODE, leg, report)
            seen = len(emitted)
            started = time.perf_counter()
            fake.set_price("BTCUSDT", "58990.00")  # through the stop: the take-profit expires, the stop trades
            wait_for(lambda: len(emitted) > seen, f"protection fill {i}")
            protection.append(emitted[seen] - started)
            fake.set_price("BTCUSDT", "60000.00")
        applied, protection_applied = stream.applied, stream.protection_applied
    if (applied, protection_applied) != (FILLS + PROTECTION_FILLS, PROTECTION_FILLS):
        raise RuntimeError(f"{applied} fills ({protection_applied} of protection legs) from the stream, "
                           f"{FILLS + PROTECTION_FILLS} ({PROTECTION_FILLS}) expected")
    with executor._tx() as cur:
        cur.execute("SELECT count(*) FROM trading.orders WHERE client_order_id LIKE 'bench-%%-PT' AND status = 'EXPIRED'")
        if cur.fetchone()[0] != PROTECTION_FILLS:
            raise RuntimeError("a take-profit leg was not closed with its stop's fill")
    return latencies, protection


def main() -> int:
    from bench.services import database
    from tests.fake_binance.server import FakeBinance

    with database() as url:
        fake = FakeBinance().start()
        try:
            fake.add_symbol("BTCUSDT", "BTC", "USDT")
            fake.set_price("BTCUSDT", "60000.00")
            fake.deposit("USDT", "1000000")
            entries, protection = (np.array(x) for x in _measure(url, fake))
        finally:
            fake.stop()
    met = True
    for what, lat in (("fills", entries), ("protection-leg fills (OCO stop, sibling expired)", protection)):
        p50, p95, worst = np.percentile(lat, 50), np.percentile(lat, 95), lat.max()
        print(f"user stream event -> ledger row, {len(lat)} {what} on the fake Binance + embedded PostgreSQL:")
        print(f"  p50 {p50 * 1000:.1f} ms  p95 {p95 * 1000:.1f} ms  max {worst * 1000:.1f} ms  mean {lat.mean() * 1000:.1f} ms")
        print(f"  goal {GOAL_S:.0f} s: p95 is {p95 / GOAL_S:.3f} of it, max {worst / GOAL_S:.3f} ({'met' if worst <= GOAL_S else 'NOT met'})")
        met = met and worst <= GOAL_S
    return 0 if met else 1
