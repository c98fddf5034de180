"""Decisions over float indicators (EMA, MACD, RSI, Bollinger) do not flip on float noise (trader/strategies/signals.py).

The case is built from real data where float noise alone makes a cross: on LINKUSDT (3-decimal prices,
data/sample/futures_um) the 10- and 30-bar means are *exactly* equal on several bars, and float means (pandas rolling,
as any float average is computed) differ there by ~1e-15 with an arbitrary sign (tests/unit/test_exact_crosses.py).
Handed to the EMA and MACD strategies as their columns, those noisy averages must give exactly the trades of the
``Decimal`` reference, while the strict float test on the very same columns does not.
"""

import numpy as np
import pandas as pd
import pytest

from tests.unit.test_exact_crosses import LINK, PAIRS, _decimal_candles, _ms, decimal_cross_trades
from trader.backtest.candles import read_kline_file
from trader.backtest.engine import FillModel
from trader.backtest.runner import run_signals
from trader.strategies import build_strategy
from trader.strategies.signals import crossed_above, crossed_below, price_tie, side, to_signals


@pytest.fixture(scope="module")
def data():
    return _decimal_candles(), read_kline_file(LINK)


def _float_means(candles: pd.DataFrame, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    close = pd.Series(candles["close"].to_numpy())
    return close.rolling(fast).mean().to_numpy(), close.rolling(slow).mean().to_numpy()


def _trades(candles, signals) -> list[tuple[int, int]]:
    t = run_signals(candles, signals, FillModel(fee_bps=0)).trades
    return list(zip(_ms(t["entry_time"]), _ms(t["exit_time"])))


@pytest.mark.parametrize("fast, slow", PAIRS)
def test_ema_and_macd_crosses_over_noisy_float_averages_trade_as_the_decimal_reference(data, fast, slow):
    (times, opens, closes), candles = data
    want, ties = decimal_cross_trades(times, opens, closes, fast, slow)
    a, b = _float_means(candles, fast, slow)
    close = candles["close"].to_numpy()
    ema = pd.DataFrame({"close": close, f"ema_{fast}": a, f"ema_{slow}": b})
    macd = pd.DataFrame({"close": close, "macd": a - b, "macd_signal": np.zeros(len(a))})  # exact zero at each tie

    strict = to_signals(crossed_above(a, b), crossed_below(a, b))
    by_ema = build_strategy("ema_cross", fast=fast, slow=slow).signals(ema)
    by_macd = build_strategy("macd_trend").signals(macd)

    reference = [(e, x) for e, x, _, _ in want]
    assert len(ties) >= 5 and len(want) > 100
    assert _trades(candles, strict) != reference  # float noise alone makes crosses here ...
    noise = np.nonzero(strict != by_ema)[0]
    assert len(noise) > 0 and all(i in ties or i - 1 in ties for i in noise)  # ... each of them at an exact tie
    assert _trades(candles, by_ema) == reference and _trades(candles, by_macd) == reference  # the tie rule makes none


def test_an_rsi_level_equal_to_the_rsi_up_to_float_noise_is_not_crossed(data):
    from klinepipe.features import compute_feature_frame

    _, candles = data
    rsi = compute_feature_frame(candles, columns=["rsi_14"])["rsi_14"].to_numpy()
    k = next(i for i in range(100, len(rsi)) if 20 < rsi[i] < rsi[i - 1] - 1)  # a real bar where the RSI falls
    level = float(np.nextafter(np.nextafter(rsi[k], np.inf), np.inf))  # the RSI at k, two ulps of noise above it
    frame = pd.DataFrame({"rsi_14": rsi})
    exact_level = build_strategy("rsi_reversion", lower=float(rsi[k]), upper=99.0).signals(frame)

    noisy_level = build_strategy("rsi_reversion", lower=level, upper=99.0).signals(frame)

    assert rsi[k - 1] >= level and rsi[k] < level  # the strict test would buy at k on two ulps
    assert noisy_level[k] == 0 and (noisy_level == exact_level).all()  # the same decisions: at the level is not past it


def test_a_tie_is_within_a_billionth_of_the_price_and_a_tick_never_is():
    close = np.array([100_000.0, 15.123, 0.00001234])
    tick = np.array([0.01, 0.001, 0.00000001])  # BTCUSDT, LINKUSDT, a tiny-priced coin

    assert (side(close + tick / 2, close, price_tie(close)) == 1.0).all()  # half a tick still counts
    assert (side(close + 1e-13 * close, close, price_tie(close)) == 0.0).all()  # float noise does not
