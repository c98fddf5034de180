"""One stop model in two places: the paper trader holding an OCO (stop-loss + take-profit) per position and a backtest
with the same stops (``trader.backtest.stops``) give the same trades, trade for trade, on the bundled sample data:
entries at the next open, exits by stop, by take-profit (gaps at the open) and by signal."""

from decimal import Decimal as D

import numpy as np
import pytest
import sqlalchemy as sa

from tests.helpers import sample_rows, seed_features, write_csv
from tests.traders import model_of, protected_paper_trader
from trader.backtest.candles import read_kline_file
from trader.backtest.runner import feature_frame, strategy_signals
from trader.backtest.stops import StopModel, simulate_with_stops
from trader.protection import Distance, ProtectionSettings
from trader.strategies import build_strategy

pytestmark = pytest.mark.integration
N = 400
STOP, TAKE = D("0.3"), D("0.4")  # percent: tight enough for 1m candles to reach both


def paper_trades(engine) -> list[tuple]:
    """(entry fill open ms, entry price, exit fill open ms, exit price, how) of every closed trade, in time order."""
    with engine.connect() as c:
        rows = c.execute(sa.text(
            "SELECT o.client_order_id, o.side, f.price, (extract(epoch FROM f.filled_at) * 1000)::bigint AS at"
            " FROM trading.orders o JOIN trading.fills f USING (client_order_id) ORDER BY f.filled_at, f.id")).fetchall()
    out, entry = [], None
    for r in rows:
        if r.side == "BUY":
            entry = (r.at, float(r.price))
        else:
            how = {"PS": "stop", "PT": "take_profit"}.get(r.client_order_id[-2:], "signal")
            out.append((*entry, r.at, float(r.price), how))
    return out


def test_paper_and_backtest_trade_alike_with_stop_and_take_profit_exits(db, database_url, tmp_path):
    rows = sample_rows(N)
    seed_features(db, rows)
    strategy = build_strategy("sma_cross", fast=10, slow=30)
    protection = ProtectionSettings(stop_loss=Distance(STOP, "%"), take_profit=Distance(TAKE, "%"))
    trader = protected_paper_trader(database_url, strategy, protection)
    trader.step()
    trader.step()

    candles = read_kline_file(write_csv(tmp_path / "BTCUSDT-1m.csv", rows))
    signals = strategy_signals(strategy, feature_frame(candles, strategy))
    model = model_of(trader, 10_000.0)
    fills = simulate_with_stops(*(candles[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close")), signals, model,
                                StopModel(float(STOP), float(TAKE), tick=0.01))
    times = candles["open_time"].to_numpy()
    closed = fills.exit_bar >= 0
    expected = [(int(times[e]), p_in, int(times[x]), p_out)
                for e, x, p_in, p_out in zip(fills.entry_bar[closed], fills.exit_bar[closed], fills.entry_price[closed],
                                             fills.exit_price[closed])]

    got = paper_trades(db)
    hows = {g[4] for g in got}
    assert {"stop", "take_profit"} <= hows, hows  # both kinds of protection exit happen on this data
    assert len(got) == len(expected) >= 4
    assert [g[0] for g in got] == [e[0] for e in expected] and [g[2] for g in got] == [e[2] for e in expected]
    assert np.allclose([g[1] for g in got], [e[1] for e in expected], rtol=1e-12)
    assert np.allclose([g[3] for g in got], [e[3] for e in expected], rtol=1e-12)
