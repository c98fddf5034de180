"""Backtests: the live strategy code over history, with the paper broker's fill model.

- ``candles`` / ``db_source``: history from Binance kline files or ``market.candles``.
- ``runner``: features (``klinepipe.features``, as the DAG) -> ``strategy.signals`` -> ``engine`` fills -> ``metrics``.
- ``sweep``: parameter grids on both cores and walk-forward out-of-sample tests.
- ``outputs`` / ``report_html`` / ``report_png``: trades.csv, equity.csv, summary.json, report.html, equity.png.
- ``service`` / ``cli``: one configured run, for ``python -m trader backtest`` and the ``backtest_strategy`` DAG.
"""
