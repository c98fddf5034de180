"""Traders for tests, in this process over real PostgreSQL: the paper sma_cross trader of the features -> orders hop,
the kill-switch trader, the strategy and prices that trip a kill switch, and the live trader's settings and fills
in a backtest's terms (backtest-live parity)."""

from __future__ import annotations

from decimal import Decimal as D

import numpy as np
import psycopg2

from tests.helpers import dsn_of, sample_rows
from trader.backtest.engine import FillModel
from trader.brokers.paper import PaperBroker
from trader.loop import Trader
from trader.sleeve import RiskConfig, Sleeve
from trader.transaction import db_candles
from trader.risk.killswitch import KillLimits
from trader.strategies import build_strategy
from trader.strategies.base import Strategy

SLEEVE = "BTCUSDT:1m:sma_cross"


def connector(database_url: str):
    """What the trader takes to open its connections: a new psycopg2 connection per call."""
    dsn = dsn_of(database_url)
    return lambda: psycopg2.connect(dsn)


def make_trader(database_url, **kw):
    """The paper trader of one sma_cross(10, 30) sleeve on BTCUSDT 1m: 1000 USDT of 10000, 10 bps fees."""
    connect = connector(database_url)
    sleeve = Sleeve(name=SLEEVE, symbol="BTCUSDT", interval="1m",
                    strategy=build_strategy("sma_cross", fast=10, slow=30), allocation=D("1000"))
    broker = PaperBroker(db_candles(connect), fee_bps=D("10"))
    return Trader(connect, [sleeve], broker, paper_balance=D("10000"), **kw)


def kill_switch_trader(database_url, strategies, limits=KillLimits(D("0.5"), D("0.10"))):
    """A paper trader of one 10000 USDT sleeve per strategy, no fees, its kill switch at ``limits``."""
    connect = connector(database_url)
    sleeves = [Sleeve(name=f"BTCUSDT:1m:{s.name}", symbol="BTCUSDT", interval="1m", strategy=s, allocation=D("10000"))
               for s in strategies]
    return Trader(connect, sleeves, PaperBroker(db_candles(connect), fee_bps=D("0")), risk=RiskConfig(kill=limits),
                  paper_balance=D("10000"))


def model_of(trader, cash: float) -> FillModel:
    """The live trader's own settings as a backtest fill model: allocation per entry, lot step, fee, slippage."""
    sleeve = trader.sleeves[0]
    rules = trader.broker.rules(sleeve.symbol)
    return FillModel(fee_bps=float(trader.broker.fee_bps()), slippage_bps=float(trader.broker.slippage_bps), cash=cash,
                     order_quote=float(sleeve.allocation), qty_step=float((rules.market_lot or rules.lot).step), size_at="signal")


def backtest_fills(candles, fills) -> list[tuple]:
    """(decision open ms, side, fill price, fill candle open ms, quantity) of every backtest fill, in time order."""
    times = candles["open_time"].to_numpy()
    out = []
    for k, (entry, exit_) in enumerate(zip(fills.entry_bar.tolist(), fills.exit_bar.tolist())):
        out.append((int(times[entry - 1]), "BUY", float(fills.entry_price[k]), int(times[entry]), float(fills.qty[k])))
        if exit_ >= 0:
            out.append((int(times[exit_ - 1]), "SELL", float(fills.exit_price[k]), int(times[exit_]), float(fills.qty[k])))
    return out


class BuyFirstSellLast(Strategy):
    """BUY while the close is at or above ``sell_below``, SELL once it is below."""

    name = "buy_first_sell_late"

    def __init__(self, sell_below: float) -> None:
        super().__init__(sell_below=sell_below)

    def signals(self, frame):
        close = frame["close"].to_numpy(dtype=float)
        return np.where(close < self.params["sell_below"], -1, 1).astype(np.int8)


def crash_rows(n=80, top=100.0, bottom=70.0):
    """Real open times, synthetic prices: flat at ``top`` for 30 bars, then a steady fall to ``bottom``."""
    rows = []
    for i, r in enumerate(sample_rows(n)):
        p = top if i < 30 else top - (top - bottom) * (i - 29) / (n - 30)
        rows.append([r[0], f"{p:.2f}", f"{p + 0.5:.2f}", f"{p - 0.5:.2f}", f"{p:.2f}", "10", r[6], "", "", "", "", ""])
    return rows


def protected_paper_trader(database_url, strategy, protection, allocation=D("1000")):
    """A paper trader of one sleeve of ``strategy`` with ``protection`` held by the paper broker, no fees."""
    connect = connector(database_url)
    sleeve = Sleeve(name=f"BTCUSDT:1m:{strategy.name}", symbol="BTCUSDT", interval="1m", strategy=strategy,
                    allocation=allocation, protection=protection)
    return Trader(connect, [sleeve], PaperBroker(db_candles(connect), fee_bps=D("0")), paper_balance=D("10000"))
