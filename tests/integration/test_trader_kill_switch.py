"""The kill switch trips in a drawdown, is recorded, blocks orders and stays tripped after a restart,
until the operator resumes through the CLI. A raising strategy halts only its own sleeve."""

from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from tests.helpers import sample_rows, seed_features
from tests.traders import BuyFirstSellLast, connector, crash_rows, kill_switch_trader
from trader.__main__ import main
from trader.brokers.paper import PaperBroker
from trader.loop import Trader
from trader.sleeve import RiskConfig, Sleeve
from trader.transaction import db_candles
from trader.risk.staleness import StaleData
from trader.strategies import build_strategy
from trader.strategies.base import Strategy

pytestmark = pytest.mark.integration


class Exploding(Strategy):
    name = "exploding"

    def signals(self, frame):
        raise RuntimeError("division by zero in user code")


def state(engine):
    with engine.connect() as c:
        return c.execute(sa.text("SELECT value->>'state' FROM trading.trader_state WHERE key = 'kill_switch:paper'")).scalar()


def test_drawdown_trips_the_kill_switch_which_survives_a_restart_until_resumed(db, database_url, monkeypatch):
    rows = crash_rows()
    seed_features(db, rows[:60])
    kill_switch_trader(database_url, [BuyFirstSellLast(sell_below=75)]).step()
    tripped = state(db)

    seed_features(db, rows[60:])  # the price falls below 75: the strategy now says SELL
    kill_switch_trader(database_url, [BuyFirstSellLast(sell_below=75)]).step()  # a restarted trader

    with db.connect() as c:
        sides = c.execute(sa.text("SELECT side FROM trading.orders ORDER BY signal_open_time")).scalars().all()
        events = c.execute(sa.text("SELECT kind, rule, detail FROM trading.events ORDER BY id")).fetchall()
    assert tripped == "HALTED" and state(db) == "HALTED"
    assert sides == ["BUY"]  # the SELL was refused: HALTED sends no entry or exit (only protection)
    assert events[0].kind == "kill_switch" and "drawdown" in events[0].detail
    assert any(e.kind == "risk_block" and e.rule == "kill_switch" for e in events)

    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["resume", "--reason", "drill over"]) == 0
    assert state(db) == "ACTIVE"


def test_operator_kill_switch_reducing_blocks_entries_only(db, database_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    seed_features(db, crash_rows()[:40])

    assert main(["kill", "--reducing", "--reason", "maintenance"]) == 0
    kill_switch_trader(database_url, [BuyFirstSellLast(sell_below=0)]).step()

    with db.connect() as c:
        orders = c.execute(sa.text("SELECT count(*) FROM trading.orders")).scalar()
        blocks = c.execute(sa.text("SELECT detail FROM trading.events WHERE kind = 'risk_block'")).scalars().all()
    assert orders == 0 and state(db) == "REDUCING"
    assert blocks and all("REDUCING" in b for b in blocks)


def test_a_raising_strategy_halts_only_its_sleeve_and_stays_halted(db, database_url, capsys, monkeypatch):
    seed_features(db, sample_rows(200))
    good = build_strategy("sma_cross")

    kill_switch_trader(database_url, [Exploding(), good]).step()
    restarted = kill_switch_trader(database_url, [Exploding(), good])

    with db.connect() as c:
        halted = c.execute(sa.text("SELECT sleeve, halted_reason FROM trading.sleeves WHERE halted_reason IS NOT NULL")).fetchall()
        signals = dict(c.execute(sa.text("SELECT sleeve, count(*) FROM trading.signals GROUP BY sleeve")).fetchall())
        errors = c.execute(sa.text("SELECT sleeve FROM trading.events WHERE kind = 'strategy_error'")).scalars().all()
    assert [h.sleeve for h in halted] == ["BTCUSDT:1m:exploding"]
    assert "RuntimeError: division by zero in user code" in halted[0].halted_reason
    assert signals == {"BTCUSDT:1m:sma_cross": 200}
    assert errors == ["BTCUSDT:1m:exploding"]
    assert restarted.sleeves[0].halted and not restarted.sleeves[1].halted

    monkeypatch.setenv("DATABASE_URL", database_url)
    main(["status"])
    out = capsys.readouterr().out
    assert "kill switch: ACTIVE" in out and "BTCUSDT:1m:exploding: HALTED" in out and "last decision" in out


def test_stale_data_blocks_entries_but_not_exits_and_is_recorded(db, database_url):
    seed_features(db, sample_rows(200))  # March 2024: by the wall clock, long stale
    connect = connector(database_url)
    sleeve = Sleeve(name="BTCUSDT:1m:sma_cross", symbol="BTCUSDT", interval="1m",
                    strategy=build_strategy("sma_cross"), allocation=D("1000"))
    trader = Trader(connect, [sleeve], PaperBroker(db_candles(connect)),
                    risk=RiskConfig(rules=(StaleData(2),), staleness_basis="close_time"), paper_balance=D("10000"))
    trader.step()

    with db.connect() as c:
        orders = c.execute(sa.text("SELECT count(*) FROM trading.orders")).scalar()
        rules = c.execute(sa.text("SELECT DISTINCT rule FROM trading.events WHERE kind = 'risk_block'")).scalars().all()
        reasons = c.execute(sa.text("SELECT reason FROM trading.signals WHERE action = 'BUY'")).scalars().all()
    assert orders == 0 and rules == ["stale_data"]
    assert reasons and all("blocked by stale_data: newest closed candle is" in r for r in reasons)
