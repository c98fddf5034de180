"""The ``backtest_strategy`` DAG's trigger params -> a ``BacktestRequest`` (kept here so the DAG stays thin).

Reports go to ``<reports_dir>/<run_id>/`` (the DAG passes ``KLINEPIPE_REPORTS_DIR``, default ``.data/reports``), the
run id made safe for a directory name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from trader.backtest.candles import parse_time
from trader.backtest.engine import FillModel
from trader.backtest.service import BacktestRequest
from trader.backtest.user_strategies import load_user_strategies
from trader.strategies import strategy_class

DEFAULT_REPORTS_DIR = Path(".data") / "reports"


def request_from_params(params: dict, run_id: str, database_url: str,
                        reports_dir: Path = DEFAULT_REPORTS_DIR) -> BacktestRequest:
    """Validate the trigger form's values and build the request (``params`` may be a JSON string)."""
    p = dict(params or {})
    load_user_strategies()  # TRADER_STRATEGY_DIR's, as the CLI loads them
    strategy_class(p.get("strategy", "sma_cross"))  # unknown: ValueError listing the known ones
    strategy_params = p.get("params") or {}
    if isinstance(strategy_params, str):
        strategy_params = json.loads(strategy_params)
    model = FillModel(fee_bps=float(p.get("fee_bps", 10.0)), slippage_bps=float(p.get("slippage_bps", 0.0)),
                      size=float(p.get("size", 1.0)))
    return BacktestRequest(
        out_dir=reports_dir / safe_dir_name(run_id),
        strategy=p.get("strategy", "sma_cross"),
        params=dict(strategy_params),
        model=model,
        database_url=database_url,
        symbol=str(p.get("symbol", "BTCUSDT")).upper(),
        interval=str(p.get("interval", "1m")),
        start=parse_time(p.get("start") or None),
        end=parse_time(p.get("end") or None),
        workers=1,
    )


def safe_dir_name(run_id: str) -> str:
    """``manual__2026-01-01T00:00:00+00:00`` -> ``manual__2026-01-01T00-00-00-00-00``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", run_id or "").lstrip(".") or "run"
