"""A local fake of Binance Spot REST, faithful to ``shared/reference/binance-spot-api.md``.

Use from tests::

    from tests.fake_binance import FakeBinance, Fault
    from tests.helpers import sample_rows

    with FakeBinance() as fake:                        # thread, free port; fake.url, fake.api_url
        fake.add_symbol("BTCUSDT", "BTC", "USDT")      # filters shaped like live BTCUSDT
        fake.seed_klines("BTCUSDT", "1m", sample_rows(1500))   # served by /api/v3/klines; sets the price
        fake.deposit("USDT", "10000")
        fake.inject(Fault("GET", "/api/v3/klines", 429, -1003, retry_after=3))       # next call only
        fake.inject(Fault("POST", "/api/v3/order", 503, -1007, after_execute=True))  # placed, answer lost
        fake.set_skew(-3000)                           # server clock 3 s behind the client
        fake.set_price("BTCUSDT", "61000.00")          # matches resting LIMIT / STOP_LOSS orders
        client = binance_client(fake, signed=True)     # tests.helpers: python-binance pointed at the fake

In a test, the ``fake_binance`` factory fixture (``tests/conftest.py``) starts one with BTCUSDT listed and stops it
afterwards: ``fake_binance(price="60000.00", usdt="10000")``, ``fake_binance(klines=sample_rows(1500))``.

``FakeState(weight_limit=N)`` answers 429 + ``Retry-After`` + -1003 once a minute's weight passes N.
Standalone: ``python -m tests.fake_binance --port 8080 [--seed data/sample/BTCUSDT-1m.csv.gz]``.
"""

from tests.fake_binance.market import SymbolInfo, default_filters
from tests.fake_binance.server import FakeBinance, free_port
from tests.fake_binance.state import Fault, FakeState

__all__ = ["FakeBinance", "FakeState", "Fault", "SymbolInfo", "default_filters", "free_port"]
