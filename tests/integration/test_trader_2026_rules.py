"""Binance's 2026 rules, trader side (issue 16), on real PostgreSQL and the fake Binance: signed requests carry
``recvWindow=5000``; ``selfTradePreventionMode`` goes out on every order when set; a symbol in ``CANCEL_ONLY`` or
``HALT`` (exchangeInfo ``status``) gets no new order, the reason recorded, and trading resumes when it is TRADING
again; ``expiryReason`` is recorded; ``demo`` mode trades through its own base URL into its own rows."""

from decimal import Decimal as D
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa

from tests.helpers import expected_sma_cross_orders, sample_rows, seed_features
from tests.traders import connector
from trader import account_records
from trader.brokers.binance import BinanceBroker
from trader.brokers.paper import PaperBroker
from trader.config import load_settings
from trader.errors import ConfigError
from trader.loop import Trader
from trader.orders import OrderIntent
from trader.risk.killswitch import KillLimits
from trader.sleeve import RiskConfig, Sleeve
from trader.strategies import build_strategy
from trader.transaction import db_candles
from trader.wiring import build_broker

pytestmark = pytest.mark.integration
SLEEVE = "BTCUSDT:1m:sma_cross"
ROWS = sample_rows(400)
EXPECTED = expected_sma_cross_orders([D(r[4]) for r in ROWS])
FIRST_BUY = next(i for i, side in EXPECTED if side == "BUY")
NEXT_BUY = next(i for i, side in EXPECTED if side == "BUY" and i > FIRST_BUY)


@pytest.fixture
def fake(fake_binance):
    return fake_binance(price=ROWS[FIRST_BUY][4], usdt="10000")


