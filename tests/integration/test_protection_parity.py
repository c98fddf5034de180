"""One stop model in three places: a backtest with stops (``trader.backtest.stops``), the paper trader holding an OCO
(stop-loss + take-profit) per position, and the trader on the fake Binance through python-binance, whose OCO the fake
triggers against its trades, give the same trades, trade for trade, on the bundled sample data: entries at the next
open, exits by stop, by take-profit and by signal.

The fake's price feed replays each candle as a path of trades: open -> low -> high -> close, printing every resting
protection level the path passes (a continuous market trades through every price between two prints; a gap does not:
the candle's open is the first trade beyond the level). The exchange's rule (the last trade at or through the stop)
then is the paper broker's rule in bar terms."""

from decimal import Decimal as D

import numpy as np
import pytest
import sqlalchemy as sa

from klinepipe.features import parse_spec
from tests.helpers import sample_rows, seed_features, write_csv
from tests.traders import model_of, protected_paper_trader
from trader.backtest.candles import read_kline_file
from trader.backtest.runner import feature_frame, strategy_signals
from trader.backtest.stops import StopModel, simulate_with_stops
from trader.protection import Distance, ProtectionSettings
from trader.strategies import build_strategy
from trader.strategies.sma_cross import SmaCross

pytestmark = pytest.mark.integration
N = 300
STOP, TAKE = D("0.3"), D("0.4")  # percent: tight enough for 1m candles to reach both


def ledger_trades(engine, mode="paper", candle_of=None) -> list[tuple]:
    """(entry fill open ms, entry price, exit fill open ms, exit price, how) of every closed trade, in time order.
    ``candle_of``: the candle a fill's trade id happened in (the exchange's fills carry wall-clock times)."""
    with engine.connect() as c:
        rows = c.execute(sa.text(
            "SELECT o.client_order_id, o.side, f.price, f.trade_id, (extract(epoch FROM f.filled_at) * 1000)::bigint AS at"
            " FROM trading.orders o JOIN trading.fills f USING (client_order_id) WHERE o.mode = :m ORDER BY f.id"),
            {"m": mode}).fetchall()
    out, entry = [], None
    for r in rows:
        at = candle_of(int(r.trade_id)) if candle_of else r.at
        if r.side == "BUY":
            entry = (at, float(r.price))
        else:
            how = {"PS": "stop", "PT": "take_profit"}.get(r.client_order_id[-2:], "signal")
            out.append((*entry, at, float(r.price), how))
    return out


class FeedingSmaCross(SmaCross):
    """sma_cross, which before deciding a candle has the fake trade that candle's path and then the next open (the price
    a MARKET order placed after the decision fills at)."""

    def __init__(self, fake, rows, **params) -> None:
        super().__init__(**params)
        self.fake, self.rows = fake, rows
        self.index = {int(r[0]): k for k, r in enumerate(rows)}
        self.marks: list[tuple[int, int]] = []  # (first trade id from here on, candle open ms)

    def _mark(self, k: int) -> None:
        with self.fake.state.lock:
            ids = [t["id"] for t in self.fake.state.engine.trades]
        self.marks.append((max(ids) + 1 if ids else 0, int(self.rows[k][0])))

    def candle_of(self, trade_id: int) -> int:
        return [ms for first, ms in self.marks if first <= trade_id][-1]

    def walk(self, start: D, to: D) -> None:
        """Trade from ``start`` to ``to`` through the nearest resting level, one at a time, each looked up after the trade
        before it (a trade may fill a LIMIT entry and put its OTOCO legs to work, or ratchet a trail)."""
        now, down = start, to < start
        while True:
            ahead = [x for x in self.levels() if (to <= x < now if down else now < x <= to)]
            if not ahead:
                break
            now = max(ahead) if down else min(ahead)
            self.fake.trade("BTCUSDT", now)
        if now != to:
            self.fake.trade("BTCUSDT", to)

    def levels(self) -> list[D]:
        """The levels resting now: LIMIT prices, stop prices, and each trailing stop's trail (``peak x (1 - delta)``)."""
        out = set()
        for x in self.fake.orders():
            if x["status"] == "NEW" and x["type"] == "LIMIT":
                out.add(x["price"])
            elif x["status"] == "NEW" and x.get("stop") is not None:
                out.add(x["stop"])
            elif x["status"] == "NEW" and x.get("trailingDelta") and x.get("peak") is not None:
                out.add(x["peak"] * (1 - D(x["trailingDelta"]) / 10_000))
        return sorted(out)

    def decide(self, window):
        k = self.index[int(window["open_time"].iloc[-1].timestamp() * 1000)]
        o, h, low, c = (D(self.rows[k][j]) for j in (1, 2, 3, 4))
        self._mark(k)
        self.fake.trade("BTCUSDT", o)  # the path, leg by leg, through every level resting on the way
        for a, b in ((o, low), (low, h), (h, c)):
            self.walk(a, b)
        if k + 1 < len(self.rows):
            self._mark(k + 1)
            self.fake.set_price("BTCUSDT", self.rows[k + 1][1])
        return super().decide(window)


