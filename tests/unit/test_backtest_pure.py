"""The backtest core is pure (STYLE 1): no Kafka, database, HTTP or Airflow library is imported."""

import subprocess
import sys

import pytest

PURE = ["trader.backtest.candles", "trader.backtest.engine", "trader.backtest.metrics", "trader.backtest.runner",
        "trader.backtest.sweep", "trader.backtest.outputs", "trader.backtest.service", "trader.backtest.cli"]
IO_LIBS = ["confluent_kafka", "psycopg2", "psycopg", "sqlalchemy", "websockets", "airflow", "requests", "binance", "httpx", "aiohttp"]


@pytest.mark.parametrize("module", PURE)
def test_backtest_module_imports_no_io_library(module):
    code = f"import sys, {module}; print(','.join(m for m in {IO_LIBS!r} if m in sys.modules))"

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    assert out == ""
