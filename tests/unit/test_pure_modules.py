"""Pure modules import no I/O library (STYLE 1): checked in a fresh interpreter per module."""

import subprocess
import sys

import pytest

PURE = ["klinepipe.kline", "klinepipe.features", "klinepipe.binance.intervals", "klinepipe.binance.events", "klinepipe.binance.rows",
        "klinepipe.binance.times", "klinepipe.binance.finality", "klinepipe.errors", "klinepipe.outage",
        "trader.strategies",
        "trader.orders", "trader.brokers.paper", "trader.symbols", "streaming.envelope", "streaming.replay",
        "streaming.demo_market", "klinepipe.connection_file", "klinepipe.logging_setup",
        # the backtest core, CLI included: files and arrays only
        "trader.backtest.candles", "trader.backtest.engine", "trader.backtest.metrics", "trader.backtest.runner",
        "trader.backtest.sweep", "trader.backtest.outputs", "trader.backtest.service", "trader.backtest.cli"]
IO_LIBS = ["confluent_kafka", "psycopg2", "psycopg", "sqlalchemy", "websockets", "airflow", "requests", "binance", "httpx", "aiohttp"]


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_library(module):
    code = f"import sys, {module}; print(','.join(m for m in {IO_LIBS!r} if m in sys.modules))"

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    assert out == ""