def backtest_trades(rows, strategy, model, tmp_path, stops=None) -> list[tuple]:
    """(entry open ms, entry price, exit open ms, exit price) of every closed backtest trade with the same stops."""
    candles = read_kline_file(write_csv(tmp_path / "BTCUSDT-1m.csv", rows))
    signals = strategy_signals(strategy, feature_frame(candles, strategy))
    stops = stops or StopModel(float(STOP), float(TAKE), tick=0.01)
    atr = feature_frame(candles, specs=(parse_spec("atr_14"),))["atr_14"].to_numpy(dtype=float) if stops.uses_atr else None
    fills = simulate_with_stops(*(candles[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close")), signals, model,
                                stops, atr)
    times = candles["open_time"].to_numpy()
    closed = fills.exit_bar >= 0
    return [(int(times[e]), p_in, int(times[x]), p_out)
            for e, x, p_in, p_out in zip(fills.entry_bar[closed], fills.exit_bar[closed], fills.entry_price[closed],
                                         fills.exit_price[closed])]


def test_backtest_paper_and_fake_exchange_trade_alike_with_stop_and_take_profit_exits(db, database_url, fake_binance, tmp_path):
    from tests.integration.test_trader_protection import broker_on, start_trader

    rows = sample_rows(N)
    seed_features(db, rows)
    strategy = build_strategy("sma_cross", fast=10, slow=30)
    protection = ProtectionSettings(stop_loss=Distance(STOP, "%"), take_profit=Distance(TAKE, "%"))
    paper_trader = protected_paper_trader(database_url, strategy, protection)
    paper_trader.step()
    fake = fake_binance(price=rows[0][1], usdt="10000")
    feeding = FeedingSmaCross(fake, rows, fast=10, slow=30)
    live = start_trader(database_url, broker_on(fake), protection, strategy=feeding)

    live.step()
    live.step()

    expected = backtest_trades(rows, strategy, model_of(paper_trader, 10_000.0), tmp_path)
    paper, exchange = ledger_trades(db), ledger_trades(db, "testnet", feeding.candle_of)
    assert {"stop", "take_profit", "signal"} <= {g[4] for g in paper}  # every kind of exit happens on this data
    assert len(paper) == len(expected) >= 3
    assert [(g[0], g[2]) for g in paper] == [(e[0], e[2]) for e in expected]
    assert np.allclose([(g[1], g[3]) for g in paper], [(e[1], e[3]) for e in expected], rtol=1e-12)
    assert {"stop", "take_profit"} <= {g[4] for g in exchange}
    assert [g[:4] for g in exchange] == [g[:4] for g in paper]
    with db.connect() as c:
        entries = c.execute(sa.text("SELECT count(*) FROM trading.orders WHERE mode = 'testnet' AND side = 'BUY'")).scalar()
    assert len(fake.lists()) == entries  # one OCO per position


def test_backtest_paper_and_fake_exchange_trade_alike_with_trailing_stop_exits(db, database_url, fake_binance, tmp_path):
    """The trailing rule in bar terms (README, Stops): the trail is ``TRAIL`` below the highest price since the entry; a
    candle's path open -> low -> high -> close fills it at the open (a gap), at the trail when the low reaches it, or at
    the trail the high ratcheted when the close comes back to it."""
    from tests.integration.test_trader_protection import broker_on, start_trader

    trail = D("0.1")  # tight: on this data the high-then-close rule triggers it too
    rows = sample_rows(N)
    seed_features(db, rows)
    strategy = build_strategy("sma_cross", fast=10, slow=30)
    protection = ProtectionSettings(trailing_stop=Distance(trail, "%"))
    paper_trader = protected_paper_trader(database_url, strategy, protection)
    paper_trader.step()
    fake = fake_binance(price=rows[0][1], usdt="10000")
    feeding = FeedingSmaCross(fake, rows, fast=10, slow=30)
    live = start_trader(database_url, broker_on(fake), protection, strategy=feeding)

    live.step()
    live.step()

    expected = backtest_trades(rows, strategy, model_of(paper_trader, 10_000.0), tmp_path,
                               StopModel(trailing_pct=float(trail), tick=0.01))
    paper, exchange = ledger_trades(db), ledger_trades(db, "testnet", feeding.candle_of)
    assert "stop" in {g[4] for g in paper}
    stops = [g for g in paper if g[4] == "stop"]
    assert any(g[3] < g[1] for g in stops) and any(g[3] > g[1] for g in stops)  # trailed into a loss and into a gain
    assert len(paper) == len(expected) >= 3
    assert [(g[0], g[2]) for g in paper] == [(e[0], e[2]) for e in expected]
    assert np.allclose([(g[1], g[3]) for g in paper], [(e[1], e[3]) for e in expected], rtol=1e-12)
    assert "stop" in {g[4] for g in exchange}
    assert [g[:2] + g[2:3] for g in exchange] == [g[:3] for g in paper]
    assert np.allclose([g[3] for g in exchange], [g[3] for g in paper], rtol=1e-12)
    with db.connect() as c:
        legs = c.execute(sa.text("SELECT count(*) FROM trading.orders WHERE mode = 'testnet' AND trailing_delta = 10")).scalar()
        entries = c.execute(sa.text("SELECT count(*) FROM trading.orders WHERE mode = 'testnet' AND side = 'BUY'")).scalar()
    assert legs == entries  # one trailing stop per position


def test_backtest_and_paper_trade_alike_with_atr_multiple_stops(db, database_url, tmp_path):
    """``stop_loss = "1atr"``, ``take_profit = "1.5atr"``: both price the legs from the fill and ``atr_14`` of the entry's
    decision candle (the paper trader from ``market.features``, the backtest from the same feature code)."""
    rows = sample_rows(N)
    seed_features(db, rows)
    strategy = build_strategy("sma_cross", fast=10, slow=30)
    protection = ProtectionSettings(stop_loss=Distance(D(1), "atr"), take_profit=Distance(D("1.5"), "atr"))
    paper_trader = protected_paper_trader(database_url, strategy, protection)
    paper_trader.step()

    expected = backtest_trades(rows, strategy, model_of(paper_trader, 10_000.0), tmp_path,
                               StopModel(stop_atr=1.0, take_profit_atr=1.5, tick=0.01))
    paper = ledger_trades(db)
    assert {"stop", "take_profit"} <= {g[4] for g in paper}
    assert len(paper) == len(expected) >= 3
    assert [(g[0], g[2]) for g in paper] == [(e[0], e[2]) for e in expected]
    assert np.allclose([(g[1], g[3]) for g in paper], [(e[1], e[3]) for e in expected], rtol=1e-12)


def test_paper_and_fake_exchange_trade_alike_with_limit_entries_and_their_otoco(db, database_url, fake_binance, tmp_path):
    """LIMIT entries (and exits) at the decision close, each entry with its OCO as one OTOCO list: the paper broker's bar
    terms (the legs from the entry's fill on, the fill candle's path counted from the fill) are the fake exchange's."""
    from tests.integration.test_trader_protection import broker_on
    from tests.traders import connector
    from trader import account_records
    from trader.brokers.paper import PaperBroker
    from trader.loop import Trader
    from trader.sleeve import RiskConfig, Sleeve
    from trader.transaction import db_candles

    rows = sample_rows(N)
    seed_features(db, rows)
    protection = ProtectionSettings(stop_loss=Distance(STOP, "%"), take_profit=Distance(TAKE, "%"))
    limit = RiskConfig(order_type="LIMIT")  # at the decision close (an offset leaves GTC limits resting for good here)

    def sleeve(strategy):
        return Sleeve(name="BTCUSDT:1m:sma_cross", symbol="BTCUSDT", interval="1m", strategy=strategy, allocation=D("1000"),
                      protection=protection)

    connect = connector(database_url)
    Trader(connect, [sleeve(build_strategy("sma_cross", fast=10, slow=30))], PaperBroker(db_candles(connect), fee_bps=D("0")),
           paper_balance=D("10000"), risk=limit).step()
    fake = fake_binance(price=rows[0][1], usdt="10000")
    feeding = FeedingSmaCross(fake, rows, fast=10, slow=30)
    live = Trader(connect, [sleeve(feeding)], broker_on(fake), risk=limit, sleep=lambda s: None)
    with live._transaction() as cur:
        account_records.seed_balance(cur, "testnet", "USDT", D("10000"))
    live.step()
    live.step()

    paper, exchange = ledger_trades(db), ledger_trades(db, "testnet", feeding.candle_of)
    assert {"stop", "take_profit"} <= {g[4] for g in paper} and len(paper) >= 3
    assert [g[:3] + g[4:] for g in exchange] == [g[:3] + g[4:] for g in paper]
    assert np.allclose([g[3] for g in exchange], [g[3] for g in paper], rtol=1e-12)
    with db.connect() as c:
        entries = c.execute(sa.text("SELECT count(*) FROM trading.orders WHERE mode = 'testnet' AND side = 'BUY'"
                                    " AND list_client_order_id IS NOT NULL")).scalar()
    assert [x["contingencyType"] for x in fake.lists()] == ["OTO"] * entries and entries >= 3  # one OTOCO per entry
    assert [r for r in fake.requests("/api/v3/orderList/oco") if r[0] == "POST"] == []
