"""Start-up reconciliation through the CLI against the fake Binance and real PostgreSQL; live-trading guards;
the API secret never appears in logs, error messages or the database."""

import logging
from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.fake_binance import Fault
from tests.helpers import binance_client
from trader.__main__ import main
from trader.reconcile import Difference, compare

pytestmark = pytest.mark.integration
KEY = "kp-test-key-0123456789abcdef0123456789abcdef0123456789abcdef012345"
SECRET = "kp-SECRET-9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3"


@pytest.fixture
def fake(fake_binance):
    return fake_binance(keys={KEY: SECRET}, price="60000.00", usdt="10000")


@pytest.fixture
def env(monkeypatch, database_url, fake):
    for k, v in {"DATABASE_URL": database_url, "TRADER_MODE": "testnet", "TRADER_BINANCE_REST_URL": fake.url,
                 "BINANCE_API_KEY": KEY, "BINANCE_API_SECRET": SECRET, "TRADER_SLEEVES": "BTCUSDT:1m:sma_cross:500"}.items():
        monkeypatch.setenv(k, v)


def test_compare_finds_every_kind_of_difference():
    diffs = compare({"USDT": D("10"), "BTC": D("1")}, {"USDT": D("10"), "BTC": D("0.5")}, {"USDT", "BTC"},
                    {"a": "BTCUSDT", "b": "BTCUSDT"}, {"b", "c"}, {"7": "99", "8": "100"}, {"100"})

    assert diffs == [Difference("balance", "BTC", "1", "0.5"), Difference("unknown_open_order", "a", "open on BTCUSDT", "not open"),
                     Difference("missing_open_order", "c", "not open", "open"), Difference("unknown_trade", "7", "order 99", "no such order")]


def test_differences_block_until_accepted_then_balances_are_adopted(db, env, fake, capsys):
    client = binance_client(fake, key=KEY, secret=SECRET)
    client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.01", price="50000.00",
                        newClientOrderId="manual-1")  # someone trades by hand on the account

    first = main(["reconcile"])
    refused = main(["run"])
    accepted = main(["reconcile", "--accept"])
    out = capsys.readouterr()

    assert (first, refused, accepted) == (3, 3, 0)
    assert "balance USDT: exchange=10000" in out.out and "unknown_open_order manual-1" in out.out
    assert "python -m trader accept-reconciliation" in out.err
    with db.connect() as c:
        usdt = c.execute(sa.text("SELECT free FROM trading.balances WHERE mode = 'testnet' AND asset = 'USDT'")).scalar()
        recs = c.execute(sa.text("SELECT accepted FROM trading.reconciliations ORDER BY id")).scalars().all()
    assert usdt == D("10000") and recs == [False, False, True]  # 9500 free + 500 locked


@pytest.mark.parametrize(("mode", "args"), [("live", ["run"]), ("testnet", ["run", "--live"])])
def test_live_trading_needs_both_the_mode_and_the_flag(env, monkeypatch, capsys, mode, args):
    monkeypatch.setenv("TRADER_MODE", mode)

    code = main(args)

    assert code == 2 and "live" in capsys.readouterr().err


def test_the_secret_never_appears_in_logs_errors_or_the_database(db, env, fake, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    fake.inject(Fault("GET", "/api/v3/account", 503, -1007))
    main(["reconcile", "--accept"])  # works, after a retried 503
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET[::-1])
    failed = main(["reconcile"])  # signature refused
    monkeypatch.setenv("BINANCE_API_SECRET", "")
    missing = main(["reconcile"])
    out = capsys.readouterr()

    with db.connect() as c:
        dump = c.execute(sa.text(
            "SELECT string_agg(t::text, ' ') FROM (SELECT row_to_json(x)::text AS t FROM trading.events x UNION ALL"
            " SELECT row_to_json(x)::text FROM trading.reconciliations x UNION ALL SELECT row_to_json(x)::text FROM trading.orders x"
            " UNION ALL SELECT row_to_json(x)::text FROM trading.trader_state x) d")).scalar() or ""
    # a key Binance refuses is a bad value (exit 2), like a missing one
    assert failed == 2 and "-1022" in out.err and missing == 2 and "BINANCE_API_SECRET" in out.err
    for text in (caplog.text, out.out, out.err, dump):
        assert SECRET not in text and SECRET[::-1] not in text
