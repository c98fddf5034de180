"""The user's own strategies for everything that backtests: the ``backtest`` and ``optimize`` commands and the
``backtest_strategy`` and ``optimize_strategy`` DAGs' tasks.

One loader, so that a strategy a user writes backtests the same from the shell and from Airflow: the directory
given (``--strategy-dir``), else ``TRADER_STRATEGY_DIR``; its strategies join the bundled ones in
``trader.strategies.REGISTRY``. Loading again (each Airflow task does, in its own process or not) re-reads the files.
"""

from __future__ import annotations

from pathlib import Path


def load_user_strategies(strategy_dir: Path | None = None) -> list[str]:
    """Register the strategies of ``strategy_dir`` (else ``$TRADER_STRATEGY_DIR``; neither: none); their names.
    ``StrategyLoadError`` (one line naming the file) on a bad file."""
    from trader.config import BacktestSettings
    from trader.strategies import register_strategy_dir

    directory = strategy_dir or BacktestSettings().strategy_dir
    return register_strategy_dir(directory) if directory is not None else []
