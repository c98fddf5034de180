"""Paper fills: at the next open with fee and slippage, waiting for an unknown candle, limit and stop-loss orders."""

from decimal import Decimal

import pytest

from trader.brokers.paper import Candle, PaperBroker
from trader.orders import OrderIntent


def test_paper_fill_is_at_the_next_open_with_fee_and_slippage():
    asked = []

    def candles_after(symbol, interval, after_ms, limit, sleeve):
        asked.append((symbol, interval, after_ms, limit, sleeve))
        return [Candle(after_ms + 60_000, Decimal("61526.21"), Decimal("61600"), Decimal("61500"))]

    broker = PaperBroker(candles_after, fee_bps=Decimal("10"), slippage_bps=Decimal("5"))
    intent = OrderIntent(sleeve="s", symbol="BTCUSDT", side="BUY", quantity=Decimal("0.01625"), open_time_ms=1_000,
                         interval="1m", mode="paper")

    report = broker.submit(intent)

    (fill,) = report.fills
    assert report.status == "FILLED" and asked == [("BTCUSDT", "1m", 1_000, 1, "s")]
    assert fill.price == Decimal("61526.21") * Decimal("1.0005") and fill.filled_at_ms == 61_000
    assert fill.fee == Decimal("0.01625") * fill.price * Decimal("0.001")
    assert fill.fee_asset == "USDT"


def test_paper_order_waits_while_the_next_candle_is_unknown():
    broker = PaperBroker(lambda *a: [])

    report = broker.submit(OrderIntent(sleeve="s", symbol="BTCUSDT", side="SELL", quantity=Decimal("1"), open_time_ms=1_000,
                                       interval="1m", mode="paper"))

    assert (report.status, report.fills) == ("NEW", ())


@pytest.mark.parametrize(("tif", "low", "status", "price"), [("GTC", "59000", "FILLED", "59500"), ("IOC", "59600", "EXPIRED", None),
                                                             ("GTC", "59600", "NEW", None)])
def test_paper_limit_orders(tif, low, status, price):
    broker = PaperBroker(lambda *a: [Candle(2, Decimal("60000"), Decimal("60100"), Decimal(low))])
    intent = OrderIntent(sleeve="s", symbol="BTCUSDT", side="BUY", quantity=Decimal("0.1"), open_time_ms=1, type="LIMIT",
                         price=Decimal("59500"), time_in_force=tif, interval="1m", mode="paper")

    report = broker.submit(intent)

    assert report.status == status
    assert [f.price for f in report.fills] == ([Decimal(price)] if price else [])


@pytest.mark.parametrize(("open_", "low", "status", "price"), [("60000", "57500", "FILLED", "58000"), ("57000", "56000", "FILLED", "57000"),
                                                               ("60000", "58500", "NEW", None)])
def test_paper_stop_loss_sells_at_the_stop_or_the_gap_open(open_, low, status, price):
    broker = PaperBroker(lambda *a: [Candle(2, Decimal(open_), Decimal(open_), Decimal(low))])
    stop = OrderIntent(sleeve="s", symbol="BTCUSDT", side="SELL", quantity=Decimal("0.1"), open_time_ms=1, type="STOP_LOSS",
                       stop_price=Decimal("58000"), intent="STOP_LOSS", interval="1m", mode="paper")

    report = broker.submit(stop)

    assert report.status == status and [f.price for f in report.fills] == ([Decimal(price)] if price else [])
