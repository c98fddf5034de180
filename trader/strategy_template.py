"""``python -m trader new-strategy NAME``: a documented template strategy and a pytest test for it, written into
the user's strategy directory (never over an existing file)."""

from __future__ import annotations

import keyword
from pathlib import Path

from trader.strategies.base import INTERFACE_VERSION

STRATEGY = '''"""{name}: your own strategy (written by `python -m trader new-strategy {name}`; edit it freely).

How klinepipe uses it (strategy interface {version}):

- ``signals(frame)`` is the whole strategy, the same code live and in backtests. ``frame`` has one row per
  closed candle, oldest first: ``open_time`` (UTC), ``close`` and the feature columns ``required_features``
  names: the columns of any feature spec (``sma_5`` is ``sma(5)``, ``rsi_7``, ``ema_21``, ``bb_upper_20_2p5``
  ...; see the README's Features section). The features DAG stores the specs your sleeves read, backtests
  compute them from the candles with the same code; a column no indicator makes is refused at start.
  It returns one value per row: +1 BUY, -1 SELL, 0 HOLD (long-only spot: BUY when flat, SELL when long).
- Row ``i`` may depend only on rows ``<= i`` (no look-ahead). Backtests call ``signals`` once over the
  whole history; the live trader calls it on the newest ``warmup`` rows and acts on the last value.
  `python -m trader check-strategy {name}` checks both (look-ahead, and whether ``warmup`` is enough).
- ``declared_params``: every parameter, its default and what is valid (``Param(default, help, low=, high=)``,
  or ``choices=(...)``). A sleeve (TRADER_SLEEVES_FILE ``params = {{...}}``) or a backtest (``--params``)
  giving an unknown or out-of-range one is refused at start. ``constraints`` name rules between them.
- ``interface_version``: the strategy interface this file was written for; a trader running another one
  refuses to load it and says why.

Here: buy when the fast SMA crosses above the slow one by at least ``min_gap_bps``, sell when it crosses
back below. To use other indicators, change ``required_features`` and ``signals``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trader.strategies.base import Action, Constraint, Param, Strategy
from trader.strategies.signals import column, crossed_above, crossed_below, to_signals


class {cls}(Strategy):
    name = "{name}"
    interface_version = {version}
    warmup = 2  # rows one decision reads: this candle's and the one before (a crossing needs both)
    declared_params = {{
        "fast": Param(10, "fast SMA period: reads the column sma_<fast>", low=2, high=500),
        "slow": Param(30, "slow SMA period: reads the column sma_<slow>", low=3, high=1000),
        "min_gap_bps": Param(0.0, "buy only if the fast SMA ends this far above the slow one (basis points)", low=0, high=1000),
    }}
    constraints = (Constraint("fast < slow", lambda p: p["fast"] < p["slow"]),)

    def __init__(self, fast: int = 10, slow: int = 30, min_gap_bps: float = 0.0) -> None:
        super().__init__(fast=fast, slow=slow, min_gap_bps=min_gap_bps)
        self.fast_col, self.slow_col = f"sma_{{fast}}", f"sma_{{slow}}"
        self.required_features = (self.fast_col, self.slow_col)

    def signals(self, frame: pd.DataFrame) -> np.ndarray:
        fast, slow = column(frame, self.fast_col), column(frame, self.slow_col)
        wide_enough = fast >= slow * (1 + self.params["min_gap_bps"] / 10_000)
        return to_signals(crossed_above(fast, slow) & wide_enough, crossed_below(fast, slow))

    def reason(self, action: Action) -> str:  # recorded with each signal in trading.signals
        if action is Action.BUY:
            return f"{{self.fast_col}} crossed above {{self.slow_col}}"
        return f"{{self.fast_col}} crossed below {{self.slow_col}}" if action is Action.SELL else ""
'''

TEST = '''"""Tests of the {name} strategy (written by `python -m trader new-strategy {name}`). Keep them passing as you
edit the strategy: `python -m pytest {test_file}`."""

from pathlib import Path

import numpy as np
import pandas as pd

from trader.backtest.strategy_checks import check_strategy
from trader.strategies.user_dir import load_strategy_file

STRATEGY = next(c for c in load_strategy_file(Path(__file__).with_name("{name}.py")) if c.name == "{name}")


def synthetic_candles(n: int = 1500, seed: int = 7) -> pd.DataFrame:
    """One-minute candles of a noisy wave: rises and falls enough for crossings both ways."""
    rng = np.random.default_rng(seed)
    close = 100 + 5 * np.sin(np.arange(n) / 40) + np.cumsum(rng.normal(0, 0.2, n))
    open_ = np.concatenate(([close[0]], close[:-1]))
    return pd.DataFrame({{"open_time": 1_700_000_000_000 + 60_000 * np.arange(n), "open": open_,
                          "high": np.maximum(open_, close) + 0.1, "low": np.minimum(open_, close) - 0.1,
                          "close": close, "volume": rng.uniform(1, 10, n)}})


def test_it_buys_on_a_crossing_up_and_sells_on_a_crossing_down():
    strategy = STRATEGY()
    frame = pd.DataFrame({{"close": [1.0] * 5, strategy.fast_col: [1.0, 1.0, 3.0, 3.0, 1.0],
                          strategy.slow_col: [2.0, 2.0, 2.0, 2.0, 2.0]}})

    assert list(strategy.signals(frame)) == [0, 0, 1, 0, -1]


def test_it_reads_no_future_candles_and_declares_enough_warmup():
    findings = check_strategy(synthetic_candles(), STRATEGY)

    assert [f.line for f in findings if f.problem] == []
'''


def class_name(name: str) -> str:
    return "".join(part.title() for part in name.split("_") if part) or "MyStrategy"


def check_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or name != name.lower() or name.startswith("test_"):
        raise ValueError(f"strategy name {name!r} must be a lower-case Python identifier not starting with test_, e.g. my_trend")


def write_template(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``NAME.py`` and ``test_NAME.py`` into ``directory`` (created if missing); ``FileExistsError`` if either exists."""
    check_name(name)
    strategy_file, test_file = directory / f"{name}.py", directory / f"test_{name}.py"
    for f in (strategy_file, test_file):
        if f.exists():
            raise FileExistsError(f"{f} exists already; not overwriting it (choose another name or delete it)")
    directory.mkdir(parents=True, exist_ok=True)
    strategy_file.write_text(STRATEGY.format(name=name, cls=class_name(name), version=INTERFACE_VERSION))
    test_file.write_text(TEST.format(name=name, test_file=test_file))
    return strategy_file, test_file
