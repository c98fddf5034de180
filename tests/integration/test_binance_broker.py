"""The Binance broker over python-binance against the local fake Binance: time offset, Retry-After,
error classification, order types, lookups by client order id."""

from decimal import Decimal as D

import pytest

from tests.fake_binance import Fault
from tests.helpers import binance_client
from trader.brokers.binance import BinanceBroker, order_params
from trader.errors import (
    AuthError, ExchangeUnavailable, FatalError, FilterRejected, InsufficientBalance, RateLimited, RequestTimeout, RetryableError,
)
from trader.orders import OrderIntent

pytestmark = pytest.mark.integration


@pytest.fixture
def fake(fake_binance):
    return fake_binance(price="60000.00", usdt="10000")


def make_broker(fake, secret=None, **kw):
    client = binance_client(fake, signed=True, secret=secret)
    client.REQUEST_TIMEOUT = kw.pop("timeout", 5)
    sleeps = []
    return BinanceBroker(client, "testnet", sleep=sleeps.append, **kw), sleeps


def intent(side="BUY", qty="0.01", t=1_000, **kw):
    return OrderIntent(sleeve="BTCUSDT:1m:test", symbol="BTCUSDT", side=side, quantity=D(qty), open_time_ms=t, interval="1m",
                       mode="testnet", **kw)


def test_server_time_offset_is_tracked_so_a_skewed_clock_gets_no_1021(fake):
    fake.set_skew(-30_000)  # the server runs 30 s behind this machine
    broker, _ = make_broker(fake)

    offset = broker.sync_time()
    balances = broker.balances()

    assert -31_000 < offset < -29_000
    assert balances == {"USDT": D("10000")}


def test_a_1021_on_submit_resyncs_the_clock_and_places_once(fake):
    broker, _ = make_broker(fake)
    fake.set_skew(-30_000)

    report = broker.submit(intent())

    assert report.status == "FILLED" and len(fake.orders()) == 1


def test_reads_wait_retry_after_on_429_then_succeed(fake):
    broker, sleeps = make_broker(fake)
    fake.inject(Fault("GET", "/api/v3/account", 429, -1003, retry_after=4))
    fake.inject(Fault("GET", "/api/v3/account", 418, -1003, retry_after=9, msg="Way too much request weight used; IP banned until 1."))

    balances = broker.balances()

    assert sleeps == [4.0, 9.0] and balances == {"USDT": D("10000")}


def test_a_429_on_submit_is_rate_limited_with_retry_after_and_nothing_placed(fake):
    broker, _ = make_broker(fake)
    fake.inject(Fault("POST", "/api/v3/order", 429, -1003, retry_after=3))

    with pytest.raises(RateLimited) as err:
        broker.submit(intent())

    assert err.value.retry_after == 3.0 and isinstance(err.value, RetryableError)
    assert fake.orders() == []


def test_an_unknown_outcome_is_retryable_and_the_lookup_finds_the_order(fake):
    broker, _ = make_broker(fake)
    fake.inject(Fault("POST", "/api/v3/order", 503, -1007, after_execute=True))

    with pytest.raises(ExchangeUnavailable):
        broker.submit(intent())
    found = broker.lookup(intent())

    assert found is not None and found.status == "FILLED"
    assert [(f.quantity, f.price, f.fee_asset) for f in found.fills] == [(D("0.01"), D("60000"), "BTC")]


def test_a_timeout_after_execution_is_a_request_timeout(fake):
    broker, _ = make_broker(fake, timeout=0.3)
    fake.inject(Fault("POST", "/api/v3/order", 503, -1007, after_execute=True, delay=1.0))

    with pytest.raises(RequestTimeout):
        broker.submit(intent())

    assert broker.lookup(intent()).status == "FILLED"


def test_lookup_of_an_order_the_exchange_never_saw_is_none(fake):
    broker, _ = make_broker(fake)

    assert broker.lookup(intent()) is None


@pytest.mark.parametrize(("order", "error"), [
    (intent(qty="0.00001"), FilterRejected),            # 0.6 USDT < NOTIONAL 5
    (intent(qty="1"), InsufficientBalance),
    (intent(side="SELL"), InsufficientBalance),
])
def test_rejections_are_fatal_and_classified(fake, order, error):
    broker, _ = make_broker(fake)

    with pytest.raises(error) as err:
        broker.submit(order)

    assert isinstance(err.value, FatalError) and err.value.code in (-1013, -2010)


def test_a_wrong_secret_is_an_auth_error_whose_message_holds_no_secret(fake):
    secret = "WRONG-SECRET-never-print-me-0123456789abcdef0123456789abcdef"
    broker, _ = make_broker(fake, secret=secret)

    with pytest.raises(AuthError) as err:
        broker.balances()

    assert "-1022" in str(err.value) and secret not in str(err.value) and secret not in repr(err.value.__dict__)


def test_limit_gtc_ioc_and_stop_loss_orders(fake):
    broker, _ = make_broker(fake)
    broker.submit(intent(qty="0.1", t=1))

    gtc = broker.submit(intent(qty="0.01", t=2, type="LIMIT", price=D("59000.00"), time_in_force="GTC"))
    ioc = broker.submit(intent(qty="0.01", t=3, type="LIMIT", price=D("59000.00"), time_in_force="IOC"))
    stop = broker.submit(intent("SELL", "0.05", t=4, type="STOP_LOSS", stop_price=D("55000.00"), intent="STOP_LOSS"))
    fake.set_price("BTCUSDT", "54000.00")

    assert (gtc.status, ioc.status) == ("NEW", "EXPIRED")
    assert broker.lookup(intent(qty="0.01", t=2)).status == "FILLED"
    assert broker.lookup(intent("SELL", "0.05", t=4, intent="STOP_LOSS")).status == "FILLED"
    assert stop.client_order_id.endswith("-L")


def test_order_params_send_exact_decimal_strings():
    params = order_params(intent(qty="0.01000", type="LIMIT", price=D("60000.10"), time_in_force="IOC"))

    assert params == {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01", "price": "60000.1",
                      "timeInForce": "IOC", "newClientOrderId": intent().client_order_id, "newOrderRespType": "FULL"}


def test_exchange_filters_come_from_exchange_info(fake):
    broker, _ = make_broker(fake)

    rules = broker.rules("BTCUSDT")

    assert (rules.tick, rules.lot.step, rules.min_notional) == (D("0.01"), D("0.00001"), D("5"))
