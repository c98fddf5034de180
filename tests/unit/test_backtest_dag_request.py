"""The backtest DAG's trigger params -> a backtest request (pure; the DAG itself is tested in tests/airflow)."""

from datetime import datetime, timezone

import pytest

from trader.backtest.dag_request import request_from_params, safe_dir_name


def test_trigger_params_become_a_request_under_the_reports_dir(tmp_path):
    params = {"symbol": "ethusdt", "interval": "1h", "start": "2024-03-01", "end": "2024-03-02T12:00", "strategy": "ema_cross",
              "params": '{"fast": 10, "slow": 50}', "fee_bps": 7.5, "slippage_bps": 1, "size": 0.5}

    req = request_from_params(params, "manual__2026-11-25T03:00:00+00:00", "postgresql://db", tmp_path)

    assert req.out_dir == tmp_path / "manual__2026-11-25T03-00-00-00-00"
    assert (req.symbol, req.interval, req.strategy, req.params) == ("ETHUSDT", "1h", "ema_cross", {"fast": 10, "slow": 50})
    assert req.start == datetime(2024, 3, 1, tzinfo=timezone.utc) and req.end == datetime(2024, 3, 2, 12, tzinfo=timezone.utc)
    assert (req.model.fee_bps, req.model.slippage_bps, req.model.size) == (7.5, 1.0, 0.5)
    assert req.database_url == "postgresql://db" and req.csv is None


def test_empty_dates_mean_all_stored_candles_and_bad_sizes_are_refused():
    req = request_from_params({"start": "", "end": ""}, "r", "postgresql://db")

    assert req.start is None and req.end is None
    with pytest.raises(ValueError, match="size"):
        request_from_params({"size": 2}, "r", "postgresql://db")


def test_run_ids_become_safe_directory_names():
    assert safe_dir_name("scheduled__2026-01-01T00:00:00+00:00") == "scheduled__2026-01-01T00-00-00-00-00"
    assert safe_dir_name("../../etc") == "-..-etc" and safe_dir_name("..") == "run"
