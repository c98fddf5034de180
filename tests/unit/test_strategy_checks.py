"""check-strategy's analyses find what they are for: a strategy reading the next candle is a look-ahead problem, one
computing a 20-bar mean but declaring a 2-row warm-up is an under-warmed one (with the warm-up it needs), and a
user strategy file that cannot be used is refused in one line saying why."""

import numpy as np
import pytest

from tests.helpers import SAMPLE
from trader.backtest.candles import read_kline_file
from trader.backtest.strategy_checks import check_strategy, feature_settling
from trader.strategies.base import INTERFACE_VERSION, Strategy
from trader.strategies.signals import crossed_above, crossed_below, to_signals
from trader.strategies.user_dir import StrategyLoadError, load_strategy_dir


class Leaky(Strategy):
    """Buys when the NEXT close is higher: perfect hindsight."""

    name = "leaky"

    def signals(self, frame):
        close = frame["close"].to_numpy(dtype=float)
        nxt = np.append(close[1:], close[-1])
        return np.sign(nxt - close).astype(np.int8)


class UnderWarmed(Strategy):
    """Close crossing its own 20-bar mean: a decision needs 21 rows, it declares 2."""

    name = "under_warmed"
    warmup = 2

    def signals(self, frame):
        close = frame["close"]
        mean = close.rolling(20).mean().to_numpy()
        c = close.to_numpy(dtype=float)
        return to_signals(crossed_above(c, mean), crossed_below(c, mean))


@pytest.fixture(scope="module")
def candles():
    return read_kline_file(SAMPLE / "BTCUSDT-1m.csv.gz").iloc[:1500].reset_index(drop=True)


def problems(findings, check):
    return [f.line for f in findings if f.problem and f.check == check]


def test_a_strategy_reading_the_next_candle_is_a_look_ahead_problem(candles):
    findings = check_strategy(candles, Leaky)

    found = problems(findings, "look-ahead")
    assert len(found) >= 2 and any("changed the signal at bar" in f for f in found)
    assert any("differ when the history ends at their bar" in f for f in found)


def test_an_under_warmed_strategy_is_told_the_warmup_it_needs(candles):
    findings = check_strategy(candles, UnderWarmed)

    assert problems(findings, "look-ahead") == []
    (found,) = problems(findings, "warm-up")
    assert "declared warmup = 2" in found and found.endswith("it needs warmup = 21")


def test_the_same_strategy_declaring_its_warmup_passes(candles):
    class Warmed(UnderWarmed):
        warmup = 21

    assert [f.line for f in check_strategy(candles, Warmed) if f.problem] == []


def test_feature_settling_counts_bars_until_a_late_start_agrees(candles):
    settle = feature_settling(candles, ["sma_30", "ema_30"], offset=300)

    assert settle["sma_30"] == 29 and settle["ema_30"] > 100  # a mean is exact once defined; an EMA only converges


GOOD = f'''
from trader.strategies.base import Strategy, Param
class Mine(Strategy):
    name = "mine"
    interface_version = {INTERFACE_VERSION}
    declared_params = {{"k": Param(3, low=1, high=9)}}
    def signals(self, frame):
        return frame["close"].to_numpy() * 0
'''


@pytest.mark.parametrize(("source", "message"), [
    ("def f(:\n", "bad.py: syntax error at line 1"),
    ("import nothing_here\n", "bad.py: importing it raised ModuleNotFoundError at line 1"),
    ("x = 1\n", "bad.py: defines no strategy"),
    (GOOD.replace('    name = "mine"\n', ""), "bad.py: Mine has no name"),
    (GOOD.replace(f"interface_version = {INTERFACE_VERSION}", "interface_version = 1"),
     f"bad.py: mine was written for strategy interface 1, this trader runs interface {INTERFACE_VERSION}"),
    (GOOD.replace(f"    interface_version = {INTERFACE_VERSION}\n", ""),
     f"bad.py: mine does not state the interface version it was written for (set interface_version = {INTERFACE_VERSION})"),
    (GOOD.replace('"mine"', '"sma_cross"'), "strategy name 'sma_cross' is already taken by a bundled strategy"),
    (GOOD.replace("    def signals(self, frame):\n        return frame[\"close\"].to_numpy() * 0\n", ""),
     "bad.py: mine does not implement signals(frame)"),
])
def test_a_bad_strategy_file_is_refused_with_the_reason(tmp_path, source, message):
    from trader.strategies import BUNDLED

    (tmp_path / "bad.py").write_text(source)

    with pytest.raises(StrategyLoadError) as err:
        load_strategy_dir(tmp_path, reserved=BUNDLED)

    assert message in str(err.value) and "\n" not in str(err.value)


def test_good_files_load_and_tests_and_private_files_are_skipped(tmp_path):
    (tmp_path / "mine.py").write_text(GOOD)
    (tmp_path / "test_mine.py").write_text("raise SystemExit('not a strategy')\n")
    (tmp_path / "_helpers.py").write_text("def (\n")

    assert list(load_strategy_dir(tmp_path)) == ["mine"]