@pytest.fixture
def settings_env(monkeypatch, database_url, fake):
    for name in ("TRADER_BINANCE_KEY_FILE", "TRADER_SELF_TRADE_PREVENTION", "TRADER_RECV_WINDOW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("BINANCE_API_KEY", fake.api_key)
    monkeypatch.setenv("BINANCE_API_SECRET", fake.api_secret)
    monkeypatch.setenv("TRADER_BINANCE_REST_URL", fake.url)
    return monkeypatch


def trader_on(database_url, broker):
    sleeve = Sleeve(name=SLEEVE, symbol="BTCUSDT", interval="1m", strategy=build_strategy("sma_cross"), allocation=D("1000"))
    trader = Trader(connector(database_url), [sleeve], broker, risk=RiskConfig(kill=KillLimits(D("0.9"), D("0.9"))),
                    sleep=lambda s: None)
    with trader._transaction() as cur:
        account_records.seed_balance(cur, broker.mode, "USDT", D("10000"))
    return trader


def sent_orders(fake) -> list[dict]:
    return [dict(parse_qsl(body or query)) for method, path, query, body in fake.requests("/api/v3/order") if method == "POST"]


def test_orders_carry_recv_window_5000_and_the_self_trade_prevention_mode(db, database_url, fake, settings_env):
    settings_env.setenv("TRADER_SELF_TRADE_PREVENTION", "EXPIRE_MAKER")
    broker = build_broker(load_settings(mode="testnet"), connector(database_url))
    seed_features(db, ROWS[: FIRST_BUY + 2])

    trader_on(database_url, broker).step()

    (order,) = sent_orders(fake)
    assert order["recvWindow"] == "5000" and order["selfTradePreventionMode"] == "EXPIRE_MAKER"
    assert order["side"] == "BUY" and order["newClientOrderId"].startswith("kp-t-")


def test_without_the_setting_no_self_trade_prevention_mode_is_sent(db, database_url, fake):
    broker = BinanceBroker(_client(fake), "testnet", sleep=lambda s: None)
    broker.submit(OrderIntent(sleeve=SLEEVE, symbol="BTCUSDT", side="BUY", quantity=D("0.01"), open_time_ms=1,
                              mode="testnet"))
    assert "selfTradePreventionMode" not in sent_orders(fake)[0]


def _client(fake):
    from tests.helpers import binance_client

    return binance_client(fake, signed=True)


@pytest.mark.parametrize("status", ["CANCEL_ONLY", "HALT"])
def test_a_symbol_not_trading_gets_no_new_order_and_the_reason_is_recorded(db, database_url, fake, status):
    fake.state.market.symbols["BTCUSDT"].status = status
    seed_features(db, ROWS[: FIRST_BUY + 2])
    trader_on(database_url, BinanceBroker(_client(fake), "testnet", sleep=lambda s: None)).step()
    blocked = list(fake.orders())

    fake.state.market.symbols["BTCUSDT"].status = "TRADING"
    seed_features(db, ROWS[: NEXT_BUY + 2])
    trader_on(database_url, BinanceBroker(_client(fake), "testnet", sleep=lambda s: None)).step()  # a later start

    with db.connect() as c:
        blocks = c.execute(sa.text("SELECT rule, detail FROM trading.events WHERE kind = 'risk_block'")).fetchall()
        reasons = c.execute(sa.text("SELECT reason FROM trading.signals WHERE action = 'BUY' ORDER BY open_time")).scalars().all()
    assert blocked == []
    assert [b.rule for b in blocks] == ["symbol_status"]
    assert blocks[0].detail == f"symbol BTCUSDT status {status} at the exchange " \
        f"({'only cancels' if status == 'CANCEL_ONLY' else 'no orders'}): no new orders"
    assert "blocked by symbol_status" in reasons[0]
    assert [o["side"] for o in fake.orders()] == ["BUY"]  # TRADING again: the next crossover's entry goes out
    assert "blocked" not in reasons[-1]


def test_an_expired_order_records_its_expiry_reason(db, database_url):
    seed_features(db, ROWS[: FIRST_BUY + 3])
    connect = connector(database_url)
    sleeve = Sleeve(name=SLEEVE, symbol="BTCUSDT", interval="1m", strategy=build_strategy("sma_cross"), allocation=D("1000"))
    risk = RiskConfig(order_type="LIMIT", limit_tif="IOC", limit_offset_bps=D("5000"))  # far below: it cannot fill
    Trader(connect, [sleeve], PaperBroker(db_candles(connect)), risk=risk, paper_balance=D("10000")).step()

    with db.connect() as c:
        (order,) = c.execute(sa.text("SELECT status, expiry_reason FROM trading.orders")).fetchall()
    assert tuple(order) == ("EXPIRED", "UNFILLED_IOC_QUANTITY_EXPIRED")


def test_demo_mode_trades_through_its_base_into_its_own_rows(db, database_url, fake, settings_env):
    broker = build_broker(load_settings(mode="demo"), connector(database_url))
    seed_features(db, ROWS[: FIRST_BUY + 2])

    trader_on(database_url, broker).step()

    with db.connect() as c:
        rows = c.execute(sa.text("SELECT mode, client_order_id, status FROM trading.orders")).fetchall()
        sleeves = c.execute(sa.text("SELECT mode FROM trading.sleeves")).scalars().all()
    assert [(r.mode, r.status) for r in rows] == [("demo", "FILLED")] and rows[0].client_order_id.startswith("kp-d-")
    assert sleeves == ["demo"]
    assert [o["clientOrderId"] for o in fake.orders()] == [rows[0].client_order_id]


def test_a_self_trade_prevention_mode_the_symbol_does_not_allow_is_refused_at_start(db, database_url, fake, settings_env):
    settings_env.setenv("TRADER_SELF_TRADE_PREVENTION", "EXPIRE_BOTH")
    fake.set_symbol("BTCUSDT", allowedSelfTradePreventionModes=["NONE", "EXPIRE_MAKER"])
    with pytest.raises(ConfigError, match="TRADER_SELF_TRADE_PREVENTION=EXPIRE_BOTH: BTCUSDT allows only NONE, EXPIRE_MAKER"):
        build_broker(load_settings(mode="testnet"), connector(database_url))
    assert sent_orders(fake) == []
