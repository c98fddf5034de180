"""The fake Binance's public endpoints: klines paging, exchangeInfo, time, weight and 429s (reference 3.1, 3.3, 5.1)."""

import pytest
import requests
from binance.exceptions import BinanceAPIException

from tests.fake_binance import FakeBinance, FakeState, Fault
from tests.helpers import binance_client, sample_rows

ROWS = sample_rows(2500)
T = [int(r[0]) for r in ROWS]


@pytest.fixture
def fake(fake_binance):
    return fake_binance(state=FakeState(clock=lambda: T[-1] / 1000 + 60), klines=ROWS)


def get(fake, path, **params):
    return requests.get(f"{fake.url}/api/v3/{path}", params=params, timeout=5)


def test_klines_with_start_time_are_the_oldest_from_start():
    with FakeBinance() as fake:
        fake.add_symbol()
        fake.seed_klines("BTCUSDT", "1m", ROWS)

        rows = get(fake, "klines", symbol="BTCUSDT", interval="1m", startTime=T[10], limit=3).json()

    assert [r[0] for r in rows] == T[10:13]
    assert rows[0] == [T[10], ROWS[10][1], ROWS[10][2], ROWS[10][3], ROWS[10][4], ROWS[10][5], int(ROWS[10][6]), "0", 0, "0", "0", "0"]


@pytest.mark.parametrize(("params", "want"), [
    ({}, T[-500:]),                                               # no range: the newest, default limit 500
    ({"limit": 5000}, T[-1000:]),                                 # limit capped at 1000
    ({"endTime": T[100], "limit": 3}, T[98:101]),                 # end only: the newest up to endTime
    ({"startTime": T[5] - 1, "endTime": T[7], "limit": 10}, T[5:8]),  # both: from start, capped by end
    ({"startTime": T[-1] + 1}, []),
])
def test_klines_paging_follows_the_reference(fake, params, want):
    rows = get(fake, "klines", symbol="BTCUSDT", interval="1m", **params).json()

    assert [r[0] for r in rows] == want


def test_python_binance_pages_the_whole_history_unmodified(fake):
    client = binance_client(fake)

    rows = client.get_historical_klines("BTCUSDT", "1m", T[0], T[-1])

    assert [r[0] for r in rows] == T
    assert len([r for r in fake.requests("/api/v3/klines")]) >= 3  # pages of at most 1000


@pytest.mark.parametrize(("params", "code", "msg"), [
    ({"symbol": "NOPE", "interval": "1m"}, -1121, "Invalid symbol."),
    ({"symbol": "BTCUSDT", "interval": "7m"}, -1120, "Invalid interval."),
])
def test_bad_kline_requests_get_binance_errors(fake, params, code, msg):
    resp = get(fake, "klines", **params)

    assert resp.status_code == 400 and resp.json() == {"code": code, "msg": msg}


def test_exchange_info_lists_symbols_with_filters_and_weight_headers(fake):
    resp = get(fake, "exchangeInfo", symbol="BTCUSDT")

    info = resp.json()
    filters = {f["filterType"]: f for f in info["symbols"][0]["filters"]}
    assert set(filters) >= {"PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE", "NOTIONAL"}
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    assert info["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
    assert resp.headers["X-MBX-USED-WEIGHT-1M"] == "20"


def test_server_time_follows_the_injected_clock_and_skew(fake):
    fake.set_skew(-2500)

    assert get(fake, "time").json() == {"serverTime": T[-1] + 60_000 - 2500}


def test_weight_over_the_limit_is_429_with_retry_after():
    with FakeBinance(FakeState(weight_limit=5)) as fake:
        fake.add_symbol()
        fake.seed_klines("BTCUSDT", "1m", ROWS[:10])
        answers = [get(fake, "klines", symbol="BTCUSDT", interval="1m") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["Retry-After"] == "7"
    assert answers[2].json()["code"] == -1003
    assert answers[2].json()["msg"].startswith("Too much request weight used; current limit is 5 request weight per 1 MINUTE.")


def test_an_injected_429_answers_once_and_python_binance_sees_it(fake):
    fake.inject(Fault("GET", "/api/v3/klines", 429, -1003, retry_after=3))
    client = binance_client(fake)

    with pytest.raises(BinanceAPIException) as err:
        client.get_klines(symbol="BTCUSDT", interval="1m", limit=1)
    again = client.get_klines(symbol="BTCUSDT", interval="1m", limit=1)

    assert err.value.status_code == 429 and err.value.code == -1003
    assert err.value.response.headers["Retry-After"] == "3"
    assert [r[0] for r in again] == T[-1:]


def test_standalone_server_seeds_the_bundled_real_klines():
    from tests.fake_binance.__main__ import SAMPLE, seed

    state = FakeState()
    seed(state, [SAMPLE / "BTCUSDT-1h.csv"], "2500")

    rows = state.market.klines("BTCUSDT", "1h", None, None, 1000)
    assert len(rows) == 1000 and rows[-1][0] == 1711098000000
    assert state.engine.free("USDT") == 2500
