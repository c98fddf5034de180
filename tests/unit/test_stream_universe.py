"""Which streams the sidecar subscribes to: symbols checked against exchangeInfo, universes, streams split across
connections, URL forms."""

import pytest

from streaming.connection import stream_url
from streaming.universe import UnknownSymbolsError, check_symbols, select_universe, split_streams, stream_names


INFO = {"symbols": [{"symbol": "BTCUSDT", "status": "TRADING", "quoteAsset": "USDT"},
                    {"symbol": "ETHUSDT", "status": "TRADING", "quoteAsset": "USDT"},
                    {"symbol": "LUNAUSDT", "status": "BREAK", "quoteAsset": "USDT"},
                    {"symbol": "ETHBTC", "status": "TRADING", "quoteAsset": "BTC"}]}


def test_symbols_checked_and_universe_selected():
    assert check_symbols(INFO, ("BTCUSDT", "LUNAUSDT")) == ["LUNAUSDT"]  # known, but not trading
    with pytest.raises(UnknownSymbolsError, match="unknown symbol\\(s\\) FOOUSDT, BARBTC"):
        check_symbols(INFO, ("BTCUSDT", "FOOUSDT", "BARBTC"))
    assert select_universe(INFO, "usdt") == ("BTCUSDT", "ETHUSDT")
    assert select_universe(INFO, "USDT", limit=1) == ("BTCUSDT",)
    with pytest.raises(UnknownSymbolsError):
        select_universe(INFO, "EUR")


def test_stream_names_split_and_url_forms():
    names = stream_names(("BTCUSDT", "ETHUSDT"), ("1s", "1M"))

    assert names == ["btcusdt@kline_1s", "btcusdt@kline_1M", "ethusdt@kline_1s", "ethusdt@kline_1M"]
    assert split_streams(names, 3) == [names[:3], names[3:]]
    assert stream_url("wss://h:9443", "combined", names[:2]) == (
        "wss://h:9443/stream?streams=btcusdt@kline_1s/btcusdt@kline_1M", False)
    assert stream_url("wss://h:9443", "raw", names[:2]) == ("wss://h:9443/ws/btcusdt@kline_1s/btcusdt@kline_1M", False)
    assert stream_url("wss://h:9443", "subscribe", names) == ("wss://h:9443/stream", True)
    many = [f"sym{i:04d}usdt@kline_1m" for i in range(1024)]
    assert stream_url("wss://h:9443", "combined", many) == ("wss://h:9443/stream", True)  # too long for a URL
    assert stream_url("wss://h:9443", "raw", many) == ("wss://h:9443/ws", True)
